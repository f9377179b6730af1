"""Where weights files are looked for, in one order for the pose model and the detector."""

from __future__ import annotations

import os
from pathlib import Path

from greitpose.errors import GreitposeError

#: The repository's (or installed tree's) `weights/` folder.
PACKAGE_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
ENV_VAR = "GREITPOSE_WEIGHTS"


def search_dirs() -> list[Path]:
    """The package's weights/ folder, then the user folder named by $GREITPOSE_WEIGHTS."""
    dirs = [PACKAGE_WEIGHTS]
    if os.environ.get(ENV_VAR):
        dirs.append(Path(os.environ[ENV_VAR]).expanduser())
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
    where = f"{PACKAGE_WEIGHTS}/ or a folder named by ${ENV_VAR}"
    raise GreitposeError(
        f"{what} '{Path(name).name}' not found (tried {', '.join(map(str, tried))}); "
        f"put it in {where}, or {hint}")
