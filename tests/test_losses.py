"""The heatmap loss: unlabelled keypoints (weight 0) teach nothing, labelled ones are scored."""

from __future__ import annotations

import torch

from greitpose.train.losses import per_sample_mse, weighted_mse


def test_unlabelled_keypoints_cost_nothing_and_labelled_ones_do() -> None:
    torch.manual_seed(0)
    target = torch.rand(3, 4, 8, 6)
    pred = target.clone()
    pred[:, 2] += 1.0  # every sample wrong on keypoint 2 only
    weight = torch.ones(3, 4)
    weight[0, 2] = 0.0  # sample 0: keypoint 2 unlabelled
    losses = per_sample_mse(pred, target, weight)
    assert losses[0] == 0.0
    # a wrong map of 8x6 pixels off by 1 among 4 maps: 0.5 * 48 / (4 * 48)
    assert torch.allclose(losses[1:], torch.full((2,), 0.125))


def test_batch_loss_is_the_mean_over_samples() -> None:
    torch.manual_seed(1)
    pred, target = torch.rand(5, 17, 16, 12), torch.rand(5, 17, 16, 12)
    weight = (torch.rand(5, 17) > 0.3).float()
    w = weight[:, :, None, None]
    assert torch.allclose(weighted_mse(pred, target, weight), 0.5 * ((pred * w - target * w) ** 2).mean())
    assert torch.allclose(weighted_mse(pred, target, weight), per_sample_mse(pred, target, weight).mean())
