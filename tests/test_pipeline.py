"""The shipped weights and the whole pipeline with real models: the project's own
Greit-HRNet-18 from weights/ and the offline person detector from ../shared/models.

A missing or broken shipped weights file fails these tests: it is part of the product."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose import checkpoint
from greitpose.sources import DRAWINGS_MARK

from conftest import REPO, SHIPPED, SHIPPED_FAST, run_cli, shared_model, shared_path

#: AP on coco-tiny with ground-truth boxes, a few points under each shipped file's measurement
#: (weights/README.md); raise them whenever better weights are shipped.
COCO_TINY_GT_AP_FLOOR = {SHIPPED: 0.47, SHIPPED_FAST: 0.32}
#: the same for the shipped 256x192 file on yolo11n-pose's boxes (detector at 640)
COCO_TINY_DET_AP_FLOOR = 0.43

pytestmark = pytest.mark.slow


def _metrics(path: Path) -> dict[str, float]:
    return json.loads(path.read_text())["metrics"]


@pytest.mark.parametrize("path, size", [(SHIPPED, (256, 192)), (SHIPPED_FAST, (128, 96))])
def test_shipped_weights_are_a_trained_greit_hrnet_18(path: Path, size: tuple[int, int]) -> None:
    assert path.is_file(), f"{path} is missing: the product ships trained weights"
    model = checkpoint.load(path)
    assert model.config.name == "greit-hrnet-18" and model.config.input_size == size
    record = checkpoint.read_record(path)
    assert record.get("extra", {}).get("samples_seen", 0) > 0  # written by a training run


def test_a_plain_wheel_carries_the_shipped_weights(tmp_path: Path) -> None:
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=600)
    [wheel] = tmp_path.glob("greitpose-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {f"greitpose/_weights/{p.name}" for p in (SHIPPED, SHIPPED_FAST)} <= set(names)
    assert not [n for n in names if n.startswith("greitpose/_weights/yolo")]  # never third-party files


@pytest.mark.parametrize("weights, decode", [(SHIPPED, "quarter"), (SHIPPED_FAST, "quarter"), (SHIPPED, "dark")],
                         ids=lambda v: v.stem if isinstance(v, Path) else v)
def test_eval_coco_tiny_with_ground_truth_boxes_reaches_the_floor(weights: Path, decode: str, tmp_path: Path) -> None:
    root = shared_path("coco-tiny")
    size = checkpoint.load(weights).config.input_size
    # the default weights are found by their input size, as a user names them
    result = run_cli("eval", "--dataset", "coco", "--data-root", str(root), "--input-size", f"{size[0]}x{size[1]}",
                     "--decode", decode, "--json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert _metrics(tmp_path / "m.json")["AP"] >= COCO_TINY_GT_AP_FLOOR[weights]
    assert json.loads((tmp_path / "m.json").read_text())["decode"] == decode  # the record says how it was scored


def test_eval_with_a_pose_model_as_the_person_detector(tmp_path: Path) -> None:
    root = shared_path("coco-tiny")
    detector = shared_model("yolo11n-pose.pt")
    result = run_cli("eval", "--data-root", str(root), "--detector", str(detector),
                     "--json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr
    assert _metrics(tmp_path / "m.json")["AP"] >= COCO_TINY_DET_AP_FLOOR


def test_infer_folder_finds_the_annotated_people(tmp_path: Path) -> None:
    root = shared_path("coco-tiny")
    detector = shared_model("yolo11n-pose.pt")
    result = run_cli("infer", str(root), "--detector", str(detector), "--out", str(tmp_path / "drawn"),
                     "--json", str(tmp_path / "r.json"))
    assert result.returncode == 0, result.stderr
    drawn = sorted(p.name for p in (tmp_path / "drawn").iterdir())
    assert drawn == sorted([DRAWINGS_MARK, *(p.name for p in root.glob("*.jpg"))])
    found = json.loads((tmp_path / "r.json").read_text())
    truth = json.loads((root / "test_coco.json").read_text())["annotations"]
    matched = 0
    for a in truth:
        x, y, w, h = a["bbox"]
        people = [e for e in found if e["image_id"] == a["image_id"]]
        centres = [(e["bbox"][0] + e["bbox"][2] / 2, e["bbox"][1] + e["bbox"][3] / 2) for e in people]
        matched += any(x <= cx <= x + w and y <= cy <= y + h for cx, cy in centres)
    assert matched >= 0.7 * len(truth)


def test_video_poses_lie_in_their_boxes_and_frames_are_kept(tmp_path: Path) -> None:
    video = shared_path("video", "multiperson-lab.mp4")
    detector = shared_model("yolo11n-pose.pt")
    result = run_cli("infer", str(video), "--detector", str(detector), "--out", str(tmp_path / "a.mp4"),
                     "--json", str(tmp_path / "a.jsonl"))
    assert result.returncode == 0, result.stderr
    src, dst = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(tmp_path / "a.mp4"))
    assert dst.get(cv2.CAP_PROP_FRAME_COUNT) == src.get(cv2.CAP_PROP_FRAME_COUNT) == 100
    assert dst.get(cv2.CAP_PROP_FPS) == pytest.approx(src.get(cv2.CAP_PROP_FPS))
    frames = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(frames) == 100 and sum(len(f["people"]) > 0 for f in frames) >= 90
    inside, total = 0, 0
    for f in frames:
        for p in f["people"]:
            x1, y1, w, h = p["bbox"]
            x2, y2 = x1 + w, y1 + h
            pad = 0.1 * max(x2 - x1, y2 - y1)
            k = np.asarray(p["keypoints"]).reshape(-1, 3)
            confident = k[k[:, 2] > 0.3]
            total += len(confident)
            inside += int(((confident[:, 0] >= x1 - pad) & (confident[:, 0] <= x2 + pad) &
                           (confident[:, 1] >= y1 - pad) & (confident[:, 1] <= y2 + pad)).sum())
    assert total > 0 and inside >= 0.95 * total


def test_all_onnx_pipeline_matches_torch(tmp_path: Path) -> None:
    image = shared_path("coco-tiny", "000000196141.jpg")
    detector = shared_model("yolo11n-pose.pt")
    env = {"GREITPOSE_WEIGHTS": str(tmp_path)}  # the detector's copy and export go here
    done = run_cli("export", "--onnx", "--out", str(tmp_path / "pose.onnx"), "--detector", str(detector), env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "pose.onnx").is_file() and (tmp_path / "yolo11n-pose.onnx").is_file()
    runs = {}
    for backend, weights, det in (("torch", str(SHIPPED), str(detector)),
                                  ("onnx", str(tmp_path / "pose.onnx"), str(tmp_path / "yolo11n-pose.onnx"))):
        result = run_cli("infer", str(image), "--backend", backend, "--weights", weights, "--detector", det,
                         "--json", str(tmp_path / f"{backend}.json"), env=env)
        assert result.returncode == 0, result.stderr
        runs[backend] = json.loads((tmp_path / f"{backend}.json").read_text())
    # the detector runs as .pt (Ultralytics, torch) in one and as .onnx (ONNX Runtime) in the
    # other: a person scored right at the threshold may be in one only, so people are paired
    torch_people, onnx_people = runs["torch"], runs["onnx"]
    assert torch_people and abs(len(onnx_people) - len(torch_people)) <= max(1, len(torch_people) // 5)
    centre = lambda e: np.array([e["bbox"][0] + e["bbox"][2] / 2, e["bbox"][1] + e["bbox"][3] / 2])  # noqa: E731
    diffs = []
    for a in torch_people:
        b = min(onnx_people, key=lambda e: float(np.linalg.norm(centre(e) - centre(a))))
        if np.linalg.norm(centre(b) - centre(a)) < 5:
            ka, kb = np.asarray(a["keypoints"]).reshape(-1, 3), np.asarray(b["keypoints"]).reshape(-1, 3)
            diffs.append(np.median(np.linalg.norm(ka[:, :2] - kb[:, :2], axis=1)))
    assert len(diffs) >= 0.8 * len(torch_people) and np.median(diffs) < 3.0


def test_benchmark_against_the_peer_on_the_same_clip(tmp_path: Path) -> None:
    video = shared_path("video", "multiperson-lab.mp4")
    peer = shared_model("yolo11n-pose.pt")
    result = run_cli("benchmark", "--peer", str(peer), "--video", str(video), "--frames", "8", "--det-size", "320",
                     "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["peer_fps"] > 0 and report["greitpose_fps"] > 0 and report["frames"] == 8
    assert report["ratio"] == pytest.approx(report["greitpose_fps"] / report["peer_fps"])
    assert "OnnxBackend" in report["settings"] and "at 320" in report["settings"]  # the CPU default path
