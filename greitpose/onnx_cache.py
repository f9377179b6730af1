"""ONNX exports made on demand for the `auto` backend, cached per checkpoint content.

Eager PyTorch runs a crop several times slower than ONNX Runtime on a CPU, so `auto` runs a
`.pt` checkpoint through ONNX Runtime: exported once (a few seconds), checked against PyTorch
on the same crops, and kept in the cache folder under a name made from the checkpoint's bytes
and the exporter's versions. A checkpoint that does not export or fails the check is recorded
as such (no retry on every run) and runs on PyTorch instead.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from greitpose.errors import GreitposeError
from greitpose.weights import cache_dir

#: Largest |heatmap difference| accepted, relative to the largest heatmap value (at least 1):
#: float32 reorderings stay near 1e-6; untrained networks may have large activations.
PARITY_TOLERANCE = 1e-4

_console = Console(stderr=True)


def cache_key(path: Path, *parts: object) -> str:
    """A digest of the file's bytes, of `parts` and of what shapes the exported graph."""
    import onnxruntime
    import torch

    from greitpose import __version__
    from greitpose.export import DEFAULT_OPSET

    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    versions = (__version__, torch.__version__, onnxruntime.__version__, DEFAULT_OPSET, *parts)
    digest.update("|".join(map(str, versions)).encode())
    return digest.hexdigest()[:16]


def cached_path(path: Path, *parts: object) -> Path:
    """Where the export of `path` (made with `parts`, e.g. an input size) is or would be cached."""
    tag = "".join(f"-{p}" for p in parts)
    return cache_dir() / "onnx" / f"{path.stem}{tag}-{cache_key(path, *parts)}.onnx"


def _cached(path: Path, target: Path, make: Callable[[Path], str | None]) -> Path | None:
    """`target` when cached; else `make(target)` exports it and returns None, or why the export
    must not be used. A failed or refused export leaves a marker so it is not retried."""
    refused = target.with_suffix(".refused")
    if target.is_file():
        return target
    if refused.is_file():
        return None
    _console.print(f"exporting {path.name} to ONNX for fast CPU inference (once; cached in "
                   f"{target.parent}/)", highlight=False, soft_wrap=True)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        reason = make(target)
    except (GreitposeError, OSError, RuntimeError) as err:
        reason = f"export failed: {str(err).splitlines()[0]}"
    if reason is None:
        return target
    target.unlink(missing_ok=True)
    try:
        refused.write_text(reason + "\n")
    except OSError:
        pass  # an unwritable cache: the export is tried again next time
    _console.print(f"note: {path.name} stays on PyTorch ({reason})", highlight=False, soft_wrap=True)
    return None


def onnx_for(path: Path) -> Path | None:
    """The cached ONNX export of pose checkpoint `path`, made now when absent; None when the
    model cannot run on ONNX Runtime with PyTorch's results (it then stays on PyTorch)."""
    from greitpose import checkpoint
    from greitpose.export import export_onnx, parity_check, sample_crops

    def make(target: Path) -> str | None:
        model = checkpoint.load(path)
        export_onnx(model, target)
        parity = parity_check(model, target, sample_crops(model, None, count=8))
        if parity.max_heatmap_diff > PARITY_TOLERANCE * max(1.0, parity.max_heatmap):
            return f"ONNX Runtime differs from PyTorch: {parity.describe()}"
        return None

    return _cached(path, cached_path(path), make)


def detector_onnx_for(path: Path) -> Path | None:
    """The cached ONNX export (Ultralytics' exporter, any input size) of YOLO weights `path`;
    None when it cannot be made (the detector then runs through Ultralytics)."""
    from greitpose.export import export_detector

    def make(target: Path) -> None:
        export_detector(path, target=target, dynamic=True)

    return _cached(path, cached_path(path, "dynamic"), make)
