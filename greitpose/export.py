"""ONNX export of pose models (with their metadata), the parity check against PyTorch, int8
quantization, and the detector's export through Ultralytics."""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from greitpose import codec
from greitpose.backends import METADATA_KEY, OnnxBackend
from greitpose.checkpoint import PoseModel
from greitpose.errors import GreitposeError
from greitpose.pose import crop_people
from greitpose.sources import IMAGE_SUFFIXES, read_image
from greitpose.writers import ensure_writable, partial_path

DEFAULT_OPSET = 17


def export_onnx(model: PoseModel, path: Path, batch: int | None = None, fp16: bool = False,
                opset: int = DEFAULT_OPSET) -> Path:
    """Write the network as ONNX with greitpose metadata; atomic (no partial file on failure).

    `batch` fixes the graph's batch size; None (the default) leaves it free, which the onnx
    backend needs to split batches across CPU cores.
    """
    import onnx

    ensure_writable(path)
    network = model.network.eval().cpu()
    h, w = model.config.input_size
    x = torch.zeros(batch or 1, 3, h, w)
    if fp16:
        network, x = network.half(), x.half()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                network, (x,), buffer, dynamo=False, opset_version=opset, input_names=["input"],
                output_names=["heatmaps"],
                dynamic_axes={"input": {0: "batch"}, "heatmaps": {0: "batch"}} if batch is None else None)
    finally:
        network.float()
    proto = onnx.load_from_string(buffer.getvalue())
    meta = model.metadata()
    props = {METADATA_KEY: json.dumps(meta), "model": model.config.name,
             "num_keypoints": str(model.config.num_keypoints),
             "input_size": f"{h}x{w}", "mean": json.dumps(list(model.mean)),
             "std": json.dumps(list(model.std)), "flip_pairs": json.dumps(meta["keypoints"]["flip_pairs"])}
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name = "greitpose"
    _write_atomic(path, proto.SerializeToString())
    return path


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = partial_path(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise GreitposeError(f"cannot write {path}: {err.strerror or err}") from None


@contextmanager
def _logger_level(name: str | None, level: int) -> Iterator[None]:
    """Only records of `level` and above from logger `name` while this lasts: third-party
    progress chatter stays out of the caller's output (Ultralytics logs to stdout, where results
    go, and the ONNX cache exports detectors inside library calls)."""
    logger = logging.getLogger(name)
    before = logger.level
    logger.setLevel(max(level, before))
    try:
        yield
    finally:
        logger.setLevel(before)


def quantize_int8(src: Path, dst: Path, calibration: np.ndarray) -> Path:
    """Static int8 (QDQ, per-channel) quantization calibrated on real crops; metadata kept."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    dim = onnx.load(str(src), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    step = dim.dim_value or 1  # a fixed batch must be fed whole

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([{"input": calibration[i:i + step]}
                               for i in range(0, len(calibration) - step + 1, step)])

        def get_next(self):  # noqa: ANN201 - onnxruntime's interface
            return next(self.items, None)

    tmp = partial_path(dst)
    try:
        with _logger_level(None, logging.ERROR):  # onnxruntime's advice on pre-processing
            quantize_static(str(src), str(tmp), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        proto = onnx.load(str(tmp))
        source = onnx.load(str(src), load_external_data=False)
        del proto.metadata_props[:]
        proto.metadata_props.extend(source.metadata_props)
        onnx.save(proto, str(tmp))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def sample_crops(model: PoseModel, images: Path | None, count: int = 16, seed: int = 0) -> np.ndarray:
    """Normalised crops for parity checks and calibration: centre and corner boxes of the given
    images, or, without images, smooth synthetic scenes (never pure noise)."""
    h, w = model.config.input_size
    rng = np.random.default_rng(seed)
    frames: list[np.ndarray] = []
    if images is not None:
        paths = [images] if images.is_file() else sorted(
            p for p in images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        frames = [im for im in (read_image(p) for p in paths[:count]) if im is not None]
        if not frames:
            raise GreitposeError(f"no readable images in {images} for the parity check")
    while len(frames) < 2:
        scene = cv2.GaussianBlur(rng.integers(0, 255, (h * 2, w * 2, 3), dtype=np.uint8), (0, 0), 6)
        for _ in range(8):
            cv2.ellipse(scene, (int(rng.integers(0, w * 2)), int(rng.integers(0, h * 2))),
                        (int(rng.integers(5, 40)), int(rng.integers(10, 80))), float(rng.uniform(0, 180)),
                        0, 360, tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
        frames.append(scene)
    crops = []
    for i in range(count):
        frame = frames[i % len(frames)]
        fh, fw = frame.shape[:2]
        bw, bh = fw * rng.uniform(0.3, 0.8), fh * rng.uniform(0.4, 0.9)
        x1, y1 = rng.uniform(0, fw - bw), rng.uniform(0, fh - bh)
        center, scale = codec.boxes_to_center_scale(np.array([[x1, y1, x1 + bw, y1 + bh]]), w / h)
        crops.append(crop_people(frame, center, scale, (h, w), model.mean, model.std)[0])
    return np.stack(crops)


@dataclass
class Parity:
    max_heatmap_diff: float
    max_keypoint_px: float
    crops: int
    max_heatmap: float = 1.0  # the reference's largest |value|, to judge the difference against

    def describe(self) -> str:
        return (f"{self.crops} crops: max |heatmap diff| {self.max_heatmap_diff:.2e}, "
                f"max keypoint diff {self.max_keypoint_px:.2f} px")


def parity_check(model: PoseModel, onnx_path: Path, crops: np.ndarray) -> Parity:
    """Compare ONNX Runtime with PyTorch on the same crops: heatmaps and decoded keypoints."""
    network = model.network.eval().cpu().float()
    with torch.inference_mode():
        ref = network(torch.from_numpy(crops)).numpy()
    got = OnnxBackend(onnx_path, device="cpu")(crops)
    ref_xy, _ = codec.decode_heatmaps(ref)
    got_xy, _ = codec.decode_heatmaps(got)
    stride = model.config.input_size[1] / model.config.heatmap_size[1]
    return Parity(float(np.abs(ref - got).max()),
                  float(np.linalg.norm(ref_xy - got_xy, axis=-1).max() * stride), len(crops),
                  float(np.abs(ref).max()))


def export_detector(weights: Path, imgsz: int = 640, half: bool = False, target: Path | None = None,
                    dynamic: bool = False) -> Path:
    """Export an Ultralytics YOLO .pt to ONNX (Ultralytics' own exporter) as `target`, by default
    into the user's weights folder, where `--detector NAME.onnx` finds it. The export runs on a
    temporary copy, so nothing is written beside the .pt (which may lie in a shared or read-only
    place). `dynamic` makes a graph for any input size (fed by OnnxYoloDetector at the size
    each image needs)."""
    import shutil
    import tempfile

    from ultralytics import YOLO

    from greitpose.detect import check_person_model
    from greitpose.weights import user_dir

    folder = target.parent if target is not None else user_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            copy = Path(shutil.copy2(weights, Path(tmp) / weights.name))
            model = YOLO(str(copy))
            check_person_model(str(weights), model.task, model.names)
            precision = {"half": True} if half else {}  # naming `half` at all draws a deprecation notice
            with _logger_level("ultralytics", logging.WARNING):
                exported = Path(model.export(format="onnx", imgsz=imgsz, dynamic=dynamic, simplify=False,
                                             verbose=False, **precision))
            final = target or folder / exported.name
            shutil.move(str(exported), partial_path(final))
            os.replace(partial_path(final), final)
            return final
    except GreitposeError:
        raise
    except OSError as err:
        raise GreitposeError(f"cannot write the detector export to {folder}: {err.strerror or err}") from None
    except Exception as err:  # ultralytics raises assorted errors for unusable inputs
        raise GreitposeError(f"detector export of {weights} failed: {str(err).splitlines()[0]}") from None
