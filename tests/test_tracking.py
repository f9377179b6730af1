"""Pose-guided tracking: boxes from keypoints between detector frames, IDs carried across."""

from __future__ import annotations

import numpy as np
import pytest

from greitpose.detect import GivenBoxes
from greitpose.errors import GreitposeError
from greitpose.estimator import PoseEstimator
from greitpose.results import Detections, Poses
from greitpose.tracking import PoseGuidedTracker, box_iou, boxes_from_keypoints, match

from test_infer import FixedBackend, _image


def _poses(boxes: np.ndarray, ids: np.ndarray, confident: bool = True) -> Poses:
    n = len(boxes)
    k = np.stack([np.stack([np.linspace(b[0], b[2], 17), np.linspace(b[1], b[3], 17)], 1) for b in boxes])
    scores = np.full((n, 17), 0.9 if confident else 0.1, np.float32)
    return Poses(boxes.astype(np.float32), np.ones(n, np.float32), k.astype(np.float32), scores,
                 np.ones(n, np.float32), ids)


def test_boxes_come_from_confident_keypoints_widened() -> None:
    k = np.array([[[10, 20], [30, 60], [20, 40], [25, 50], [500, 500]]], np.float32)
    s = np.array([[0.9, 0.9, 0.9, 0.9, 0.1]], np.float32)
    boxes, kept = boxes_from_keypoints(k, s, threshold=0.3, widen=1.5, min_keypoints=4)
    assert kept.tolist() == [True]
    assert np.allclose(boxes[0], [5, 10, 35, 70])  # centre (20, 40), half (10, 20) x 1.5; the 0.1 point ignored
    _, kept = boxes_from_keypoints(k, s, min_keypoints=5)
    assert kept.tolist() == [False]


def test_matching_is_one_to_one_by_overlap() -> None:
    tracked = np.array([[0, 0, 10, 10], [100, 100, 120, 130]], np.float32)
    found = np.array([[101, 99, 121, 131], [1, 0, 11, 10], [300, 300, 310, 310]], np.float32)
    assert sorted(match(tracked, found)) == [(0, 1), (1, 0)]
    assert box_iou(tracked, found).shape == (2, 3)


def test_detector_runs_every_n_frames_and_ids_persist() -> None:
    boxes = np.array([[50, 40, 170, 360], [200, 40, 300, 360]], np.float32)
    calls: list[int] = []

    def found(i: int) -> Detections:
        calls.append(i)
        return Detections(boxes + 2 * i, np.ones(2, np.float32))

    follower = PoseGuidedTracker(GivenBoxes(found), every=3)
    ids = []
    for frame in range(7):
        det = follower([_image()])[0]
        ids.append(det.track_ids.tolist())
        follower.update(_poses(det.boxes, det.track_ids))
    assert len(calls) == 3  # frames 0, 3, 6
    assert all(i == ids[0] for i in ids) and sorted(ids[0]) == [1, 2]
    det = follower([_image()])[0]
    follower.update(_poses(det.boxes, det.track_ids, confident=False))  # everyone lost
    follower([_image()])
    assert len(calls) == 4  # detected again at once


def test_estimator_follows_people_between_detector_frames() -> None:
    boxes = np.array([[50, 40, 170, 360]], np.float32)
    det = GivenBoxes(lambda i: Detections(boxes, np.ones(1, np.float32)))
    est = PoseEstimator(backend=FixedBackend(), detector=det, det_every=4, smooth=True)
    frames = est.process([_image(seed=i) for i in range(8)], times=[i / 10 for i in range(8)])
    assert det.count == 2 and est.follower is not None and est.follower.detector_frames == 2
    assert {f.people()[0]["track_id"] for f in frames} == {1}
    with pytest.raises(GreitposeError, match="--det-every must be >= 1"):
        PoseEstimator(backend=FixedBackend(), detector=det, det_every=0)
    with pytest.raises(GreitposeError, match="need a detector"):
        PoseEstimator(backend=FixedBackend(), detector="none", det_every=3)
