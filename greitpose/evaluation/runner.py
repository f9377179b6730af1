"""Scoring a loaded backend on a COCO or MPII set by its protocol, and a one-stage peer on the same
images (`evaluation.job` composes these into the `eval` command)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rich.console import Console

from greitpose.backends import Backend
from greitpose.datasets import (
    CocoKeypoints,
    MpiiPerson,
    check_image_files,
    find_coco_files,
    load_coco,
    load_detections,
    load_mpii,
)
from greitpose.downloads import locate_dataset
from greitpose.errors import GreitposeError
from greitpose.evaluation import coco, mpii
from greitpose.keypoints import COCO, MPII, generic
from greitpose.pose import TopDown
from greitpose.progress import progress_bar
from greitpose.writers import JsonArray, write_json


@dataclass
class CocoOptions:
    data_root: Path | None = None
    images: Path | None = None
    ann: Path | None = None
    boxes: Path | None = None  # COCO results-format detections
    detector: Any = None  # a Detector, when boxes come from YOLO
    min_box_score: float = 0.0
    flip_pairs: tuple[tuple[int, int], ...] | None = None
    sigmas: tuple[float, ...] | None = None
    nms_threshold: float = 0.9
    limit: int | None = None
    batch_images: int = 8


@dataclass
class EvalResult:
    dataset: str
    metrics: dict[str, float]
    count: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "count": self.count, "metrics": self.metrics, **self.extra}


@contextmanager
def _progress(console: Console, label: str, total: int) -> Iterator:
    with progress_bar(console) as progress:
        task = progress.add_task(label, total=total, info="")
        yield lambda n: progress.advance(task, n)


def _coco_set(options: CocoOptions, num_keypoints: int) -> tuple[Path, CocoKeypoints, list[int]]:
    """The annotation file, the set and the image ids to score, every image checked readable
    before any inference starts."""
    root = options.data_root if options.data_root or options.ann else locate_dataset("coco")
    ann, image_dir = find_coco_files(root, options.images, options.ann)
    dataset = load_coco(ann, image_dir, options.flip_pairs, options.sigmas, check_images=False)
    image_ids = sorted(dataset.images)[: options.limit or None]
    check_image_files(dataset, image_ids)
    if num_keypoints != dataset.keypoints.num_keypoints:
        raise GreitposeError(f"the model predicts {num_keypoints} keypoints, "
                             f"{ann.name} has {dataset.keypoints.num_keypoints}")
    return ann, dataset, image_ids


def evaluate_coco(backend: Backend, options: CocoOptions, flip: bool = True,
                  save_predictions: Path | None = None, console: Console | None = None,
                  decode: str = "quarter") -> EvalResult:
    """COCO keypoint AP/AR of `backend` on a COCO-format set, by the SimpleBaseline/HRNet protocol."""
    console = console or Console(stderr=True)
    ann, dataset, image_ids = _coco_set(options, backend.config.num_keypoints)
    if options.boxes is not None:
        source = coco.BoxSource("file", load_detections(options.boxes, options.min_box_score,
                                                        dataset.category_id))
        box_label = f"detections {options.boxes.name}"
    elif options.detector is not None:
        source, box_label = coco.BoxSource("detector", detector=options.detector), "detector boxes"
    else:
        source, box_label = coco.BoxSource("gt"), "ground-truth boxes"
    # a model without its own left/right pairs takes the dataset's for the flip test
    topdown = TopDown(backend, flip=flip, decode=decode,
                      keypoints=backend.keypoints if backend.keypoints.flip_pairs else dataset.keypoints)
    writer = JsonArray(save_predictions) if save_predictions else None
    predictions: list[dict[str, Any]] = []
    try:
        with _progress(console, f"COCO eval ({box_label})", len(image_ids)) as advance:
            for entry in coco.predict(dataset, topdown, source, image_ids, options.batch_images, advance,
                                      options.nms_threshold):
                predictions.append(entry)
                if writer:
                    writer.add(entry)
        scores = coco.coco_eval(dataset, predictions, image_ids, coco.sigmas_for(dataset))
        if writer:
            writer.commit()
            writer = None
    finally:
        if writer:
            writer.discard()
    return EvalResult("coco", scores.metrics, len(image_ids),
                      {"boxes": box_label, "annotations": str(ann), "predictions": len(predictions),
                       "flip": flip, "decode": decode, "per_keypoint": scores.per_keypoint})


def evaluate_peer_coco(peer: Path, options: CocoOptions, size: int = 640,
                       console: Console | None = None) -> EvalResult:
    """COCO keypoint AP/AR of a one-stage YOLO pose model on the same set: whole images, its own
    boxes, each person ranked by its box confidence (as its own validator ranks them)."""
    from greitpose.peer import peer_poses

    console = console or Console(stderr=True)
    predict, num_keypoints = peer_poses(peer, size)
    ann, dataset, image_ids = _coco_set(options, num_keypoints)
    predictions: list[dict[str, Any]] = []
    with _progress(console, f"COCO eval ({peer.name}, whole images)", len(image_ids)) as advance:
        for image_id in image_ids:
            predictions += predict(coco.load_image(dataset, image_id)).coco_results(image_id, dataset.category_id)
            advance(1)
    scores = coco.coco_eval(dataset, predictions, image_ids, coco.sigmas_for(dataset))
    return EvalResult("coco", scores.metrics, len(image_ids),
                      {"boxes": f"{peer.name}'s own", "annotations": str(ann), "predictions": len(predictions),
                       "per_keypoint": scores.per_keypoint})


def find_mpii_files(data_root: Path | None, ann: Path | None, images: Path | None) -> tuple[Path, Path]:
    """(annotation file, image folder) of an MPII set from explicit paths or a data root."""
    if ann is None:
        data_root = data_root or locate_dataset("mpii")
        if not data_root.is_dir():
            raise GreitposeError(f"data root {data_root} is not a folder")
        found = [p for p in (data_root / "annotations" / "valid.json", data_root / "valid.json",
                             *sorted(data_root.glob("*mpii*.json"))) if p.is_file()]
        if not found:
            raise GreitposeError(f"no MPII annotation json in {data_root}; pass --ann")
        ann = found[0]
    root = data_root or ann.parent
    image_dir = images or (root / "images" if (root / "images").is_dir() else root)
    if not image_dir.is_dir():
        raise GreitposeError(f"image folder {image_dir} does not exist")
    return ann, image_dir


def find_eval_files(dataset: str, data_root: Path | None, ann: Path | None,
                    images: Path | None) -> tuple[Path, Path]:
    """(annotation file, image folder) of a COCO or MPII set: a wrong path fails here, before a
    model loads (or is exported) for nothing."""
    if dataset == "mpii":
        return find_mpii_files(data_root, ann, images)
    return find_coco_files(data_root, images, ann)


def _mpii_set(data_root: Path | None, ann: Path | None, images: Path | None,
              limit: int | None) -> tuple[Path, list[MpiiPerson]]:
    """The annotation file and its people (the first `limit`), every image checked to exist."""
    ann, image_dir = find_mpii_files(data_root, ann, images)
    people = load_mpii(ann, image_dir)[: limit or None]
    if not people:
        raise GreitposeError(f"{ann} lists no people")
    return ann, people


def _mpii_result(preds: np.ndarray, people: list[MpiiPerson], joints: tuple[int, ...], threshold: float,
                 extra: dict[str, Any]) -> EvalResult:
    metrics = mpii.pckh(preds, people, threshold, joints)
    skipped = int(metrics.pop("skipped"))
    return EvalResult("mpii", metrics, len(people),
                      {"threshold": threshold, "skipped_no_head_size": skipped,
                       "joints": [MPII.names[j] for j in joints], **extra})


def evaluate_mpii(backend: Backend, data_root: Path | None, ann: Path | None = None,
                  images: Path | None = None, flip: bool = True, limit: int | None = None,
                  threshold: float = 0.5, save_predictions: Path | None = None,
                  console: Console | None = None, decode: str = "quarter") -> EvalResult:
    """MPII PCKh@threshold of `backend` (an MPII or COCO keypoint model) on an MPII json set."""
    console = console or Console(stderr=True)
    joints = mpii.mpii_joints(backend.keypoints)  # before any image is read
    ann, people = _mpii_set(data_root, ann, images, limit)
    topdown = TopDown(backend, flip=flip, decode=decode)
    with _progress(console, "MPII eval", len(people)) as advance:
        preds = mpii.predict(people, topdown, advance=advance)
    if save_predictions:
        write_json(save_predictions, [
            {"image": p.image.name,
             "joints": [None if np.isnan(j).any() else (j + 1).round(2).tolist() for j in k]}
            for p, k in zip(people, preds)])
    return _mpii_result(preds, people, joints, threshold,
                        {"annotations": str(ann), "flip": flip, "decode": decode})


def evaluate_peer_mpii(peer: Path, data_root: Path | None, ann: Path | None = None,
                       images: Path | None = None, limit: int | None = None, threshold: float = 0.5,
                       size: int = 640, console: Console | None = None) -> EvalResult:
    """MPII PCKh of a one-stage YOLO pose model on the same people: whole images, each annotated
    person matched to the detected person whose box holds its center (a miss scores 0)."""
    from greitpose.peer import peer_poses

    console = console or Console(stderr=True)
    estimate, count = peer_poses(peer, size)
    keypoints = COCO if count == COCO.num_keypoints else generic(count)
    joints = mpii.mpii_joints(keypoints)
    ann, people = _mpii_set(data_root, ann, images, limit)
    with _progress(console, f"MPII eval ({peer.name}, whole images)", len(people)) as advance:
        preds = mpii.predict_whole_images(people, estimate, keypoints, advance)
    missed = int(np.isnan(preds).all(axis=(1, 2)).sum())
    return _mpii_result(preds, people, joints, threshold,
                        {"boxes": f"{peer.name}'s own", "annotations": str(ann), "missed": missed})
