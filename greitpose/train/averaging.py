"""Weight averaging: the element-wise mean of checkpoints of one model.

Two runs of the same lineage (one warm-started from a descendant of the other) often score
better averaged than either alone; the average is a weights file like any other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from greitpose import checkpoint
from greitpose.errors import GreitposeError


def _differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Names of the metadata entries (config fields by name) in which two checkpoints differ."""
    names = [f"config '{k}'" for k in sorted(set(a["config"]) | set(b["config"]))
             if a["config"].get(k) != b["config"].get(k)]
    return names + [k for k in ("keypoints", "normalization") if a[k] != b[k]]


def average_weights(paths: list[Path], out: str | os.PathLike[str]) -> Path:
    """Write the mean of `paths`' weights to `out` (integer buffers come from the first file).

    Files must describe the same network, keypoints and normalisation: averaging two
    architectures, or two input sizes' metadata, would give a file that lies about itself.
    """
    if len(paths) < 2:
        raise GreitposeError("averaging needs at least two weights files")
    models = [checkpoint.load(p) for p in paths]
    first = models[0]
    for path, model in zip(paths[1:], models[1:]):
        differ = _differences(first.metadata(), model.metadata())
        if differ:
            raise GreitposeError(f"{path} is not the same model as {paths[0]} (differs in {', '.join(differ)})")
    states = [m.network.state_dict() for m in models]
    averaged = {key: (sum(s[key] for s in states) / len(states) if value.is_floating_point() else value)
                for key, value in states[0].items()}
    first.network.load_state_dict(averaged)
    samples = [m.extra.get("samples_seen") for m in models]
    extra: dict[str, object] = {"averaged_from": [Path(p).name for p in paths]}
    if all(isinstance(s, int) for s in samples):
        extra["samples_seen"] = max(samples)  # shared history counted once, not summed
    return checkpoint.save(first, out, extra=extra)
