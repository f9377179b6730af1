"""PoseEstimator: the library entry point chaining a person detector and top-down Greit-HRNet."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from greitpose import limits
from greitpose.backends import Backend, check_half, load_backend
from greitpose.detect import DEFAULT_DETECTOR, DEFAULT_SIZE, Detector, WholeImage, load_detector
from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.models import get_config
from greitpose.overlap import prefetch
from greitpose.pose import TopDown, check_decoder
from greitpose.results import Poses
from greitpose.smoothing import TrackSmoother
from greitpose.sources import Frame, as_bgr
from greitpose.tracking import PoseGuidedTracker
from greitpose.weights import find_weights

DEFAULT_MODEL = "greit-hrnet-18"


def default_weights_name(model: str, input_size: tuple[int, int], backend: str) -> str:
    """File name looked for when no --weights is given, e.g. greit-hrnet-18-coco-256x192.pt."""
    suffix = ".onnx" if backend == "onnx" else ".pt"
    return f"{model}-coco-{input_size[0]}x{input_size[1]}{suffix}"


def pose_weights(model: str | None, weights: str | os.PathLike[str] | None, input_size: tuple[int, int],
                 backend: str = "auto") -> tuple[Path, str | None]:
    """The weights file to load and the model name it must hold (when the user named one).

    Without `weights`, the file is looked up by the model's default name.
    """
    expect = get_config(model).name if model else None
    name = weights or default_weights_name(expect or DEFAULT_MODEL, input_size, backend)
    hint = ("pass its path, or make it from the .pt checkpoint with 'greitpose export --onnx'"
            if Path(name).suffix == ".onnx" else "pass its path")
    return find_weights(name, "pose weights", hint), expect


def check_settings(detector: object, det_conf: float, det_iou: float, max_people: int, track: bool,
                   det_every: int = 1, det_size: int = DEFAULT_SIZE, decode: str = "quarter") -> None:
    """The estimator's own settings, checked before anything loads."""
    limits.check(det_conf=det_conf, det_iou=det_iou, max_people=max_people, det_every=det_every,
                 det_size=det_size)
    check_decoder(decode)
    if (track or det_every > 1) and detector in (None, "none"):
        raise GreitposeError("--track, --smooth and --det-every follow detected people: they need a "
                             "detector, not --detector none")


class PoseEstimator:
    """Image(s) in (BGR numpy arrays), `Poses` out.

    >>> est = PoseEstimator(weights="weights/greit-hrnet-18-coco-256x192.pt")
    >>> poses = est(cv2.imread("people.jpg"))   # poses.keypoints: (N, 17, 2)
    """

    def __init__(self, model: str | None = None, weights: str | os.PathLike[str] | None = None,
                 detector: str | Detector | None = DEFAULT_DETECTOR, backend: str | Backend = "auto",
                 device: str | None = None, half: bool | None = None, flip: bool = True,
                 det_conf: float = 0.25, det_iou: float = 0.7, max_people: int = 100,
                 track: bool = False, smooth: bool = False,
                 input_size: tuple[int, int] = (256, 192), det_every: int = 1,
                 det_size: int = DEFAULT_SIZE, threads: int | None = None, decode: str = "quarter") -> None:
        given = {k: v for k, v in locals().items() if k != "self"}
        check_settings(detector, det_conf, det_iou, max_people, track or smooth, det_every, det_size, decode)
        check_half(half, device)
        backend_name = backend if isinstance(backend, str) else "auto"  # also picks the detector's runtime
        track = track or smooth
        # files first (missing ones are errors in a moment), then the models (exports take seconds)
        if isinstance(backend, str):
            path, expect = pose_weights(model, weights, input_size, backend)
        if detector is None or detector == "none":
            self.detector: Detector = WholeImage()
        elif isinstance(detector, str):
            # with --det-every, IDs come from following poses, not from the detector's tracker
            self.detector = load_detector(detector, det_conf, det_iou, max_people, device,
                                          half=bool(half), track=track and det_every == 1,
                                          backend=backend_name, size=det_size, threads=threads)
        else:
            self.detector = detector
        if isinstance(backend, str):
            backend = load_backend(path, backend, device, half, expect_model=expect, threads=threads)
        self.backend: Backend = backend
        self.topdown = TopDown(backend, flip=flip, decode=decode)
        self.follower = PoseGuidedTracker(self.detector, det_every) if det_every > 1 else None
        self.smoother = TrackSmoother() if smooth else None
        #: the arguments that rebuild this estimator in another process (None: built from objects)
        self.settings = given if isinstance(given["backend"], str) and not callable(given["detector"]) else None

    @property
    def keypoints(self) -> KeypointSet:
        """What the output channels mean (names, flip pairs, skeleton)."""
        return self.backend.keypoints

    def process(self, images: Sequence[np.ndarray | str | os.PathLike[str]],
                times: Sequence[float] | None = None) -> list[Poses]:
        """Detect and estimate poses for several images (or consecutive frames) at once; with
        pose-guided tracking (`det_every` > 1) frame by frame, each following the one before.
        Images are BGR arrays (grey and BGRA converted) or paths."""
        images = [as_bgr(image, f"image {i}") for i, image in enumerate(images)]
        if self.follower is None:
            return self._smooth(self.topdown(images, self.detector(images)), times)
        poses = []
        for image in images:
            poses.append(self.topdown([image], self.follower([image]))[0])
            self.follower.update(poses[-1])
        return self._smooth(poses, times)

    def stream(self, chunks: Iterable[Sequence[Frame]]) -> Iterator[tuple[Sequence[Frame], list[Poses]]]:
        """Each chunk of frames with its poses, in order. Without pose-guided tracking the
        detector works on the next chunk in a background thread while the pose model works on
        this one; with it, every frame's boxes depend on the poses before, so nothing overlaps."""
        if self.follower is not None:
            for chunk in chunks:
                yield chunk, self.process([f.image for f in chunk], [f.time for f in chunk])
            return
        detected = prefetch(((chunk, self.detector([f.image for f in chunk])) for chunk in chunks), depth=1)
        for chunk, detections in detected:
            poses = self.topdown([f.image for f in chunk], detections)
            yield chunk, self._smooth(poses, [f.time for f in chunk])

    def _smooth(self, poses: list[Poses], times: Sequence[float] | None) -> list[Poses]:
        if self.smoother is not None:
            for p, t in zip(poses, times if times is not None else range(len(poses))):
                self.smoother(p, float(t))
        return poses

    def __call__(self, image: np.ndarray | str | os.PathLike[str]) -> Poses:
        return self.process([image])[0]
