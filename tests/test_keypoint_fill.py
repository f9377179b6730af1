"""`greitpose fill`: unlabelled keypoints filled from the shipped model's confident readings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from greitpose.evaluation.oks import oks_terms
from greitpose.keypoints import COCO
from greitpose.train.keypoint_fill import fill_keypoints

from conftest import SHIPPED, run_cli, shared_path


def test_only_unlabelled_confident_readings_inside_the_photo_are_filled() -> None:
    labelled = np.array([[10, 10, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], np.float64)
    read = np.array([[50, 50], [20.123, 30.456], [25, 35], [-3, 40], [60, 100]], np.float64)
    scores = np.array([0.9, 0.8, 0.4, 0.9, 0.9])
    out, filled = fill_keypoints(labelled, read, scores, 0.5, width=64, height=100)
    assert filled.tolist() == [1]  # 0 is labelled, 2 unsure, 3 left of the photo, 4 below it
    assert out[0].tolist() == [10, 10, 2] and out[1].tolist() == [20.12, 30.46, 2]
    assert (out[2:] == 0).all() and (labelled[1:] == 0).all()  # the input stays as it was


def test_fill_brings_back_removed_keypoints_where_they_were(tmp_path: Path) -> None:
    """coco-tiny with every wrist, elbow and knee of its people unlabelled, marked teacher
    labels: the filled keypoints must land near the removed ground truth, labels already there
    and annotations of other kinds must stay exactly as they were."""
    if not SHIPPED.is_file():
        raise AssertionError(f"shipped weights {SHIPPED} are missing")
    root = shared_path("coco-tiny")
    data = json.loads((root / "test_coco.json").read_text())
    removed = [7, 8, 9, 10, 13, 14]
    truth = {}
    for n, a in enumerate(data["annotations"]):
        a["label"] = "teacher" if n % 4 else "human"
        if a["label"] == "teacher" and not a.get("iscrowd") and a["num_keypoints"] >= 10:
            truth[a["id"]] = np.asarray(a["keypoints"], np.float64).reshape(17, 3).copy()
            k = truth[a["id"]].copy()
            k[removed] = 0
            a["keypoints"] = k.reshape(-1).tolist()
    assert len(truth) >= 5
    cut, out = tmp_path / "cut.json", tmp_path / "filled.json"
    cut.write_text(json.dumps(data))
    result = run_cli("fill", str(cut), "--images", str(root), "--out", str(out), "--weights", str(SHIPPED),
                     "--backend", "torch")
    assert result.returncode == 0, result.stderr
    filled = json.loads(out.read_text())
    assert filled["info"]["greitpose_keypoint_fill"]["filled"] > 0
    near = total = 0
    for before, after in zip(data["annotations"], filled["annotations"]):
        if before["label"] != "teacher" or before.get("iscrowd"):
            assert after == before
            continue
        k0, k1 = np.asarray(before["keypoints"]).reshape(17, 3), np.asarray(after["keypoints"]).reshape(17, 3)
        assert (k1[k0[:, 2] > 0] == k0[k0[:, 2] > 0]).all()
        assert sorted(after["filled_keypoints"]) == np.flatnonzero((k0[:, 2] == 0) & (k1[:, 2] > 0)).tolist()
        if before["id"] not in truth:
            continue
        gt = truth[before["id"]]
        terms = oks_terms(gt[:, :2], k1[None, :, :2], before["area"], np.asarray(COCO.sigmas))[0]
        scored = [j for j in after["filled_keypoints"] if gt[j, 2] > 0]
        near += int((terms[scored] >= 0.5).sum())  # an OKS term of at least 0.5 against the removed label
        total += len(scored)
    assert total >= 15 and near >= 0.8 * total, (near, total)


def test_fill_refuses_its_own_input_and_kinds_it_cannot_find(tmp_path: Path) -> None:
    root = shared_path("coco-tiny")
    ann, out = root / "test_coco.json", tmp_path / "o.json"
    same = run_cli("fill", str(ann), "--images", str(root), "--out", str(ann))
    assert same.returncode != 0 and "would overwrite" in same.stderr and len(same.stderr.strip().splitlines()) == 1
    none = run_cli("fill", str(ann), "--images", str(root), "--out", str(out), "--weights", str(SHIPPED),
                   "--backend", "torch")
    assert none.returncode != 0 and "no annotation" in none.stderr and "teacher" in none.stderr
    assert len(none.stderr.strip().splitlines()) == 1 and not out.exists()
    bad = run_cli("fill", str(ann), "--images", str(root), "--out", str(out), "--min-score", "2")
    assert bad.returncode != 0 and "--min-score must be 0 to 1, got 2" in bad.stderr
