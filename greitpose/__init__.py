"""greitpose: 2D multi-person pose estimation with Greit-HRNet.

`from greitpose import PoseEstimator` gives the detector + pose pipeline; heavier modules load
only when first used, so the command line starts quickly.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "PoseEstimator": "greitpose.estimator",
    "Poses": "greitpose.results",
    "Detections": "greitpose.results",
    "GreitposeError": "greitpose.errors",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'greitpose' has no attribute '{name}'")


__all__ = ["PoseEstimator", "Poses", "Detections", "GreitposeError", "__version__"]
