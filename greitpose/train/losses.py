"""Heatmap losses: the weighted MSE of the paper's recipe, per sample and over a batch."""

from __future__ import annotations

import torch


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(N,) MSE of each sample's heatmaps, each keypoint's map weighted by its target weight
    (0 = unlabelled: the prediction there costs nothing, rather than being pushed to zero)."""
    w = weight[:, :, None, None]
    return 0.5 * ((pred.float() * w - target * w) ** 2).mean(dim=(1, 2, 3))


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The batch's weighted heatmap MSE: the mean of `per_sample_mse` (every sample has the
    same number of heatmap pixels, so this is the mean over all of them)."""
    return per_sample_mse(pred, target, weight).mean()
