"""`greitpose label --mirror-agree`: teacher keypoints held to the teacher's mirrored reading."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose.results import Poses
from greitpose.train.mirror_check import checked, teacher_keypoints
from greitpose.train.teacher_labels import TeacherSettings, zoom_read, zoom_square

from conftest import run_cli, shared_model, shared_path

SETTINGS = TeacherSettings(mirror_agree=0.7)


def _person(label: str, keypoints: np.ndarray) -> dict:
    joints = np.concatenate([keypoints, np.full((17, 1), 2.0)], axis=1)
    return {"id": 1, "bbox": [100.0, 50.0, 80.0, 200.0], "area": 16000.0, "label": label,
            "keypoints": joints.ravel().tolist(), "num_keypoints": 17}


def _spread() -> np.ndarray:
    t = np.linspace(0.1, 0.9, 17)
    return np.stack([100 + 80 * t[::-1], 50 + 200 * t], axis=1)


def test_only_teacher_keypoints_that_the_mirrored_reading_moves_or_doubts_lose_their_label() -> None:
    joints = _spread()
    reading = joints.copy()
    reading[3] += [25.0, 0.0]  # the mirrored reading puts the left ear elsewhere
    reading[12] += [1.0, -1.0]  # and the right hip a pixel off: agreement
    confidence = np.full(17, 0.9)
    confidence[15] = 0.2  # and is unsure of the left ankle
    person, lost = checked(_person("teacher", joints), (reading, confidence), 0.7, 0.5)
    kept = np.asarray(person["keypoints"]).reshape(17, 3)
    assert lost == 2 and person["num_keypoints"] == 15
    assert (kept[[3, 15]] == 0).all()  # unlabelled: v=0 and no position
    np.testing.assert_allclose(kept[np.r_[0:3, 4:15, 16], :2], joints[np.r_[0:3, 4:15, 16]], atol=0.01)
    # human labels are never the teacher's to take back; 'human+teacher' only its face points
    human, lost = checked(_person("human", joints), (reading, confidence), 0.7, 0.5)
    assert lost == 0 and human == _person("human", joints)
    mixed, lost = checked(_person("human+teacher", joints), (reading, confidence), 0.7, 0.5)
    assert lost == 1 and np.asarray(mixed["keypoints"]).reshape(17, 3)[3, 2] == 0
    # no such person in the mirrored photo: every teacher keypoint is doubtful
    gone, lost = checked(_person("human+teacher", joints), None, 0.7, 0.5)
    assert lost == 5 and gone["num_keypoints"] == 12
    assert teacher_keypoints(gone).sum() == 0


def test_disputed_teacher_keypoints_can_keep_their_label_at_a_lower_weight() -> None:
    joints = _spread()
    reading = joints.copy()
    reading[3] += [25.0, 0.0]
    confidence = np.full(17, 0.9)
    confidence[15] = 0.2
    person, disputed = checked(_person("teacher", joints), (reading, confidence), 0.7, 0.5, disputed_weight=0.3)
    assert disputed == 2 and person["keypoints"] == _person("teacher", joints)["keypoints"]  # nothing moved or lost
    expected = np.ones(17)
    expected[[3, 15]] = 0.3
    assert person["keypoint_weights"] == expected.tolist()
    # weights already lower stay lower; human labels keep no weights at all
    person["keypoint_weights"][15] = 0.1
    again, _ = checked(person, (reading, confidence), 0.7, 0.5, disputed_weight=0.3)
    assert again["keypoint_weights"][15] == 0.1 and again["keypoint_weights"][3] == 0.3
    human, disputed = checked(_person("human", joints), (reading, confidence), 0.7, 0.5, disputed_weight=0.3)
    assert disputed == 0 and "keypoint_weights" not in human


def test_mirrored_zoom_reading_maps_back_with_sides_exchanged() -> None:
    """A reader that calls the green blob its left shoulder: read mirrored, that blob is the
    person's right shoulder, at the same image position."""
    image = np.zeros((300, 400, 3), np.uint8)
    box = np.array([100.0, 60.0, 160.0, 180.0])
    cv2.circle(image, (130, 120), 4, (0, 0, 255), -1)  # red, the box's centre: the reader's box
    cv2.circle(image, (112, 90), 4, (0, 255, 0), -1)  # green, off centre: the left shoulder
    x0, y0, side = zoom_square(box, SETTINGS.zoom_pad)
    k = SETTINGS.zoom_size / side

    def centroid(mask: np.ndarray) -> np.ndarray:
        ys, xs = np.nonzero(mask)
        return np.array([xs.mean(), ys.mean()]) + 0.5  # the teacher's coordinates: pixel i spans [i, i + 1)

    def reader(crop: np.ndarray) -> Poses:
        centre, shoulder = centroid(crop[..., 2] > 127), centroid(crop[..., 1] > 127)
        keypoints = np.tile(centre, (17, 1))
        keypoints[5] = shoulder
        half = (box[2:] - box[:2]) * k / 2
        return Poses(np.concatenate([centre - half, centre + half])[None], np.ones(1), keypoints[None],
                     np.full((1, 17), 0.9), np.ones(1))

    plain, _ = zoom_read(reader, image, box, SETTINGS)
    mirrored, _ = zoom_read(reader, image, box, SETTINGS, mirrored=True)
    np.testing.assert_allclose(plain[5], [112.0, 90.0], atol=0.6)
    np.testing.assert_allclose(mirrored[6], plain[5], atol=0.05)
    np.testing.assert_allclose(mirrored[5], [130.0, 120.0], atol=0.6)


def test_label_mirror_check_unlabels_moved_teacher_keypoints_of_coco_tiny(tmp_path: Path) -> None:
    """coco-tiny's people given as teacher labels, with the wrists of each moved a third of the
    person's height: the teacher's mirrored reading must take those back, keep most of the
    rest, and leave human labels and the file's other fields as they were."""
    teacher = shared_model("yolo11n-pose.pt")
    root = shared_path("coco-tiny")
    data = json.loads((root / "test_coco.json").read_text())
    people = [a for a in data["annotations"] if not a.get("iscrowd") and a["num_keypoints"] >= 12]
    human = [a for a in data["annotations"] if a not in people]
    moved = 0
    for a in people:
        a["label"] = "teacher"
        joints = np.asarray(a["keypoints"], float).reshape(17, 3)
        for j in (9, 10):
            if joints[j, 2] > 0:
                joints[j, 1] += a["bbox"][3] / 3
                moved += 1
        a["keypoints"] = joints.ravel().tolist()
    ann, out = tmp_path / "teacher.json", tmp_path / "checked.json"
    ann.write_text(json.dumps(data))
    result = run_cli("label", str(ann), "--images", str(root), "--teacher", str(teacher), "--out", str(out),
                     "--mirror-agree", "0.7", "--no-add")
    assert result.returncode == 0, result.stderr
    after = json.loads(out.read_text())
    assert len(after["annotations"]) == len(data["annotations"])  # --no-add: nobody new
    by_id = {a["id"]: a for a in after["annotations"]}
    assert all(by_id[a["id"]] == a for a in human)
    wrists_left = kept = total = 0
    for a in people:
        before = np.asarray(a["keypoints"]).reshape(17, 3)
        now = np.asarray(by_id[a["id"]]["keypoints"]).reshape(17, 3)
        assert by_id[a["id"]]["num_keypoints"] == int((now[:, 2] > 0).sum())
        assert ((now[:, 2] == 0) | (now == before).all(axis=1)).all()  # labels are taken back, never moved
        wrists_left += int((now[[9, 10], 2] > 0).sum())
        rest = np.r_[0:9, 11:17]
        kept += int((now[rest, 2] > 0).sum())
        total += int((before[rest, 2] > 0).sum())
    assert moved >= 15 and wrists_left <= 0.1 * moved, (wrists_left, moved)
    assert kept >= 0.7 * total, (kept, total)
    info = after["info"]["greitpose_teacher_labels"]
    assert info["checked"] == len(people) and info["keypoints_disputed"] == moved - wrists_left + total - kept


@pytest.mark.parametrize("extra, needle", [
    (["--mirror-agree", "1.5"], "--mirror-agree must be 0 to 1, got 1.5"),
    (["--no-add"], "--no-add without --mirror-agree leaves nothing to do"),
    (["--mirror-agree", "0.7", "--zoom-size", "0"], "needs --zoom-size above 0"),
    (["--disputed-weight", "0.5"], "give --mirror-agree too"),
    (["--mirror-agree", "0.7", "--disputed-weight", "2"], "--disputed-weight must be 0 to 1, got 2"),
])
def test_bad_mirror_check_options_are_one_line(tmp_path: Path, extra: list[str], needle: str) -> None:
    teacher = tmp_path / "t.pt"
    teacher.write_bytes(b"not read")
    result = run_cli("label", str(tmp_path / "a.json"), "--images", str(tmp_path), "--teacher", str(teacher),
                     "--out", str(tmp_path / "o.json"), *extra)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not (tmp_path / "o.json").exists()
