"""Person detectors: Ultralytics YOLO (person class only), whole-image boxes, or given boxes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from greitpose.errors import GreitposeError
from greitpose.results import Detections
from greitpose.weights import find_weights

DEFAULT_DETECTOR = "yolo11n.pt"
PERSON = 0


class Detector(Protocol):
    """Finds people: one `Detections` per image."""

    tracks: bool

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]: ...


class WholeImage:
    """Every image is one person (for images that are already person crops)."""

    tracks = False

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [Detections(np.array([[0, 0, im.shape[1], im.shape[0]]], np.float32), np.ones(1, np.float32))
                for im in images]


class GivenBoxes:
    """Boxes from a function of the image index (tests, precomputed detections)."""

    tracks = False

    def __init__(self, boxes_for: Callable[[int], Detections]) -> None:
        self.boxes_for = boxes_for
        self.count = 0

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        out = [self.boxes_for(self.count + i) for i in range(len(images))]
        self.count += len(images)
        return out


class YoloDetector:
    """Ultralytics YOLO restricted to the person class; `track=True` keeps IDs across frames."""

    def __init__(self, weights: str = DEFAULT_DETECTOR, conf: float = 0.25, iou: float = 0.7,
                 max_people: int = 100, device: str | None = None, half: bool = False,
                 track: bool = False, tracker: str = "bytetrack.yaml", download: bool = False) -> None:
        from ultralytics import YOLO

        self.conf, self.iou, self.max_people, self.half = conf, iou, max_people, half
        self.device = device if device not in (None, "", "auto") else None
        self.tracks, self.tracker = track, tracker
        source = self._locate(weights, download)
        try:
            self.model = YOLO(source, task="detect")
        except Exception as err:  # ultralytics raises many kinds for unusable files
            raise GreitposeError(f"cannot load detector '{weights}': {str(err).splitlines()[0]}") from None

    @staticmethod
    def _locate(weights: str, download: bool) -> str:
        """A local file by the weights search order; a model .yaml builds an untrained net."""
        if weights.endswith((".yaml", ".yml")):
            return weights
        try:
            return str(find_weights(weights, "detector weights", hint="pass --detector PATH, or add --download"))
        except GreitposeError:
            if download and os.sep not in weights:
                return weights  # ultralytics fetches known names itself
            raise

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        kwargs = dict(classes=[PERSON], conf=self.conf, iou=self.iou, max_det=self.max_people,
                      verbose=False)
        if self.half:
            kwargs["half"] = True
        if self.device:
            kwargs["device"] = self.device
        if self.tracks:
            results = [self.model.track(im, persist=True, tracker=self.tracker, **kwargs)[0] for im in images]
        else:
            results = self.model.predict(list(images), **kwargs)
        out = []
        for r in results:
            boxes = r.boxes
            ids = boxes.id.cpu().numpy().astype(np.int64) if boxes.id is not None else None
            if self.tracks and ids is None:
                ids = np.full(len(boxes), -1, np.int64)
            out.append(Detections(boxes.xyxy.cpu().numpy().astype(np.float32),
                                  boxes.conf.cpu().numpy().astype(np.float32), ids))
        return out
