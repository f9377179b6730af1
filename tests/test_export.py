"""export: ONNX files with metadata and PyTorch parity; the onnx backend; the benchmark command."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest

from greitpose import checkpoint
from greitpose.backends import OnnxBackend, load_backend
from greitpose.errors import GreitposeError
from greitpose.benchmark import realistic_model
from greitpose.export import export_onnx, parity_check, sample_crops
from greitpose.models import ModelConfig, get_config

from conftest import DATA, run_cli, shared_model


def small_config() -> ModelConfig:
    """greit-hrnet-18's layers with one module per stage at 128x96: two fifths of the graph,
    for checks of export paths whose cost grows with the graph (onnxruntime's int8 quantizer
    edits it in time quadratic in its nodes: 84 s for the full network on two cores)."""
    return replace(get_config("greit-hrnet-18", input_size=(128, 96)), stage_modules=(1, 1, 1))


@pytest.fixture(scope="module")
def trained_like(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A greit-hrnet-18 checkpoint with realistic activations (random weights give ~0 heatmaps)."""
    path = tmp_path_factory.mktemp("w") / "g18.pt"
    return checkpoint.save(realistic_model(get_config("greit-hrnet-18")), path)


def test_cli_export_passes_parity_and_records_metadata(tmp_path: Path, trained_like: Path) -> None:
    images = DATA / "coco-tiny"
    args = ["export", "--onnx", "--weights", str(trained_like), "--out", str(tmp_path / "g18.onnx")] + (
        ["--images", str(images)] if images.is_dir() else [])
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    diff = float(re.search(r"max \|heatmap diff\| ([0-9.e+-]+)", result.stderr).group(1))
    assert diff <= 1e-4
    proto = onnx.load(str(tmp_path / "g18.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["model"] == "greit-hrnet-18" and props["num_keypoints"] == "17"
    assert props["input_size"] == "256x192" and json.loads(props["flip_pairs"])[0] == [1, 2]
    assert json.loads(props["mean"]) == list(checkpoint.IMAGENET_MEAN)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # any batch size by default
    backend = OnnxBackend(tmp_path / "g18.onnx", threads=2)
    assert backend.config.name == "greit-hrnet-18" and backend.keypoints.name == "coco"
    crops = sample_crops(checkpoint.load(trained_like), None, count=5)
    one_by_one = np.concatenate([backend(crops[i:i + 1]) for i in range(5)])
    assert np.allclose(backend(crops), one_by_one, atol=1e-5)  # split across threads, same numbers


@pytest.mark.slow
def test_greit_hrnet_30_parity(tmp_path: Path) -> None:
    model = realistic_model(get_config("greit-hrnet-30"))
    path = export_onnx(model, tmp_path / "g30.onnx", batch=4)
    parity = parity_check(model, path, sample_crops(model, None, count=4))
    assert parity.max_heatmap_diff <= 1e-4
    assert parity.max_keypoint_px <= 4.0  # at most one heatmap pixel on near-ties


@pytest.mark.slow
def test_int8_quantization_reports_its_accuracy_change(tmp_path: Path) -> None:
    config = small_config()
    small = checkpoint.save(realistic_model(config), tmp_path / "small.pt")
    result = run_cli("export", "--onnx", "--weights", str(small), "--out", str(tmp_path / "m.onnx"),
                     "--int8", "--batch", "2")
    assert result.returncode == 0, result.stderr
    assert "int8 accuracy change" in result.stderr
    assert (tmp_path / "m-int8.onnx").is_file()
    q = OnnxBackend(tmp_path / "m-int8.onnx")
    assert q.config == config and q.fixed_batch == 2
    assert q(np.zeros((3, 3, 128, 96), np.float32)).shape == (3, 17, 32, 24)  # fed as 2 + padded 1


def test_onnx_backend_matches_torch_in_the_pipeline(tmp_path: Path, trained_like: Path) -> None:
    from greitpose.detect import GivenBoxes
    from greitpose.estimator import PoseEstimator
    from greitpose.results import Detections

    model = checkpoint.load(trained_like)
    onnx_path = export_onnx(model, tmp_path / "m.onnx")
    import cv2

    noise = np.random.default_rng(0).integers(0, 255, (300, 400, 3), dtype=np.uint8)
    image = cv2.GaussianBlur(noise, (0, 0), 5)  # image-like statistics, not pixel noise
    boxes = np.array([[20, 20, 200, 280], [210, 30, 390, 290]], np.float32)
    results = []
    for weights, kind in ((trained_like, "torch"), (onnx_path, "onnx")):
        est = PoseEstimator(backend=load_backend(weights, kind, device="cpu"),
                            detector=GivenBoxes(lambda i: Detections(boxes, np.ones(2))))
        results.append(est(image))
    assert np.allclose(results[0].keypoint_scores, results[1].keypoint_scores, atol=1e-4)
    assert np.abs(results[0].keypoints - results[1].keypoints).max() <= 5.0


def test_auto_backend_runs_a_checkpoint_on_its_cached_onnx_export(tmp_path: Path, trained_like: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from greitpose import onnx_cache
    from greitpose.backends import TorchBackend

    monkeypatch.setenv("GREITPOSE_CACHE", str(tmp_path / "cache"))
    crops = sample_crops(checkpoint.load(trained_like), None, count=3)
    first = load_backend(trained_like, device="cpu")
    assert isinstance(first, OnnxBackend)
    cached = onnx_cache.cached_path(trained_like)
    assert cached.is_file() and cached.parent == tmp_path / "cache" / "onnx"
    stamp = cached.stat().st_mtime_ns
    again = load_backend(trained_like, "auto", device="cpu")
    assert isinstance(again, OnnxBackend) and cached.stat().st_mtime_ns == stamp  # exported once
    torch_out = load_backend(trained_like, "torch", device="cpu")(crops)
    assert np.abs(again(crops) - torch_out).max() <= 1e-4
    # another checkpoint (other bytes) gets its own export; one that fails the check stays on torch
    other = checkpoint.save(realistic_model(small_config(), seed=1), tmp_path / "other.pt")
    assert onnx_cache.cached_path(other) != cached
    monkeypatch.setattr(onnx_cache, "PARITY_TOLERANCE", -1.0)
    assert isinstance(load_backend(other, device="cpu"), TorchBackend)
    assert not onnx_cache.cached_path(other).exists()
    assert onnx_cache.cached_path(other).with_suffix(".refused").is_file()  # not retried each run
    with pytest.raises(GreitposeError, match="unknown backend 'tensorrt'"):
        load_backend(trained_like, "tensorrt")


def test_export_checks_the_model_and_leaves_no_partial_file(tmp_path: Path, trained_like: Path) -> None:
    result = run_cli("export", "--onnx", "--weights", str(trained_like), "--model", "greit-hrnet-30",
                     "--out", str(tmp_path / "x.onnx"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "holds weights for 'greit-hrnet-18', not 'greit-hrnet-30'" in result.stderr
    (tmp_path / "file").write_text("")
    result = run_cli("export", "--onnx", "--weights", str(trained_like), "--out", str(tmp_path / "file" / "x.onnx"))
    assert result.returncode != 0 and "cannot write to" in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.rglob("*.onnx")) and not list(tmp_path.rglob("*partial*"))


def test_export_never_writes_over_the_checkpoint(tmp_path: Path, trained_like: Path) -> None:
    weights = tmp_path / "w.pt"
    weights.write_bytes(trained_like.read_bytes())
    before = weights.read_bytes()
    for out in (weights, tmp_path / "w"):
        result = run_cli("export", "--onnx", "--weights", str(weights), "--out", str(out))
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert f"--out {out}: an ONNX export needs a .onnx file name" in result.stderr, result.stderr
    assert weights.read_bytes() == before and sorted(tmp_path.iterdir()) == [weights]


def test_benchmark_writes_a_report(tmp_path: Path) -> None:
    result = run_cli("benchmark", "--models", "lite-hrnet-18", "--batches", "1,2", "--seconds", "0.05",
                     "--frames", "2", "--people", "2", "--train-batch", "2", "--json", str(tmp_path / "b.json"))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    rows = {(r["backend"], r["batch"]) for r in report["latency"]}
    assert rows == {("torch", 1), ("torch", 2), ("onnx", 1), ("onnx", 2)}
    assert all(r["ms_per_crop"] > 0 for r in report["latency"])
    assert {r["backend"] for r in report["end_to_end"]} == {"torch", "onnx"}
    assert report["training"][0]["images_per_s"] > 0 and report["peak_rss_mb"] > 0
    assert "ms/crop" in result.stdout


@pytest.fixture(scope="module")
def person_finder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained YOLO (built offline from its yaml) whose person score varies strongly from
    place to place, so that it finds 'people' (a plain untrained one finds no one)."""
    import torch
    from ultralytics import YOLO

    torch.manual_seed(0)
    yolo = YOLO("yolo11n.yaml")
    with torch.no_grad():
        for branch in yolo.model.model[-1].cv3:
            branch[-1].weight[0] *= 30
            branch[-1].bias[0] = -1.0
    path = tmp_path_factory.mktemp("det") / "det.pt"
    yolo.save(str(path))
    return path


def _test_images() -> list[np.ndarray]:
    """The COCO test images when present, else two synthetic scenes of other shapes."""
    import cv2

    files = sorted((DATA / "coco-tiny").glob("*.jpg"))
    if files:
        return [cv2.imread(str(f)) for f in files]
    rng = np.random.default_rng(0)
    return [cv2.GaussianBlur(rng.integers(0, 255, shape, dtype=np.uint8), (0, 0), 3)
            for shape in ((333, 500, 3), (480, 360, 3))]


def test_onnx_detector_matches_ultralytics_on_the_same_export(person_finder: Path) -> None:
    from ultralytics import YOLO

    from greitpose.detect import OnnxYoloDetector
    from greitpose.export import export_detector

    path = export_detector(person_finder)
    ours = OnnxYoloDetector(path, conf=0.25, iou=0.7, max_people=50)
    theirs = YOLO(str(path), task="detect")
    for image in _test_images():
        _same_boxes(ours([image])[0], theirs.predict(image, classes=[0], conf=0.25, iou=0.7, max_det=50,
                                                     verbose=False)[0].boxes, image.shape)


def test_any_size_detector_export_matches_ultralytics_own_predictor(tmp_path: Path,
                                                                     capfd: pytest.CaptureFixture) -> None:
    """The auto backend's detector export takes any input size; each image is scaled to the
    asked size on its long side and padded to the stride only, as Ultralytics' predictor does.
    The export writes nothing to stdout, which belongs to a library caller's own output."""
    from ultralytics import YOLO

    from greitpose.detect import OnnxYoloDetector, rect_size
    from greitpose.export import export_detector

    model = shared_model("yolo11n-pose.pt")
    dynamic = export_detector(model, target=tmp_path / "any-size.onnx", dynamic=True)
    assert capfd.readouterr().out == ""
    theirs = YOLO(str(model))
    for size in (640, 416):
        ours = OnnxYoloDetector(dynamic, conf=0.25, iou=0.7, max_people=50, size=size)
        for image in _test_images():
            _same_boxes(ours([image])[0], theirs.predict(image, imgsz=size, classes=[0], conf=0.25, iou=0.7,
                                                         max_det=50, verbose=False)[0].boxes, image.shape)
    assert rect_size((1088, 1920), 640) == (384, 640) and rect_size((576, 768), 416) == (320, 416)


def _same_boxes(got, ref, shape: tuple[int, ...]) -> None:  # noqa: ANN001 - Detections, Ultralytics Boxes
    assert len(got.boxes) == len(ref) > 0
    assert np.allclose(got.scores, ref.conf.numpy(), atol=1e-4)
    assert np.abs(got.boxes - ref.xyxy.numpy()).max() < 1.0
    h, w = shape[:2]
    assert (got.boxes >= 0).all() and (got.boxes[:, [0, 2]] <= w).all() and (got.boxes[:, [1, 3]] <= h).all()


def test_onnx_detector_reads_end_to_end_exports(tmp_path: Path) -> None:
    """NMS-free exports (YOLO26 and YOLOv10 style) give (max_det, 6) rows in letterbox pixels:
    x1, y1, x2, y2, score, class. A fake model with fixed rows checks the mapping back."""
    from onnx import TensorProto, helper, numpy_helper

    from greitpose.detect import OnnxYoloDetector

    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [100, 200, 300, 400, 0.9, 0]  # a person
    rows[0, 1] = [10, 170, 50, 250, 0.5, 0]  # another, lower score
    rows[0, 2] = [0, 0, 640, 640, 0.95, 2]  # a car
    rows[0, 3] = [0, 0, 10, 10, 0.1, 0]  # a person under the threshold
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
         helper.make_node("Mul", ["m", "zero"], ["z"]),
         helper.make_node("Add", ["rows", "z"], ["output0"])],
        "fake", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 300, 6])],
        [numpy_helper.from_array(rows, "rows"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in {"task": "detect", "end2end": "True", "imgsz": "[640, 640]"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(tmp_path / "e2e.onnx"))
    image = np.zeros((320, 640, 3), np.uint8)  # scale 1, 160 px of border above and below
    det = OnnxYoloDetector(tmp_path / "e2e.onnx", conf=0.25)([image])[0]
    assert np.allclose(det.scores, [0.9, 0.5])
    assert np.allclose(det.boxes, [[100, 40, 300, 240], [10, 10, 50, 90]])
    proto.metadata_props[0].value = "pose"  # pose models' person boxes serve as detections too
    onnx.save(proto, str(tmp_path / "pose.onnx"))
    assert np.allclose(OnnxYoloDetector(tmp_path / "pose.onnx", conf=0.25)([image])[0].boxes, det.boxes)
    proto.metadata_props[0].value = "segment"
    onnx.save(proto, str(tmp_path / "seg.onnx"))
    with pytest.raises(GreitposeError, match="is a segment model"):
        OnnxYoloDetector(tmp_path / "seg.onnx")


@pytest.mark.slow
def test_an_all_onnx_pipeline_runs_without_torch(tmp_path: Path, trained_like: Path, person_finder: Path) -> None:
    """Both models exported, `infer --backend onnx` runs with torch made unimportable."""
    import cv2

    result = run_cli("export", "--detector", str(person_finder))
    assert result.returncode == 0, result.stderr
    detector = Path(result.stdout.strip().splitlines()[-1])  # in the user's weights folder
    assert detector.is_file()
    pose = export_onnx(checkpoint.load(trained_like), tmp_path / "pose.onnx")
    cv2.imwrite(str(tmp_path / "img.jpg"), _test_images()[0])
    blocker = tmp_path / "no-torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is blocked in this test')\n")
    result = run_cli("infer", str(tmp_path / "img.jpg"), "--backend", "onnx", "--weights", str(pose),
                     "--detector", str(detector), "--json", str(tmp_path / "r.json"), "--device", "cpu",
                     env={"PYTHONPATH": str(blocker.parent)})
    assert result.returncode == 0, result.stderr
    people = json.loads((tmp_path / "r.json").read_text())
    assert people and all(len(p["keypoints"]) == 17 * 3 for p in people)