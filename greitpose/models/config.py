"""Model configurations and the registry of named models.

Greit-HRNet, Lite-HRNet and every ablation of the paper's Table 6 are values of one
`ModelConfig`; `greitpose.models.greit_hrnet.PoseHRNet` builds any of them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, replace
from typing import Any

from greitpose.errors import GreitposeError

#: (modules per stage 2..4) for the two depths of the paper's Table 1.
DEPTHS: dict[int, tuple[int, int, int]] = {18: (2, 4, 2), 30: (3, 8, 3)}
FEATURES = ("gcw", "gsw", "lks")


@dataclass(frozen=True)
class ModelConfig:
    """Everything that decides a network's shape; stored in every checkpoint."""

    name: str
    stage_modules: tuple[int, int, int] = (2, 4, 2)
    channels: tuple[int, int, int, int] = (40, 80, 160, 320)
    blocks_per_module: int = 2
    stem_channels: int = 32
    grouped_channel_weighting: bool = True  # GCW instead of one cross-resolution weighting
    global_spatial_weighting: bool = True  # GSW instead of GAP + SE
    large_kernel_stem: bool = True  # LKS instead of Lite-HRNet's stem
    reduce_ratio: int = 8
    num_keypoints: int = 17
    input_size: tuple[int, int] = (256, 192)  # (height, width)

    def __post_init__(self) -> None:
        check_input_size(*self.input_size)
        if self.num_keypoints < 1:
            raise GreitposeError(f"num_keypoints must be >= 1, got {self.num_keypoints}")

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(height, width) of the output heatmaps: a quarter of the input."""
        return self.input_size[0] // 4, self.input_size[1] // 4

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise GreitposeError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**values)


def _parse(name: str) -> tuple[str, int, set[str]] | None:
    match = re.fullmatch(r"(greit|lite)-hrnet-(18|30)((?:\+(?:gcw|gsw|lks))*)", name)
    if not match:
        return None
    extras = [e for e in match.group(3).split("+") if e]
    if len(set(extras)) != len(extras) or (match.group(1) == "greit" and extras):
        return None
    return match.group(1), int(match.group(2)), set(extras)


def canonical_name(family: str, depth: int, features: set[str]) -> str:
    """greit-hrnet-N when all three features are on, else lite-hrnet-N+feature..."""
    if features == set(FEATURES):
        return f"greit-hrnet-{depth}"
    return f"lite-hrnet-{depth}" + "".join(f"+{f}" for f in FEATURES if f in features)


def model_names() -> list[str]:
    """Every registered name: the four main models, then Table 6's ablations of each depth."""
    names = [f"{family}-hrnet-{d}" for family in ("greit", "lite") for d in DEPTHS]
    for depth in DEPTHS:
        for combo in (("gcw",), ("gsw",), ("lks",), ("gcw", "gsw"), ("gcw", "lks"), ("gsw", "lks")):
            names.append(canonical_name("lite", depth, set(combo)))
    return names


def get_config(name: str, num_keypoints: int = 17,
               input_size: tuple[int, int] = (256, 192)) -> ModelConfig:
    """Config for a registered model name, e.g. 'greit-hrnet-18' or 'lite-hrnet-18+gcw+lks'."""
    parsed = _parse(name.lower().strip())
    if parsed is None:
        raise GreitposeError(
            f"unknown model '{name}'; known: {', '.join(model_names())} "
            "(Lite-HRNet ablations take any of +gcw +gsw +lks)")
    family, depth, extras = parsed
    features = set(FEATURES) if family == "greit" else extras
    return ModelConfig(
        name=canonical_name(family, depth, features),
        stage_modules=DEPTHS[depth],
        grouped_channel_weighting="gcw" in features,
        global_spatial_weighting="gsw" in features,
        large_kernel_stem="lks" in features,
        num_keypoints=num_keypoints,
        input_size=tuple(input_size),
    )


def check_input_size(h: int, w: int) -> None:
    """The network halves its input five times (and its pooling factors are constants)."""
    if h <= 0 or w <= 0 or h % 32 or w % 32:
        raise GreitposeError(f"input size {h}x{w} must be positive multiples of 32 (e.g. 256x192)")


def parse_input_size(text: str) -> tuple[int, int]:
    """'256x192' -> (256, 192): height x width, as the paper writes input sizes; checked before
    any weights are looked for."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", text)
    if not match:
        raise GreitposeError(f"input size '{text}' is not HEIGHTxWIDTH, e.g. 256x192")
    size = int(match.group(1)), int(match.group(2))
    check_input_size(*size)
    return size


def with_overrides(config: ModelConfig, **changes: Any) -> ModelConfig:
    """A copy of `config` with some fields changed (keypoint count, input size...)."""
    return replace(config, **{k: v for k, v in changes.items() if v is not None})


__all__ = ["ModelConfig", "get_config", "model_names", "parse_input_size", "with_overrides"]
