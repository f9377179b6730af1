"""Weight averaging: the element-wise mean of checkpoints of one model.

Two runs of the same lineage (one warm-started from a descendant of the other) often score
better averaged than either alone; the average is a weights file like any other. Its
BatchNorm statistics are averages too; `greitpose.train.batchnorm` can re-estimate them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greitpose import checkpoint
from greitpose.checkpoint import PoseModel
from greitpose.errors import GreitposeError

if TYPE_CHECKING:
    from rich.console import Console

    from greitpose.train.config import TrainConfig


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the metadata entries (config fields by name) in which two checkpoints differ."""
    names = [f"config '{k}'" for k in sorted(set(a["config"]) | set(b["config"]))
             if a["config"].get(k) != b["config"].get(k)]
    return names + [k for k in ("keypoints", "normalization") if a[k] != b[k]]


def parse_shares(text: str, count: int) -> list[float]:
    """'0.75,0.25' -> one positive share per file, scaled to sum to 1."""
    try:
        shares = [float(x) for x in text.split(",")]
    except ValueError:
        raise GreitposeError(f"--shares '{text}' is not a list of numbers like 0.75,0.25") from None
    if len(shares) != count:
        raise GreitposeError(f"--shares gives {len(shares)} shares for {count} weights files")
    if not all(s > 0 for s in shares):
        raise GreitposeError(f"--shares '{text}': every share must be above 0")
    total = sum(shares)
    return [s / total for s in shares]


def average_models(paths: list[Path], shares: list[float] | None = None) -> PoseModel:
    """The weighted mean of `paths`' weights (even shares by default; integer buffers come from
    the first file), its `extra` record saying where it came from.

    Files must describe the same network, keypoints and normalisation: averaging two
    architectures, or two input sizes' metadata, would give a file that lies about itself.
    """
    if len(paths) < 2:
        raise GreitposeError("averaging needs at least two weights files")
    shares = shares or [1.0 / len(paths)] * len(paths)
    if len(shares) != len(paths):
        raise GreitposeError(f"{len(shares)} shares for {len(paths)} weights files")
    models = [checkpoint.load(p) for p in paths]
    first = models[0]
    for path, model in zip(paths[1:], models[1:]):
        differ = _differences(first.metadata(), model.metadata())
        if differ:
            raise GreitposeError(f"{path} is not the same model as {paths[0]} (differs in {', '.join(differ)})")
    states = [m.network.state_dict() for m in models]
    averaged = {key: (sum(s[key] * w for s, w in zip(states, shares)) if value.is_floating_point() else value)
                for key, value in states[0].items()}
    first.network.load_state_dict(averaged)
    samples = [m.extra.get("samples_seen") for m in models]
    first.extra = {"averaged_from": [Path(p).name for p in paths], "shares": [round(w, 6) for w in shares]}
    if all(isinstance(s, int) for s in samples):
        first.extra["samples_seen"] = max(samples)  # shared history counted once, not summed
    return first


def average_weights(paths: list[Path], out: str | os.PathLike[str], shares: list[float] | None = None,
                    recalibrate: TrainConfig | None = None, samples: int = 4800,
                    console: Console | None = None) -> Path:
    """Write the weighted mean of `paths`' weights to `out` (see `average_models`), its BatchNorm
    statistics re-estimated on `samples` crops of `recalibrate`'s training set when given."""
    model = average_models(paths, shares)
    if recalibrate is not None:
        from greitpose.train.batchnorm import recalibrate_batchnorm

        used = recalibrate_batchnorm(model, recalibrate, samples, console)
        model.extra["batchnorm_from"] = {"train_ann": Path(recalibrate.train_ann).name, "crops": used,
                                         "seed": recalibrate.seed}
    return checkpoint.save(model, out, extra=model.extra)
