"""Side by side with a one-stage peer (Ultralytics YOLO-pose) on the same clip: frames/s of
each on the same frames and threads, drawing and file writing excluded for both."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from greitpose.errors import GreitposeError


def frames_per_s(process: Callable[[np.ndarray], Any], frames: list[np.ndarray], warmup: int = 2) -> float:
    """Frames/s of `process` over the clip, in order (trackers see consecutive frames), after
    `warmup` frames that are not timed."""
    for frame in frames[:warmup]:
        process(frame)
    start = time.perf_counter()
    for frame in frames[warmup:]:
        process(frame)
    return (len(frames) - warmup) / (time.perf_counter() - start)


def peer_predictor(peer: Path) -> Callable[[np.ndarray], Any]:
    """The peer's own predictor, one frame at a time, as a user of it would run it."""
    from ultralytics import YOLO

    model = YOLO(str(peer))
    if model.task != "pose":
        raise GreitposeError(f"peer {peer} is a {model.task} model; the peer is a YOLO pose model")
    return lambda frame: model.predict(frame, verbose=False)


def compare(peer: Path, weights: Path, detector: str, frames: list[np.ndarray], det_every: int,
            flip: bool = True) -> dict[str, Any]:
    """greitpose (pose model on ONNX Runtime, ONNX detector, pose-guided tracking every
    `det_every` frames) against the peer's predictor on the same frames."""
    from greitpose import checkpoint
    from greitpose.backends import OnnxBackend
    from greitpose.detect import OnnxYoloDetector
    from greitpose.estimator import PoseEstimator
    from greitpose.export import export_detector, export_onnx
    from greitpose.weights import find_weights

    theirs = frames_per_s(peer_predictor(peer), frames)
    with tempfile.TemporaryDirectory() as tmp:
        pose = export_onnx(checkpoint.load(weights), Path(tmp) / "pose.onnx")
        det_path = Path(detector)
        if det_path.suffix != ".onnx":
            det_path = export_detector(find_weights(detector, "detector weights"))
        est = PoseEstimator(backend=OnnxBackend(pose), detector=OnnxYoloDetector(det_path), flip=flip,
                            det_every=det_every)
        ours = frames_per_s(est, frames)
    return {"peer": str(peer), "peer_fps": theirs, "greitpose_fps": ours, "ratio": ours / theirs,
            "det_every": det_every, "flip": flip, "frames": len(frames)}
