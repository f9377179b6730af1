"""Side by side with a one-stage peer (Ultralytics YOLO-pose) on the same clip: frames/s of
each on the same frames and threads, drawing and file writing excluded for both."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greitpose.errors import GreitposeError

if TYPE_CHECKING:
    from greitpose.estimator import PoseEstimator


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


def stream_fps(estimator: PoseEstimator, frames: list[np.ndarray], batch_frames: int = 4, warmup: int = 2) -> float:
    """Frames/s of greitpose's own video path (PoseEstimator.stream: detection ahead, chunks of
    `batch_frames`) over the clip, after `warmup` frames that are not timed."""
    from greitpose.sources import Frame

    estimator.process(frames[:warmup])
    clip = [Frame(i, image, f"frame-{i}", float(i)) for i, image in enumerate(frames[warmup:])]
    chunks = (clip[i:i + batch_frames] for i in range(0, len(clip), batch_frames))
    start = time.perf_counter()
    for _ in estimator.stream(chunks):
        pass
    return len(clip) / (time.perf_counter() - start)


def compare(peer: Path, estimator: PoseEstimator, frames: list[np.ndarray]) -> dict[str, Any]:
    """greitpose as set up in `estimator` against the peer's predictor on the same frames."""
    theirs = frames_per_s(peer_predictor(peer), frames)
    ours = stream_fps(estimator, frames)
    return {"peer": str(peer), "peer_fps": theirs, "greitpose_fps": ours, "ratio": ours / theirs,
            "frames": len(frames)}
