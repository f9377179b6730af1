"""The heatmap loss: unlabelled keypoints (weight 0) teach nothing, labelled ones are scored;
with --hard-keypoints only each sample's hardest ones; --joint-weights scale single keypoints."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from greitpose.errors import GreitposeError
from greitpose.train.config import resolve
from greitpose.train.loop import Trainer
from greitpose.train.losses import per_sample_mse, weighted_mse

from conftest import run_cli
from test_train import make_dataset


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


def test_hard_keypoint_mining_keeps_each_samples_largest_keypoint_losses() -> None:
    target = torch.zeros(2, 4, 8, 6)
    pred = target.clone()
    pred[0, 1] += 1.0  # sample 0 wrong on keypoint 1 by 1, keypoint 3 by 2
    pred[0, 3] += 2.0
    pred[1, 0] += 1.0  # sample 1 wrong on keypoint 0 only
    weight = torch.ones(2, 4)
    # per keypoint: 0.5 * error**2; the two hardest of sample 0 are 2.0 and 0.5, of sample 1 0.5 and 0
    assert torch.allclose(per_sample_mse(pred, target, weight, hard=2), torch.tensor([1.25, 0.25]))
    assert torch.allclose(per_sample_mse(pred, target, weight, hard=1), torch.tensor([2.0, 0.5]))
    # all keypoints: the plain loss
    assert torch.allclose(weighted_mse(pred, target, weight, hard=4), weighted_mse(pred, target, weight))
    # an unlabelled keypoint costs nothing however wrong: the hardest of sample 0 is now keypoint 1
    weight[0, 3] = 0.0
    assert torch.allclose(per_sample_mse(pred, target, weight, hard=1)[0], torch.tensor(0.5))


def test_training_scores_the_hard_keypoints_it_is_told(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = make_dataset(tmp_path / "data", n=4)
    seen: list[int] = []

    def recording(pred, target, weight, hard):  # noqa: ANN001, ANN202
        seen.append(hard)
        return weighted_mse(pred, target, weight, hard)

    monkeypatch.setattr("greitpose.train.loop.weighted_mse", recording)
    Trainer(resolve(None, dict(train_ann=str(ann), device="cpu", input_size="128x96", batch_size=2, augment=False,
                               max_steps=2, workers=0, hard_keypoints=8, out=str(tmp_path / "run")))).run()
    assert seen == [8, 8]
    result = run_cli("train", "--train-ann", str(ann), "--hard-keypoints", "18", "--device", "cpu",
                     "--out", str(tmp_path / "bad"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "--hard-keypoints 18 is more than the 17 keypoints of 'coco'" in result.stderr
    assert not (tmp_path / "bad").exists()


def test_joint_weights_scale_the_named_keypoints_loss() -> None:
    """'nose=4,eye=2.25': the nose's error costs 4x, both eyes' 2.25x, the rest as before."""
    from greitpose.keypoints import COCO
    from greitpose.train.joint_weights import joint_loss_scale

    scale = joint_loss_scale("nose=4,eye=2.25", COCO)
    assert scale is not None and joint_loss_scale("", COCO) is None
    target = torch.zeros(1, 17, 8, 6)
    pred = target + 1.0  # every keypoint off by 1: 0.5 each
    weight = torch.ones(1, 17)
    per_keypoint = [per_sample_mse(pred[:, [k]], target[:, [k]], (weight * scale)[:, [k]]).item() for k in range(17)]
    names = COCO.names
    assert per_keypoint[names.index("nose")] == pytest.approx(2.0)
    assert per_keypoint[names.index("left_eye")] == per_keypoint[names.index("right_eye")] == pytest.approx(1.125)
    assert per_keypoint[names.index("left_ear")] == pytest.approx(0.5)
    with pytest.raises(GreitposeError, match="joint weight 'elbw': 'coco' has no such keypoint"):
        joint_loss_scale("elbw=2", COCO)


def test_training_applies_the_joint_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = make_dataset(tmp_path / "data", n=4)
    seen: list[torch.Tensor] = []

    def recording(pred, target, weight, hard):  # noqa: ANN001, ANN202
        seen.append(weight.clone())
        return weighted_mse(pred, target, weight, hard)

    monkeypatch.setattr("greitpose.train.loop.weighted_mse", recording)
    Trainer(resolve(None, dict(train_ann=str(ann), device="cpu", input_size="128x96", batch_size=2, augment=False,
                               max_steps=1, workers=0, joint_weights="wrist=9", out=str(tmp_path / "run")))).run()
    labelled = seen[0] > 0
    # the target weights of labelled wrists are 3 (the square root of 9), every other labelled one 1
    assert torch.all(seen[0][labelled[:, 9]][:, 9] == 3.0) and torch.all(seen[0][labelled[:, 0]][:, 0] == 1.0)
    assert labelled[:, 9].any() and labelled[:, 0].any()
