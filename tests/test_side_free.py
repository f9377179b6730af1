"""--free-sides: the loss takes the best side assignment of untrusted labels, and only theirs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO, MPII
from greitpose.train.config import resolve
from greitpose.train.data import Sample
from greitpose.train.loop import Trainer
from greitpose.train.losses import weighted_mse
from greitpose.train.side_free import free_side_samples, side_assignments, side_free_mse

from conftest import run_cli
from test_train import make_dataset


def test_side_assignments_exchange_whole_limb_groups() -> None:
    perms = side_assignments(COCO)
    names = [[COCO.names[i] for i in perm] for perm in perms.tolist()]
    assert names[0] == list(COCO.names)
    assert names[1][5:11] == ["right_shoulder", "left_shoulder", "right_elbow", "left_elbow",
                              "right_wrist", "left_wrist"] and names[1][11:] == names[0][11:]
    assert names[2][11:13] == ["right_hip", "left_hip"] and names[2][:11] == names[0][:11]
    assert names[3][:5] == names[0][:5] and names[3][5:] == [*names[1][5:11], *names[2][11:]]
    with pytest.raises(GreitposeError, match="COCO's 17 keypoints only, not 'mpii'"):
        side_assignments(MPII)


def test_free_samples_score_their_best_side_assignment() -> None:
    g = torch.Generator().manual_seed(0)
    target, pred = torch.rand(4, 17, 8, 6, generator=g), torch.rand(4, 17, 8, 6, generator=g)
    weight = (torch.rand(4, 17, generator=g) > 0.2).float()
    perms = side_assignments(COCO)
    none = torch.zeros(4, dtype=torch.bool)
    assert torch.allclose(side_free_mse(pred, target, weight, none, perms), weighted_mse(pred, target, weight))
    # predictions that are each sample's label with another limb group's sides exchanged
    exchanged = torch.stack([target[i, perms[i]] for i in range(4)])
    free = torch.tensor([True, True, False, True])
    per_sample = [float(weighted_mse(exchanged[i:i + 1], target[i:i + 1], weight[i:i + 1])) for i in range(4)]
    assert per_sample[0] == 0 and min(per_sample[1:]) > 0
    # free samples cost nothing, the one whose sides count keeps its whole loss
    assert float(side_free_mse(exchanged, target, weight, free, perms)) == pytest.approx(per_sample[2] / 4)


def test_free_sides_flag_the_named_sources_only() -> None:
    samples = [Sample(Path("x"), np.zeros((17, 2)), np.ones(17), np.zeros(2), np.ones(2), src)
               for src in ("lsp", "stock", "lsp")]
    flags, perms = free_side_samples(samples, COCO, "lsp")
    assert flags.tolist() == [True, False, True] and perms.shape == (4, 17)
    assert free_side_samples(samples, COCO, " ") == (None, None)
    with pytest.raises(GreitposeError, match="no annotation has: fashion"):
        free_side_samples(samples, COCO, "lsp,fashion")


def _mixed_sources(ann: Path) -> Path:
    """Odd annotations from 'lsp' with their nose unlabelled, even ones from 'stock', fully labelled."""
    data = json.loads(ann.read_text())
    for i, a in enumerate(data["annotations"]):
        a["source"] = "lsp" if i % 2 else "stock"
        if i % 2:
            a["keypoints"][2] = 0
    ann.write_text(json.dumps(data))
    return ann


def test_training_leaves_the_sides_of_named_sources_free(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ann = _mixed_sources(make_dataset(tmp_path / "data", n=6))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def recording(pred, target, weight, free, perms, hard):  # noqa: ANN001, ANN202
        seen.append((free.clone(), weight[:, 0] == 0))
        return side_free_mse(pred, target, weight, free, perms, hard)

    monkeypatch.setattr("greitpose.train.loop.side_free_mse", recording)
    Trainer(resolve(None, dict(train_ann=str(ann), device="cpu", input_size="128x96", batch_size=2, augment=False,
                               max_steps=6, workers=0, free_sides="lsp", out=str(tmp_path / "run")))).run()
    # every step's flags belong to the samples of that step's batch (two epochs of three batches)
    assert len(seen) == 6 and all(free.tolist() == lsp.tolist() for free, lsp in seen)
    assert sum(int(free.sum()) for free, _ in seen) == 6
    result = run_cli("train", "--train-ann", str(ann), "--free-sides", "lspet", "--out", str(tmp_path / "bad"),
                     "--device", "cpu")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--free-sides names sources no annotation has: lspet" in result.stderr
