"""Unlabelled keypoints of labelled people, filled in from a trained pose model's own readings.

The pool's teacher labels keep only the keypoints the teacher (a one-stage model, about COCO AP
0.48) was sure of; the rest are unlabelled (v=0) and teach nothing. Those are mostly the hard
ones: joints hidden behind the person or someone else, which COCO's annotators do place
(v=1). A top-down model trained on the pool reads each person from their box with flip
testing and is better calibrated than the teacher on them (on val.json 96% of its keypoints
scoring >= 0.5 lie within an OKS term of 0.5). Filling the unlabelled keypoints it is sure of
gives training a target there; keypoints it places outside the photo stay unlabelled, as COCO
leaves them. Labels already there are never changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from greitpose.backends import Backend
from greitpose.datasets import CocoKeypoints, load_coco
from greitpose.errors import GreitposeError
from greitpose.pose import TopDown
from greitpose.progress import progress_bar
from greitpose.results import Detections
from greitpose.sources import read_image
from greitpose.train.teacher_labels import xywh_to_xyxy
from greitpose.writers import ensure_writable, refuse_overwrite, write_json


@dataclass(frozen=True)
class FillSettings:
    min_score: float = 0.5  # heatmap peak (flip-averaged) a reading needs to become a label
    labels: tuple[str, ...] = ("teacher", "human+teacher")  # annotation kinds ("label") filled


def fill_keypoints(keypoints: np.ndarray, predicted: np.ndarray, scores: np.ndarray, min_score: float,
                   width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, 3) COCO keypoints with their unlabelled entries taken from the (K, 2) reading where it
    scores at least `min_score` and lies inside the width x height photo; and the indices filled."""
    out = np.asarray(keypoints, np.float64).reshape(-1, 3).copy()
    pred = np.asarray(predicted, np.float64).reshape(-1, 2)
    inside = (pred[:, 0] >= 0) & (pred[:, 0] < width) & (pred[:, 1] >= 0) & (pred[:, 1] < height)
    fill = (out[:, 2] == 0) & (np.asarray(scores) >= min_score) & inside
    out[fill, :2] = np.round(pred[fill], 2)
    out[fill, 2] = 2
    return out, np.flatnonzero(fill)


def to_fill(dataset: CocoKeypoints, settings: FillSettings) -> dict[int, list[dict[str, Any]]]:
    """Per image, the annotations of the chosen kinds with unlabelled keypoints and a real box."""
    chosen: dict[int, list[dict[str, Any]]] = {}
    for a in dataset.annotations:
        if (a.get("label") in settings.labels and not a.get("iscrowd", 0)
                and min(a["bbox"][2:]) > 1 and 0 in np.asarray(a["keypoints"])[2::3]):
            chosen.setdefault(a["image_id"], []).append(a)
    return chosen


def filled_people(dataset: CocoKeypoints, chosen: dict[int, list[dict[str, Any]]], topdown: TopDown,
                  settings: FillSettings) -> Iterator[list[tuple[dict[str, Any], dict[str, Any]]]]:
    """Image by image, each chosen annotation with its filled copy (the indices filled in
    "filled_keypoints")."""
    for image_id, people in chosen.items():
        entry = dataset.images[image_id]
        image = read_image(entry.path)
        if image is None:
            raise GreitposeError(f"image {entry.path} (id {image_id}) is not a readable image")
        height, width = image.shape[:2]
        boxes = xywh_to_xyxy(np.asarray([p["bbox"] for p in people])).astype(np.float32)
        poses = topdown([image], [Detections(boxes, np.ones(len(people), np.float32))])[0]
        out = []
        for person, points, scores in zip(people, poses.keypoints, poses.keypoint_scores):
            keypoints, filled = fill_keypoints(np.asarray(person["keypoints"]), points, scores,
                                               settings.min_score, width, height)
            values = [float(v) if v % 1 else int(v) for v in keypoints.reshape(-1)]
            out.append((person, {**person, "keypoints": values, "filled_keypoints": filled.tolist(),
                                 "num_keypoints": int(np.count_nonzero(keypoints[:, 2]))}))
        yield out


def fill_labels(ann_file: Path, image_dir: Path, load_model: Callable[[], Backend], out: Path,
                settings: FillSettings, console: Console) -> dict[str, int]:
    """Write `out`: all of `ann_file`, with the chosen annotations' unlabelled keypoints filled
    where the model is sure. The files are checked before the model loads (an export takes
    seconds). Written atomically, only when every image is read. Returns counts."""
    refuse_overwrite(out, [ann_file], "the annotations")
    ensure_writable(out)
    dataset = load_coco(ann_file, image_dir)
    chosen = to_fill(dataset, settings)
    if not chosen:
        raise GreitposeError(f"no annotation in {ann_file} of label {', '.join(settings.labels)} "
                             "has an unlabelled keypoint")
    backend = load_model()
    if dataset.keypoints.names != backend.keypoints.names:
        raise GreitposeError(f"{ann_file} has {dataset.keypoints.num_keypoints} keypoints "
                             f"({dataset.keypoints.name}); the model reads {backend.keypoints.name}'s")
    topdown = TopDown(backend, flip=True)
    changed: dict[Any, dict[str, Any]] = {}
    filled = 0
    with progress_bar(console) as bar:
        task = bar.add_task("fill", total=len(chosen), info="")
        for people in filled_people(dataset, chosen, topdown, settings):
            for original, person in people:
                changed[id(original)] = person
                filled += len(person["filled_keypoints"])
            bar.update(task, advance=1, info=f"{filled} keypoints filled")
    unlabelled = sum(int(np.count_nonzero(np.asarray(a["keypoints"])[2::3] == 0))
                     for group in chosen.values() for a in group)
    raw = dict(dataset.raw)
    raw["annotations"] = [changed.get(id(a), a) for a in raw["annotations"]]
    counts = {"images": len(chosen), "people": sum(map(len, chosen.values())), "unlabelled": unlabelled,
              "filled": filled}
    raw["info"] = {**(raw.get("info") or {}), "greitpose_keypoint_fill": {
        "from": str(ann_file), "model": backend.config.name, **counts, **asdict(settings)}}
    write_json(out, raw)
    return counts
