"""COCO keypoint evaluation: top-down predictions on person boxes, rescoring, OKS-NMS, COCOeval."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from greitpose import codec
from greitpose.datasets import CocoKeypoints
from greitpose.evaluation.oks import oks_nms
from greitpose.evaluation.per_keypoint import keypoint_similarity
from greitpose.pose import TopDown
from greitpose.results import Detections
from greitpose.sources import must_read_image

STAT_NAMES = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
DEFAULT_SIGMA = 0.05  # for keypoint sets that bring no sigmas of their own


def sigmas_for(dataset: CocoKeypoints) -> np.ndarray:
    k = dataset.keypoints
    return np.asarray(k.sigmas if k.sigmas else [DEFAULT_SIGMA] * k.num_keypoints, np.float64)


@dataclass
class CocoScores:
    """COCOeval's ten keypoint statistics, and each keypoint's mean OKS term over matched people."""

    metrics: dict[str, float]
    per_keypoint: dict[str, Any]


def coco_eval(dataset: CocoKeypoints, predictions: list[dict[str, Any]], image_ids: list[int],
              sigmas: np.ndarray) -> CocoScores:
    """Score COCO-results predictions with pycocotools' COCOeval (keypoints, the given sigmas)."""
    from pycocotools.coco import COCO as CocoApi
    from pycocotools.cocoeval import COCOeval

    names = dataset.keypoints.names
    if not predictions:
        return CocoScores({name: 0.0 for name in STAT_NAMES},
                          {"matched": 0, "similarity": {name: None for name in names}})
    with contextlib.redirect_stdout(io.StringIO()):
        gt = CocoApi()
        gt.dataset = {k: v for k, v in dataset.raw.items()}
        gt.dataset["annotations"] = [
            {**a, "area": a.get("area", a["bbox"][2] * a["bbox"][3]), "iscrowd": a.get("iscrowd", 0),
             "num_keypoints": a.get("num_keypoints", int(np.count_nonzero(np.asarray(a["keypoints"])[2::3]))),
             "id": a.get("id", i + 1), "category_id": dataset.category_id}
            for i, a in enumerate(dataset.annotations)]
        gt.createIndex()
        dt = gt.loadRes(predictions)
        ev = COCOeval(gt, dt, "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        ev.params.imgIds = sorted(image_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return CocoScores({name: float(v) for name, v in zip(STAT_NAMES, ev.stats)},
                      keypoint_similarity(ev, np.asarray(sigmas, np.float64), names))


def load_image(dataset: CocoKeypoints, image_id: int) -> np.ndarray:
    return must_read_image(dataset.images[image_id].path)


@dataclass
class BoxSource:
    """Where person boxes come from: ground truth, a detection file, or a detector."""

    kind: str  # "gt", "file", "detector"
    file_boxes: dict[int, list[tuple]] | None = None
    detector: Callable[[list[np.ndarray]], list[Detections]] | None = None

    def boxes(self, dataset: CocoKeypoints, image_id: int, image: np.ndarray) -> Detections:
        if self.kind == "gt":
            rows = []
            for a in dataset.persons(image_id):
                x, y, w, h = a["bbox"]
                im = dataset.images[image_id]
                width, height = im.width or image.shape[1], im.height or image.shape[0]
                x1, y1 = max(0.0, x), max(0.0, y)
                x2, y2 = min(width - 1.0, x1 + max(0.0, w - 1)), min(height - 1.0, y1 + max(0.0, h - 1))
                if a.get("area", w * h) > 0 and x2 >= x1 and y2 >= y1:
                    rows.append((x1, y1, x2, y2, 1.0))
        elif self.kind == "file":
            rows = (self.file_boxes or {}).get(image_id, [])
        else:
            assert self.detector is not None
            return self.detector([image])[0]
        if not rows:
            return Detections.empty()
        arr = np.asarray(rows, np.float32)
        return Detections(arr[:, :4], arr[:, 4])


def predict(dataset: CocoKeypoints, topdown: TopDown, boxes: BoxSource, image_ids: list[int],
            batch_images: int = 8, advance: Callable[[int], None] | None = None,
            nms_threshold: float = 0.9) -> Iterator[dict[str, Any]]:
    """COCO results entries for `image_ids`: rescored and OKS-NMS'ed per image, as they come."""
    sigmas = sigmas_for(dataset)
    h, w = topdown.input_size
    for start in range(0, len(image_ids), batch_images):
        ids = image_ids[start:start + batch_images]
        images = [load_image(dataset, image_id) for image_id in ids]
        dets = [boxes.boxes(dataset, i, im) for i, im in zip(ids, images)]
        for image_id, det, poses in zip(ids, dets, topdown(images, dets)):
            if len(poses) == 0:
                continue
            _, scale = codec.boxes_to_center_scale(det.boxes, w / h, topdown.padding)
            areas = scale[:, 0] * scale[:, 1]
            keep = oks_nms(poses.keypoints, poses.scores, areas, sigmas, nms_threshold)
            entries = poses.coco_results(image_id, dataset.category_id)
            yield from (entries[i] for i in keep)
        if advance:
            advance(len(ids))
