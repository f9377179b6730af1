"""Person detectors: Ultralytics YOLO (person class only), whole-image boxes, or given boxes."""

from __future__ import annotations

import ast
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from greitpose.backends import onnx_session, resolve_device
from greitpose.downloads import fetch_detector
from greitpose.errors import GreitposeError
from greitpose.results import Detections
from greitpose.weights import find_weights

DEFAULT_DETECTOR = "yolo11n.pt"
#: Detector input size (longest side, pixels), as the YOLO models were trained.
DEFAULT_SIZE = 640
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


def check_person_model(weights: str, task: str | None, names: dict[int, str] | None) -> None:
    """Ultralytics detection and pose models find people (class 0, 'person', for both COCO
    detectors and pose models); segmentation, classification or other-class models do not."""
    if task not in ("detect", "pose"):
        raise GreitposeError(f"detector '{weights}' is a {task or 'unknown'} model; greitpose needs an "
                             "Ultralytics detection or pose model (e.g. yolo11n.pt, yolo11n-pose.pt)")
    if names and str(names.get(PERSON, "")).lower() not in ("person", str(PERSON)):  # unnamed: taken as person
        raise GreitposeError(f"detector '{weights}' has no 'person' class (class {PERSON} is "
                             f"'{names.get(PERSON)}')")


class YoloDetector:
    """Ultralytics YOLO restricted to the person class; `track=True` keeps IDs across frames."""

    def __init__(self, weights: str = DEFAULT_DETECTOR, conf: float = 0.25, iou: float = 0.7,
                 max_people: int = 100, device: str | None = None, half: bool = False,
                 track: bool = False, tracker: str = "bytetrack.yaml", size: int = DEFAULT_SIZE) -> None:
        from ultralytics import YOLO

        self.conf, self.iou, self.max_people, self.half, self.size = conf, iou, max_people, half, size
        self.device = device if device not in (None, "", "auto") else None
        self.tracks, self.tracker = track, tracker
        source = self._locate(weights)
        try:
            self.model = YOLO(source, task="detect")
        except Exception as err:  # ultralytics raises many kinds for unusable files
            raise GreitposeError(f"cannot load detector '{weights}': {str(err).splitlines()[0]}") from None
        check_person_model(weights, self.model.task, self.model.names)

    @staticmethod
    def _locate(weights: str) -> str:
        """A local file by the weights search order; a bare model name not on disk is fetched
        once (unless offline); a model .yaml builds an untrained net."""
        if weights.endswith((".yaml", ".yml")):
            return weights
        try:
            return str(find_weights(weights, "detector weights", hint="pass --detector PATH"))
        except GreitposeError:
            if "/" in weights or os.sep in weights:
                raise  # a path the user typed: nothing to fetch
            return str(fetch_detector(weights))

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        kwargs = dict(classes=[PERSON], conf=self.conf, iou=self.iou, max_det=self.max_people,
                      imgsz=self.size, verbose=False)
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


def letterbox(image: np.ndarray, size: tuple[int, int], fill: int = 114) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Fit `image` into `size` (h, w) keeping its aspect ratio, centred on a grey border, as
    Ultralytics feeds fixed-size exports: the (1, 3, h, w) RGB 0-1 input, the scale and the
    (left, top) padding."""
    h, w = image.shape[:2]
    scale = min(size[0] / h, size[1] / w)
    new_w, new_h = round(w * scale), round(h * scale)
    if (new_w, new_h) != (w, h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    pad_w, pad_h = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    left, top = round(pad_w - 0.1), round(pad_h - 0.1)
    image = cv2.copyMakeBorder(image, top, size[0] - new_h - top, left, size[1] - new_w - left,
                               cv2.BORDER_CONSTANT, value=(fill, fill, fill))
    x = image[None, :, :, ::-1].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return np.ascontiguousarray(x), scale, (left, top)


def rect_size(shape: tuple[int, int], longest: int, stride: int = 32) -> tuple[int, int]:
    """The smallest input (h, w) that holds an image of `shape` scaled to `longest` on its long
    side, each side rounded up to the network's stride."""
    scale = longest / max(shape)
    return tuple(-(-round(side * scale) // stride) * stride for side in shape)  # type: ignore[return-value]


class OnnxYoloDetector:
    """A YOLO detector exported to ONNX by Ultralytics (`greitpose export --detector`), run by
    ONNX Runtime alone, so that an all-ONNX pipeline needs no torch: letterbox, one forward
    pass, the boxes whose best class is a person, then non-maximum suppression (OpenCV's)."""

    tracks = False

    def __init__(self, path: str | os.PathLike[str], conf: float = 0.25, iou: float = 0.7,
                 max_people: int = 100, device: str | None = None, threads: int | None = None,
                 size: int | None = None) -> None:
        path = Path(path)
        self.session = onnx_session(path, device, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if "task" not in meta:
            raise GreitposeError(f"{path} is not an Ultralytics YOLO export (no task in its metadata); "
                                 "use greitpose export --detector")
        names = ast.literal_eval(meta["names"]) if "names" in meta else None
        check_person_model(str(path), meta["task"], names)
        self.num_classes = len(names) if names else None
        self.end_to_end = meta.get("end2end") == "True"
        inp = self.session.get_inputs()[0]
        # a fixed-size export is fed its size; one of any size (dynamic) gets each image scaled
        # to `size` on its long side and padded to the stride only, as Ultralytics' predictor
        # does: a 16:9 frame at 640 is 640x384, 40% less work than 640x640
        fixed = all(isinstance(d, int) for d in inp.shape[2:])
        self.size = (int(inp.shape[2]), int(inp.shape[3])) if fixed else None
        self.longest = size or max(ast.literal_eval(meta["imgsz"]))
        self.input_name = inp.name
        self.dtype = np.float16 if "float16" in inp.type else np.float32
        self.conf, self.iou, self.max_people = conf, iou, max_people

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        return [self._detect(image) for image in images]

    def _detect(self, image: np.ndarray) -> Detections:
        x, scale, (left, top) = letterbox(image, self.size or rect_size(image.shape[:2], self.longest))
        out = self.session.run(None, {self.input_name: x.astype(self.dtype)})[0][0].astype(np.float32)
        if self.end_to_end:  # (max_det, 6): x1, y1, x2, y2, score, class; already suppressed
            rows = out[(out[:, 5] == PERSON) & (out[:, 4] > self.conf)]
            boxes, scores = rows[:, :4], rows[:, 4]
            order = np.argsort(-scores, kind="stable")[:self.max_people]
        else:  # (4 + classes [+ keypoints], anchors): cx, cy, w, h, class scores, pose models' keypoints
            classes = out[4:4 + self.num_classes] if self.num_classes else out[4:]
            scores = classes[PERSON]
            keep = (classes.argmax(0) == PERSON) & (scores > self.conf)
            cx, cy, w, h = out[:4, keep]
            boxes, scores = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1), scores[keep]
            xywh = np.stack([boxes[:, 0], boxes[:, 1], w, h], 1)
            order = np.asarray(cv2.dnn.NMSBoxes(xywh.tolist(), scores.tolist(), self.conf, self.iou),
                               np.int64).reshape(-1)[:self.max_people]
        boxes = (boxes[order] - np.array([left, top, left, top], np.float32)) / scale
        ih, iw = image.shape[:2]
        boxes = np.clip(boxes, 0, [iw, ih, iw, ih]).astype(np.float32)
        return Detections(boxes, scores[order].astype(np.float32))


def load_detector(weights: str, conf: float = 0.25, iou: float = 0.7, max_people: int = 100,
                  device: str | None = None, half: bool = False, track: bool = False,
                  backend: str = "auto", size: int = DEFAULT_SIZE, threads: int | None = None) -> Detector:
    """The detector for a weights name: an ONNX export runs on ONNX Runtime alone, except when
    tracking (Ultralytics' trackers); so does a .pt on a CPU with the `auto` backend, through an
    export of any input size cached once per file (greitpose.onnx_cache); anything else goes
    through Ultralytics. Images are scaled to `size` on their long side (a fixed-size export
    keeps its own size)."""
    if weights.endswith(".onnx") and not track:
        path = find_weights(weights, "detector weights", hint="export one with greitpose export --detector")
        return OnnxYoloDetector(path, conf, iou, max_people, device, threads, size)
    if backend == "auto" and not track and weights.endswith(".pt") and resolve_device(device).type == "cpu":
        from greitpose.onnx_cache import detector_onnx_for

        exported = detector_onnx_for(Path(YoloDetector._locate(weights)))
        if exported is not None:
            return OnnxYoloDetector(exported, conf, iou, max_people, device, threads, size)
    return YoloDetector(weights, conf, iou, max_people, device, half=half, track=track, size=size)
