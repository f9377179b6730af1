"""Heatmap losses: the weighted MSE of the paper's recipe, per sample and over a batch, and its
online hard keypoint mining variant (each sample's loss over its hardest keypoints only)."""

from __future__ import annotations

import torch


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, hard: int = 0) -> torch.Tensor:
    """(N,) MSE of each sample's heatmaps, each keypoint's map weighted by its target weight
    (0 = unlabelled: the prediction there costs nothing, rather than being pushed to zero).
    `hard` > 0: the mean over the sample's `hard` keypoints of largest loss only (online hard
    keypoint mining), so the easy joints stop diluting the hidden and ambiguous ones; 0 or the
    number of keypoints: all of them."""
    w = weight[:, :, None, None]
    per_keypoint = 0.5 * ((pred.float() * w - target * w) ** 2).mean(dim=(2, 3))
    if 0 < hard < per_keypoint.shape[1]:
        per_keypoint = per_keypoint.topk(hard, dim=1).values
    return per_keypoint.mean(dim=1)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, hard: int = 0) -> torch.Tensor:
    """The batch's weighted heatmap MSE: the mean of `per_sample_mse` (every sample has the
    same number of heatmap pixels, so without `hard` this is the mean over all of them)."""
    return per_sample_mse(pred, target, weight, hard).mean()
