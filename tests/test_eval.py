"""eval: the metric paths against pycocotools and hand-computed PCKh, and the command itself."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from greitpose.datasets import load_coco, load_mpii
from greitpose.errors import GreitposeError
from greitpose.evaluation import coco, mpii
from greitpose.evaluation.oks import oks, oks_nms
from greitpose.keypoints import COCO

from conftest import run_cli, shared_model, shared_path


def _coco_tiny():
    ann = shared_path("coco-tiny", "test_coco.json")
    return load_coco(ann, ann.parent)


def _gt_predictions(ds, shift: float = 0.0) -> list[dict]:
    preds = []
    for a in ds.annotations:
        if a.get("num_keypoints", 0) == 0 or a.get("iscrowd", 0):
            continue
        k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        k[:, :2] += shift
        k[:, 2] = 1.0
        preds.append({"image_id": a["image_id"], "category_id": 1, "keypoints": k.reshape(-1).tolist(),
                      "score": 1.0})
    return preds


def test_ground_truth_keypoints_score_ap_one() -> None:
    ds = _coco_tiny()
    scores = coco.coco_eval(ds, _gt_predictions(ds), sorted(ds.images), coco.sigmas_for(ds))
    assert scores.metrics["AP"] == pytest.approx(1.0) and scores.metrics["AR"] == pytest.approx(1.0)
    # every person with keypoints is matched, every keypoint exact
    assert scores.per_keypoint["matched"] == 12
    assert all(v == pytest.approx(1.0) for v in scores.per_keypoint["similarity"].values())


def test_per_keypoint_scores_name_the_keypoint_that_is_off() -> None:
    """Right wrists moved 8 px: only that row drops, by the OKS formula averaged over the
    people who have one; people whose right wrist is unlabelled do not count."""
    ds = _coco_tiny()
    preds = _gt_predictions(ds)
    wrist = COCO.names.index("right_wrist")
    for p in preds:
        p["keypoints"][3 * wrist] += 8.0
    scores = coco.coco_eval(ds, preds, sorted(ds.images), coco.sigmas_for(ds))
    similarity = scores.per_keypoint["similarity"]
    people = [a for a in ds.annotations if a.get("num_keypoints", 0) and a["keypoints"][3 * wrist + 2] > 0]
    sigma = coco.sigmas_for(ds)[wrist]
    expected = np.mean([np.exp(-64 / (2 * a["area"] * (2 * sigma) ** 2)) for a in people])
    assert similarity["right_wrist"] == pytest.approx(expected, rel=1e-6) and expected < 0.99
    assert all(v == pytest.approx(1.0) for name, v in similarity.items() if name != "right_wrist")


def _direct_pycocotools(ann: Path, preds: list[dict]) -> list[float]:
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi(str(ann))
        ev = COCOeval(gt, gt.loadRes(preds), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return list(ev.stats)


@pytest.mark.parametrize("shift", [2.0, 6.0])
def test_shifted_keypoints_lower_ap_as_pycocotools_says(shift: float) -> None:
    ds = _coco_tiny()
    preds = _gt_predictions(ds, shift)
    ours = coco.coco_eval(ds, preds, sorted(ds.images), coco.sigmas_for(ds)).metrics
    direct = _direct_pycocotools(ds.ann_file, preds)
    assert list(ours.values()) == pytest.approx(direct, abs=1e-9)
    assert ours["AP"] < 1.0


def test_oks_matches_the_coco_formula() -> None:
    sigmas = np.asarray(COCO.sigmas)
    a = np.zeros((17, 2))
    shift = 3.0
    b = a[None] + shift
    area = 5000.0
    expected = np.mean(np.exp(-(2 * shift**2) / (2 * area * (2 * sigmas) ** 2)))
    assert oks(a, b, area, sigmas)[0] == pytest.approx(expected)


def test_oks_nms_drops_near_duplicates() -> None:
    sigmas = np.asarray(COCO.sigmas)
    base = np.random.default_rng(0).uniform(0, 100, (17, 2))
    poses = np.stack([base, base + 0.1, base + 50])
    keep = oks_nms(poses, np.array([0.5, 0.9, 0.7]), np.full(3, 10000.0), sigmas, 0.9)
    assert keep == [1, 2]


def test_mpii_ground_truth_is_100_and_a_known_shift_gives_the_hand_computed_value() -> None:
    ann = shared_path("mpii-tiny", "test_mpii.json")
    people = load_mpii(ann, ann.parent)
    gt = np.stack([p.joints for p in people])
    assert mpii.pckh(gt, people)["Mean"] == pytest.approx(100.0)
    heads = [np.linalg.norm(p.joints[9] - p.joints[8]) for p in people]
    ordered = sorted(heads)
    length = 0.25 * (ordered[1] + ordered[2])  # between two people's 0.5 x head size
    shifted = gt + np.array([length * 0.6, length * 0.8])  # a vector of that length
    correct = total = 0
    for p, h in zip(people, heads):
        for j in mpii.MEAN_JOINTS:
            if p.visible[j] > 0:
                total += 1
                correct += length <= 0.5 * h
    assert mpii.pckh(shifted, people)["Mean"] == pytest.approx(100 * correct / total)
    assert 0 < correct < total


def test_custom_dataset_with_own_keypoints(tmp_path: Path) -> None:
    import cv2

    names = ["head", "left_hand", "right_hand", "left_foot", "right_foot"]
    cv2.imwrite(str(tmp_path / "a.jpg"), np.zeros((100, 100, 3), np.uint8))
    kpts = [50, 10, 2, 30, 50, 2, 70, 50, 2, 40, 90, 2, 60, 90, 2]
    data = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [25, 5, 50, 90],
                             "area": 4500, "iscrowd": 0, "num_keypoints": 5, "keypoints": kpts}],
            "categories": [{"id": 1, "name": "thing", "keypoints": names, "skeleton": [[1, 2]]}]}
    (tmp_path / "ann.json").write_text(json.dumps(data))
    ds = load_coco(tmp_path / "ann.json", tmp_path, sigmas=(0.05,) * 5)
    assert ds.keypoints.flip_pairs == ((1, 2), (3, 4))
    metrics = coco.coco_eval(ds, _gt_predictions(ds), [1], coco.sigmas_for(ds)).metrics
    assert metrics["AP"] == pytest.approx(1.0)


def _broken(tmp_path: Path, case: str) -> Path:
    src = shared_path("coco-tiny", "test_coco.json")
    data = json.loads(src.read_text())
    for im in data["images"]:
        if case != "missing-image":
            shutil.copy(src.parent / im["file_name"], tmp_path / im["file_name"])
    if case == "missing-key":
        del data["annotations"][3]["keypoints"]
    (tmp_path / "test_coco.json").write_text(json.dumps(data))
    return tmp_path


def test_broken_annotation_names_the_entry(tmp_path: Path) -> None:
    root = _broken(tmp_path, "missing-key")
    with pytest.raises(GreitposeError, match=r"annotation #3 \(id \d+\) has no 'keypoints'"):
        load_coco(root / "test_coco.json", root)


def test_cli_missing_image_is_named(tmp_path: Path, random_checkpoint: Path) -> None:
    root = _broken(tmp_path, "missing-image")
    result = run_cli("eval", "--dataset", "coco", "--data-root", str(root), "--weights", str(random_checkpoint))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "000000000785.jpg (id 785)" in result.stderr and "missing" in result.stderr


@pytest.mark.slow
def test_cli_full_coco_run_with_detections(tmp_path: Path, random_checkpoint: Path) -> None:
    root = shared_path("coco-tiny")
    result = run_cli("eval", "--dataset", "coco", "--data-root", str(root), "--boxes",
                     str(root / "test_coco_det_AP_H_56.json"), "--weights", str(random_checkpoint),
                     "--device", "cpu", "--json", str(tmp_path / "m.json"),
                     "--save-predictions", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr
    for name in ("AP50", "AP75", "APM", "APL", "AR", "ARL"):
        assert name in result.stdout
    metrics = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert set(metrics) == set(coco.STAT_NAMES) and 0.0 <= metrics["AP"] <= 1.0
    preds = json.loads((tmp_path / "p.json").read_text())
    assert preds and all(len(p["keypoints"]) == 51 for p in preds)


def _coco_from_mpii(joints: np.ndarray) -> np.ndarray:
    """COCO keypoints (N, 17, 2) holding MPII joints at the places `as_mpii` reads them from."""
    out = np.zeros((len(joints), 17, 2))
    for joint, sources in mpii.FROM_COCO.items():
        if len(sources) == 1:
            out[:, sources[0]] = joints[:, joint]
    return out


def test_a_coco_model_is_scored_on_the_mpii_joints_it_has() -> None:
    ann = shared_path("mpii-tiny", "test_mpii.json")
    people = load_mpii(ann, ann.parent)
    gt = np.stack([p.joints for p in people])
    mapped = mpii.as_mpii(_coco_from_mpii(gt), COCO)
    limbs = [j for j, sources in mpii.FROM_COCO.items() if len(sources) == 1]
    assert np.allclose(mapped[:, limbs], gt[:, limbs])
    assert np.allclose(mapped[:, 6], (gt[:, 2] + gt[:, 3]) / 2)  # pelvis: midpoint of the hips
    assert np.allclose(mapped[:, 7], (gt[:, 12] + gt[:, 13]) / 2)  # thorax: of the shoulders
    assert np.isnan(mapped[:, [8, 9]]).all()  # COCO has no upper neck or head top
    joints = mpii.mpii_joints(COCO)
    result = mpii.pckh(mapped, people, joints=joints)
    assert "Head" not in result and result["Mean"] == pytest.approx(100.0)
    # one person missed (NaN): their visible mean joints count as wrong, not as unscored
    mapped[0] = np.nan
    counted = [sum(p.visible[j] > 0 for j in mpii.MEAN_JOINTS if j in joints) for p in people]
    assert mpii.pckh(mapped, people, joints=joints)["Mean"] == pytest.approx(100 * (1 - counted[0] / sum(counted)))


def test_mpii_needs_mpii_or_coco_keypoints() -> None:
    from greitpose.keypoints import MPII, generic

    assert mpii.mpii_joints(MPII) == tuple(range(16))
    with pytest.raises(GreitposeError, match="MPII needs an MPII .16. or COCO .17. keypoint model"):
        mpii.mpii_joints(generic(17))


def test_mpii_crop_keeps_its_height_at_a_narrower_aspect() -> None:
    from greitpose.datasets import MpiiPerson, mpii_box

    person = MpiiPerson(Path("x.jpg"), np.zeros((16, 2)), np.ones(16), np.array([100.0, 200.0]), 2.0)
    square = mpii_box(person)
    assert np.allclose(square, [-150, -20, 350, 480])  # side 1.25 x 2 x 200, 30 px down
    narrow = mpii_box(person, 0.75)
    assert np.allclose(narrow, [-87.5, -20, 287.5, 480])
    assert np.allclose(mpii_box(person, 2.0), [-150, 105, 350, 355])


def test_peer_person_is_the_box_around_the_annotated_center() -> None:
    from greitpose.results import Poses

    boxes = np.array([[0, 0, 100, 120], [40, 40, 60, 60], [200, 200, 300, 300]], np.float32)
    poses = Poses(boxes, np.ones(3), np.zeros((3, 17, 2)), np.ones((3, 17)), np.ones(3))
    assert mpii.nearest_pose(poses, np.array([52.0, 50.0])) == 1
    assert mpii.nearest_pose(poses, np.array([10.0, 90.0])) == 0
    assert mpii.nearest_pose(poses, np.array([150.0, 150.0])) is None


def test_cli_mpii_with_a_coco_model_and_the_peer(tmp_path: Path, random_checkpoint: Path) -> None:
    root = shared_path("mpii-tiny")
    peer = shared_model("yolo11n-pose.pt")
    result = run_cli("eval", "--dataset", "mpii", "--data-root", str(root), "--weights", str(random_checkpoint),
                     "--device", "cpu", "--peer", str(peer), "--json", str(tmp_path / "m.json"),
                     "--save-predictions", str(tmp_path / "p.json"))
    assert result.returncode == 0, result.stderr
    assert "no Head" in result.stdout and "yolo11n-pose.pt (own boxes)" in result.stdout
    report = json.loads((tmp_path / "m.json").read_text())
    assert "head_top" not in report["joints"] and "Head" not in report["metrics"]
    assert report["peer"]["count"] == report["count"] == 5 and report["peer"]["missed"] == 0
    # the peer finds and reads all five people well; a random network does not
    assert report["peer"]["metrics"]["Mean"] > 80 > report["metrics"]["Mean"]
    saved = json.loads((tmp_path / "p.json").read_text())  # strict JSON: no NaN for the head joints
    assert len(saved) == 5 and saved[0]["joints"][9] is None and len(saved[0]["joints"][0]) == 2


def test_cli_peer_is_scored_on_the_same_images(tmp_path: Path, random_checkpoint: Path) -> None:
    peer = shared_model("yolo11n-pose.pt")
    root = shared_path("coco-tiny")
    result = run_cli("eval", "--dataset", "coco", "--data-root", str(root), "--weights", str(random_checkpoint),
                     "--device", "cpu", "--peer", str(peer), "--json", str(tmp_path / "m.json"),
                     "--per-keypoint")
    assert result.returncode == 0, result.stderr
    assert "yolo11n-pose.pt (own boxes)" in result.stdout
    assert "right_ankle" in result.stdout  # the per-keypoint table
    report = json.loads((tmp_path / "m.json").read_text())
    assert report["peer"]["count"] == report["count"] == 4
    # the peer reads shoulders well on these people (mean OKS term 0.93-0.94 when measured)
    assert report["peer"]["per_keypoint"]["similarity"]["left_shoulder"] > 0.8
    assert report["peer"]["per_keypoint"]["matched"] >= 10
    # the peer's published figure on these 14 persons is AP 0.70 (../shared/models/README.md);
    # the random network scores next to nothing on the same images
    assert report["peer"]["metrics"]["AP"] > 0.6 > report["metrics"]["AP"]


@pytest.mark.parametrize("args, message", [
    (["--peer", "no-such-peer.pt"], "peer model no-such-peer.pt does not exist"),
    (["--dataset", "mpii", "--detector", "yolo11n.pt"], "--boxes and --detector are for COCO sets"),
    (["--sigmas", "0.1,wide"], "sigmas '0.1,wide' are not comma-separated positive numbers"),
    (["--sigmas", "0.1,-0.2"], "sigmas '0.1,-0.2' are not comma-separated positive numbers"),
])
def test_cli_bad_peer_or_box_option_is_one_line(args: list[str], message: str, random_checkpoint: Path) -> None:
    root = shared_path("coco-tiny")
    result = run_cli("eval", "--data-root", str(root), "--weights", str(random_checkpoint), *args)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message in result.stderr


def test_peer_finds_nobody_in_an_empty_image() -> None:
    """An image without people gives empty poses of the right shape, not an error."""
    from greitpose.peer import peer_poses

    run, count = peer_poses(shared_model("yolo11n-pose.pt"))
    poses = run(np.full((240, 320, 3), 127, np.uint8))
    assert count == 17 and len(poses) == 0
    assert poses.keypoints.shape == (0, 17, 2) and poses.keypoint_scores.shape == (0, 17)


def test_the_eval_job_is_one_library_call(tmp_path: Path, random_checkpoint: Path) -> None:
    """What `greitpose eval` prints and writes, from Python: the metric and per-keypoint tables
    and the --json file; a bad option fails before any model loads."""
    from greitpose.evaluation.job import EvalJob, run_eval

    with pytest.raises(GreitposeError, match="unknown dataset 'coc'"):
        run_eval(EvalJob(dataset="coc", weights="no-such-weights.pt"))
    written = tmp_path / "m.json"
    report = run_eval(EvalJob(data_root=shared_path("coco-tiny"), weights=str(random_checkpoint),
                              device="cpu", limit=1, json_path=written))
    assert list(report.columns) == [random_checkpoint.name] and "AP" in report.columns[random_checkpoint.name]
    assert list(report.per_keypoint[random_checkpoint.name]) == list(COCO.names)
    assert json.loads(written.read_text())["metrics"] == report.result.metrics
