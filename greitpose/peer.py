"""Side by side with a one-stage peer (Ultralytics YOLO-pose): frames/s of each on the same clip
(same frames and threads, drawing and file writing excluded for both), and the peer as a whole-
image pose estimator for scoring it on the same COCO set as greitpose."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from greitpose.errors import GreitposeError
from greitpose.results import Poses

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


def check_peer_file(peer: Path) -> None:
    """Fail early, and never let Ultralytics try to download a name it does not find."""
    if not peer.is_file():
        raise GreitposeError(f"peer model {peer} does not exist")


def _load_peer(peer: Path) -> Any:
    check_peer_file(peer)
    from ultralytics import YOLO

    try:
        model = YOLO(str(peer))
    except Exception as err:  # Ultralytics raises many kinds for a file it cannot use
        raise GreitposeError(f"cannot load peer model {peer}: {str(err).splitlines()[0]}") from None
    if model.task != "pose":
        raise GreitposeError(f"peer {peer} is a {model.task} model; the peer is a YOLO pose model")
    return model


def peer_predictor(peer: Path) -> Callable[[np.ndarray], Any]:
    """The peer's own predictor, one frame at a time, as a user of it would run it."""
    model = _load_peer(peer)
    return lambda frame: model.predict(frame, verbose=False)


def load_peer_pose_model(peer: Path) -> tuple[Any, int]:
    """The peer, loaded and checked to be a pose model, and its keypoint count: one model can
    then serve readers at several sizes."""
    model = _load_peer(peer)
    return model, int(model.model.kpt_shape[0])


def pose_reader(model: Any, count: int, size: int = 640, conf: float = 0.001) -> Callable[[np.ndarray], Poses]:
    """A loaded peer as a whole-image pose estimator at one reading size (BGR image -> Poses);
    a person's score is its box confidence."""

    def run(image: np.ndarray) -> Poses:
        result = model.predict(image, imgsz=size, conf=conf, verbose=False)[0]
        boxes = result.boxes.xyxy.cpu().numpy()
        scores = result.boxes.conf.cpu().numpy()
        keypoints = result.keypoints.data.cpu().numpy().reshape(len(boxes), count, 3)  # (0, K, 3) when none
        return Poses(boxes, scores, keypoints[..., :2], keypoints[..., 2], scores)

    return run


def peer_poses(peer: Path, size: int = 640, conf: float = 0.001) -> tuple[Callable[[np.ndarray], Poses], int]:
    """The peer as a whole-image pose estimator and its keypoint count, with the settings its own
    COCO validator uses (confidence 0.001, so that AP sees the whole ranking)."""
    model, count = load_peer_pose_model(peer)
    return pose_reader(model, count, size, conf), count


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
