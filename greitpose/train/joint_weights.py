"""Loss weight per keypoint (`train --joint-weights`): COCO's OKS forgives a face point far less
than a hip (sigma 0.025 against 0.107), while the heatmap MSE weighs every keypoint alike."""

from __future__ import annotations

import numpy as np
import torch

from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.train.config import parse_source_weights


def joint_loss_scale(text: str, keypoints: KeypointSet) -> torch.Tensor | None:
    """(K,) factors for the target weights from 'name=w,...' (others 1), or None when none are
    given. A name without its side ('eye') stands for both ('left_eye', 'right_eye'). Each factor
    is the square root of its loss weight: the weighted MSE squares the target weights."""
    given = parse_source_weights(text, "joint weight")
    if not given:
        return None
    factors = np.ones(keypoints.num_keypoints, np.float32)
    for name, weight in given.items():
        hits = [i for i, known in enumerate(keypoints.names) if known in (name, f"left_{name}", f"right_{name}")]
        if not hits:
            raise GreitposeError(f"joint weight '{name}': '{keypoints.name}' has no such keypoint "
                                 f"({', '.join(keypoints.names)})")
        factors[hits] = weight
    return torch.from_numpy(np.sqrt(factors))
