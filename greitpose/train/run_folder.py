"""A training run never writes over another run's weights: `--out` must be a new folder, an
empty one, or the folder of the run being resumed."""

from __future__ import annotations

from pathlib import Path

from greitpose.errors import GreitposeError
from greitpose.train.config import TrainConfig
from greitpose.train.loop import STATE_FILE

#: what a run leaves in its folder (besides state-stepN.pt)
RUN_FILES = ("config.yaml", "metrics.jsonl", "last.pt", "best.pt", STATE_FILE)


def held_run_files(folder: Path) -> list[str]:
    """The names in `folder` that a run wrote there, if any."""
    return [n for n in RUN_FILES if (folder / n).exists()] + sorted(p.name for p in folder.glob("state-step*.pt"))


def check_run_folder(config: TrainConfig) -> None:
    """Refuse a run folder that holds another run, unless this run resumes from a state in it
    (the default `runs/train` would otherwise lose the last run's best.pt to the next one)."""
    out = Path(config.out)
    held = held_run_files(out) if out.is_dir() else []
    if not held or (config.resume and Path(config.resume).resolve().parent == out.resolve()):
        return
    raise GreitposeError(f"run folder {out} already holds a run ({', '.join(held[:3])}); give a new --out, "
                         f"or --resume one of its states to continue that run")
