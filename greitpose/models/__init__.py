"""Model configurations, the network, and its size."""

from greitpose.models.config import (
    ModelConfig,
    get_config,
    model_names,
    parse_input_size,
)
from greitpose.models.greit_hrnet import PoseHRNet, build_model

__all__ = ["ModelConfig", "PoseHRNet", "build_model", "get_config", "model_names", "parse_input_size"]
