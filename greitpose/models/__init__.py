"""Model configurations, the network, and its size.

The network classes load on first use, so reading configurations (as an ONNX-only run does)
needs no torch.
"""

from __future__ import annotations

from typing import Any

from greitpose.models.config import (
    ModelConfig,
    get_config,
    model_names,
    parse_input_size,
)

_NETWORK = ("PoseHRNet", "build_model")


def __getattr__(name: str) -> Any:
    if name in _NETWORK:
        from greitpose.models import greit_hrnet

        return getattr(greit_hrnet, name)
    raise AttributeError(f"module 'greitpose.models' has no attribute '{name}'")


__all__ = ["ModelConfig", "PoseHRNet", "build_model", "get_config", "model_names", "parse_input_size"]
