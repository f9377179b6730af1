"""Model size: parameter count and multiply-accumulates, as the paper's tables report them."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from greitpose.models.config import ModelConfig
from greitpose.models.greit_hrnet import build_model


@dataclass(frozen=True)
class Complexity:
    model: str
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    num_keypoints: int
    params: int
    gmacs: float

    def to_dict(self) -> dict:
        return {"model": self.model, "input_size": list(self.input_size),
                "heatmap_size": list(self.heatmap_size), "num_keypoints": self.num_keypoints,
                "params": self.params, "params_m": round(self.params / 1e6, 4),
                "gmacs": round(self.gmacs, 4)}


def measure(config: ModelConfig) -> Complexity:
    """Count parameters and MACs (FlopCounterMode FLOPs / 2) for one 1-image forward pass, on
    the meta device: shapes only, no arithmetic, so every model is counted in a fraction of a second."""
    with torch.device("meta"):
        model = build_model(config).eval()
        x = torch.zeros(1, 3, *config.input_size)
    params = sum(p.numel() for p in model.parameters())
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return Complexity(config.name, config.input_size, config.heatmap_size, config.num_keypoints,
                      params, counter.get_total_flops() / 2e9)
