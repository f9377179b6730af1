"""`greitpose label`: teacher annotations for the people a keypoint file leaves out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from greitpose.evaluation.oks import oks
from greitpose.keypoints import COCO
from greitpose.results import Poses
from greitpose.tracking import box_iou
from greitpose.train.teacher_labels import (TeacherSettings, annotation, is_labelled, xywh_to_xyxy, zoom_read,
                                             zoom_square)

from conftest import run_cli, shared_model, shared_path

SETTINGS = TeacherSettings()
SIGMAS = np.asarray(COCO.sigmas)


def _pose(x0: float, y0: float, w: float, h: float) -> np.ndarray:
    """(17, 2) keypoints spread over a box, distinct per joint."""
    t = np.linspace(0.1, 0.9, 17)
    return np.stack([x0 + w * t[::-1], y0 + h * t], axis=1)


def _labelled(x0: float, y0: float, w: float, h: float) -> dict:
    joints = np.concatenate([_pose(x0, y0, w, h), np.full((17, 1), 2.0)], axis=1)
    return {"bbox": [x0, y0, w, h], "area": w * h, "keypoints": joints.ravel().tolist()}


def test_annotation_keeps_only_confident_keypoints_of_people_large_enough() -> None:
    box = np.array([10.0, 20.0, 70.0, 140.0])
    scores = np.where(np.arange(17) < 8, 0.9, 0.2)
    person = annotation(box, _pose(10, 20, 60, 120), scores, SETTINGS)
    joints = np.asarray(person["keypoints"]).reshape(17, 3)
    assert person["num_keypoints"] == 8 and (joints[:8, 2] == 2).all()
    assert (joints[8:] == 0).all()  # unlabelled: v=0 and no position, never "no keypoint here"
    assert person["bbox"] == [10.0, 20.0, 60.0, 120.0] and person["label"] == "teacher"
    assert annotation(box, _pose(10, 20, 60, 120), np.where(np.arange(17) < 5, 0.9, 0.2), SETTINGS) is None
    tiny = np.array([10.0, 20.0, 30.0, 45.0])  # 20 x 25 px: under COCO's 32 x 32
    assert annotation(tiny, _pose(10, 20, 20, 25), np.full(17, 0.9), SETTINGS) is None


def test_a_labelled_person_is_recognised_by_box_or_by_keypoints() -> None:
    labelled = [_labelled(100, 50, 80, 200)]
    same_box = np.array([102.0, 48.0, 182.0, 255.0])
    assert is_labelled(same_box, _pose(300, 50, 80, 200), labelled, SETTINGS)
    # a loose box (IoU under 0.5) around the same joints
    loose = np.array([60.0, 0.0, 260.0, 330.0])
    assert is_labelled(loose, _pose(100, 50, 80, 200) + 2.0, labelled, SETTINGS)
    beside = np.array([200.0, 60.0, 270.0, 240.0])
    assert not is_labelled(beside, _pose(200, 60, 70, 180), labelled, SETTINGS)


def test_zoomed_reading_maps_back_to_image_pixels() -> None:
    image = np.zeros((300, 400, 3), np.uint8)
    box = np.array([100.0, 60.0, 160.0, 180.0])  # 60 x 120 px
    x0, y0, side = zoom_square(box, SETTINGS.zoom_pad)
    assert side == pytest.approx(150.0) and (x0, y0) == pytest.approx((55.0, 45.0))
    k = SETTINGS.zoom_size / side
    truth = _pose(100, 60, 60, 120)
    crop_box = (box - [x0, y0, x0, y0]) * k
    other = np.array([0.0, 0.0, 30.0, 50.0])  # a neighbour in the crop that does not match the box

    def reader(crop: np.ndarray) -> Poses:
        assert crop.shape == (SETTINGS.zoom_size, SETTINGS.zoom_size, 3)
        keypoints = np.stack([np.zeros((17, 2)), (truth - [x0, y0]) * k])
        return Poses(np.stack([other, crop_box]), np.array([0.9, 0.8]), keypoints, np.full((2, 17), 0.7),
                     np.array([0.9, 0.8]))

    keypoints, scores = zoom_read(reader, image, box, SETTINGS)
    np.testing.assert_allclose(keypoints, truth, atol=1e-6)
    assert (scores == 0.7).all()
    assert zoom_read(lambda crop: Poses(other[None], np.ones(1), np.zeros((1, 17, 2)), np.ones((1, 17)),
                                        np.ones(1)), image, box, SETTINGS) is None


def test_label_finds_the_people_left_out_of_coco_tiny(tmp_path: Path) -> None:
    """Only the largest person per coco-tiny image stays labelled; the teacher must bring back
    people that match the removed ground truth, never a copy of the labelled one, and keep every
    original annotation as it was."""
    teacher = shared_model("yolo11n-pose.pt")
    root = shared_path("coco-tiny")
    ann, images = root / "test_coco.json", root
    data = json.loads(ann.read_text())
    people = [a for a in data["annotations"] if not a.get("iscrowd") and a["num_keypoints"] >= 10]
    largest = {}
    for a in people:
        if a["area"] > largest.get(a["image_id"], {"area": 0})["area"]:
            largest[a["image_id"]] = a
    removed = [a for a in people if a is not largest[a["image_id"]]]
    data["annotations"] = list(largest.values())
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(data))
    out = tmp_path / "plus.json"
    result = run_cli("label", str(cut), "--images", str(images), "--teacher", str(teacher), "--out", str(out))
    assert result.returncode == 0, result.stderr
    plus = json.loads(out.read_text())
    assert plus["annotations"][:len(largest)] == list(largest.values())
    added = plus["annotations"][len(largest):]
    assert added and all(a["label"] == "teacher" and a["source"].endswith("-others") for a in added)
    assert len({a["id"] for a in plus["annotations"]}) == len(plus["annotations"])
    assert plus["info"]["greitpose_teacher_labels"]["added"] == len(added)

    def best_oks(a: dict, truth: list[dict]) -> float:
        kp = np.asarray(a["keypoints"]).reshape(17, 3)
        scores = [oks(np.asarray(t["keypoints"]).reshape(17, 3)[:, :2], kp[None, :, :2], t["area"], SIGMAS,
                      np.asarray(t["keypoints"]).reshape(17, 3)[:, 2] * (kp[:, 2] > 0))[0]
                  for t in truth if t["image_id"] == a["image_id"]]
        return max(scores, default=0.0)

    assert all(best_oks(a, list(largest.values())) < 0.3 for a in added)
    matched = sum(best_oks(a, removed) >= 0.5 for a in added)
    assert matched >= 0.6 * len(added) and matched >= 0.4 * len(removed), (matched, len(added), len(removed))

    # a second pass over its own output, with some teacher people taken out again, reads back just
    # those, under the image's own source (never '-others-others'); the rest are not added twice
    per_image = Counter(a["image_id"] for a in added)
    dropped = [next(a for a in added if a["image_id"] == i) for i, n in per_image.items() if n > 1]
    assert dropped, per_image
    plus["annotations"] = [a for a in plus["annotations"] if a not in dropped]
    again, twice = tmp_path / "again.json", tmp_path / "twice.json"
    again.write_text(json.dumps(plus))
    result = run_cli("label", str(again), "--images", str(images), "--teacher", str(teacher), "--out", str(twice))
    assert result.returncode == 0, result.stderr
    second = json.loads(twice.read_text())["annotations"][len(plus["annotations"]):]
    assert {a["source"] for a in second} == {a["source"] for a in added}
    assert len(second) == len(dropped) and all(best_oks(a, dropped) >= 0.9 for a in second)


@pytest.mark.parametrize("extra, needle", [
    (["--box-conf", "1.5"], "--box-conf must be 0 to 1, got 1.5"),
    (["--size", "100"], "--size must be 64 to 4096, a multiple of 32, got 100"),
    (["--workers", "0"], "--workers must be 1 to 256, got 0"),
])
def test_bad_label_options_are_one_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    result = run_cli("label", str(tmp_path / "a.json"), "--images", str(tmp_path), "--teacher", "t.pt",
                     "--out", str(tmp_path / "o.json"), *extra)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr


def test_label_refuses_a_missing_teacher_and_its_own_input(tmp_path: Path) -> None:
    root = shared_path("coco-tiny")
    ann, images = root / "test_coco.json", root
    out = tmp_path / "plus.json"
    missing = run_cli("label", str(ann), "--images", str(images), "--teacher", str(tmp_path / "none.pt"),
                      "--out", str(out))
    assert missing.returncode != 0 and "teacher model" in missing.stderr and "none.pt" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not out.exists()
    same = run_cli("label", str(ann), "--images", str(images), "--teacher", "t.pt", "--out", str(ann))
    assert same.returncode != 0 and "would overwrite" in same.stderr
    unknown = run_cli("label", str(ann), "--images", str(images), "--teacher", str(tmp_path / "none.pt"),
                      "--out", str(out), "--sources", "nowhere")
    assert unknown.returncode != 0 and len(unknown.stderr.strip().splitlines()) == 1 and not out.exists()


def box_iou_of(box: np.ndarray, person: dict) -> float:
    return float(box_iou(box[None], xywh_to_xyxy(person["bbox"]))[0, 0])


def test_a_box_around_most_labelled_joints_is_that_person() -> None:
    """A misread of the labelled person: wrong keypoints, a box unlike the label's, yet holding
    most of its joints."""
    labelled = [_labelled(100, 50, 80, 200)]
    misread = np.array([60.0, 110.0, 260.0, 260.0])  # wide, around the lower three quarters
    assert box_iou_of(misread, labelled[0]) < 0.5
    assert is_labelled(misread, _pose(0, 0, 40, 40), labelled, SETTINGS)
    assert not is_labelled(misread, _pose(0, 0, 40, 40), labelled, TeacherSettings(same_inside=0.9))
