"""Where weights files are looked for, in one order for the pose model and the detector.

The project's own trained weights live in the repository's `weights/` folder; wheels carry
them as the package `greitpose._weights` (see pyproject.toml), so a plain `pip install` finds
them as well as an editable one or a source checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

from greitpose.errors import GreitposeError

#: The repository's `weights/` folder (a source checkout or an editable install).
REPO_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
#: Where a wheel installs the same files (package `greitpose._weights`).
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "_weights"
ENV_VAR = "GREITPOSE_WEIGHTS"
CACHE_VAR = "GREITPOSE_CACHE"


def user_dir() -> Path:
    """The folder for weights the user adds or lets greitpose fetch: $GREITPOSE_WEIGHTS, else
    the checkout's `weights/` when it is writable, else ~/.cache/greitpose/weights."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    if REPO_WEIGHTS.is_dir() and os.access(REPO_WEIGHTS, os.W_OK):
        return REPO_WEIGHTS
    return _user_cache() / "weights"


def _user_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "greitpose"


def cache_dir() -> Path:
    """Where derived files (ONNX exports made for the auto backend) are kept: $GREITPOSE_CACHE,
    else ~/.cache/greitpose. Deleting it is always safe."""
    if os.environ.get(CACHE_VAR):
        return Path(os.environ[CACHE_VAR]).expanduser()
    return _user_cache()


def search_dirs() -> list[Path]:
    """The shipped weights (installed package, then the checkout), then the user's folder."""
    dirs: list[Path] = []
    for folder in (BUNDLED_WEIGHTS, REPO_WEIGHTS, user_dir()):
        if folder not in dirs:
            dirs.append(folder)
    return dirs


def candidates(name: str | os.PathLike[str]) -> list[Path]:
    """Every path tried for `name`: as given, then its file name in each search folder."""
    given = Path(name).expanduser()
    tried = [given]
    for folder in search_dirs():
        path = folder / given.name
        if path not in tried:
            tried.append(path)
    return tried


def find_weights(name: str | os.PathLike[str], what: str = "weights", hint: str = "pass its path") -> Path:
    """The first existing candidate for `name`, or an error naming all tried and where to put it
    (`hint` ends the message with what else the user can do)."""
    tried = candidates(name)
    for path in tried:
        if path.is_file():
            return path
    raise GreitposeError(
        f"{what} '{Path(name).name}' not found (tried {', '.join(map(str, tried))}); "
        f"put it in {user_dir()}/ (or a folder named by ${ENV_VAR}), or {hint}")
