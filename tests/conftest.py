"""Shared fixtures: paths to ../shared data (skipped when absent) and small random checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# Tests never download: a missing detector or dataset is an error, as on an offline machine.
os.environ["GREITPOSE_OFFLINE"] = "1"
# What tests export or fetch goes to a folder of their own, never into the checkout's weights/.
os.environ["GREITPOSE_WEIGHTS"] = tempfile.mkdtemp(prefix="greitpose-test-weights-")
# ONNX exports made for the auto backend are cached per test session, not in the user's cache.
os.environ["GREITPOSE_CACHE"] = tempfile.mkdtemp(prefix="greitpose-test-cache-")

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("GREITPOSE_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"
#: the project's own shipped weights (part of the product: tests fail, not skip, without them)
SHIPPED = REPO / "weights" / "greit-hrnet-18-coco-256x192.pt"
#: the same model trained at 128x96, for the fast preset (video's default)
SHIPPED_FAST = REPO / "weights" / "greit-hrnet-18-coco-128x96.pt"


MODELS = SHARED / "models"


def shared_model(name: str) -> Path:
    """A third-party model under ../shared/models, or skip saying what is missing."""
    path = MODELS / name
    if not path.is_file():
        pytest.skip(f"shared model {path} is absent")
    return path


def shared_path(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test saying what is missing."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data {path} is absent")
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run `python -m greitpose ARGS` as a user would, capturing output."""
    full_env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run([sys.executable, "-m", "greitpose", *args], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A randomly initialised greit-hrnet-18 (COCO, 256x192) weights file."""
    from greitpose import checkpoint
    from greitpose.models import get_config

    path = tmp_path_factory.mktemp("weights") / "greit-hrnet-18-random.pt"
    return checkpoint.save(checkpoint.new_model(get_config("greit-hrnet-18")), path)
