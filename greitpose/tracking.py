"""Pose-guided tracking for video: detect every N frames, follow people by their keypoints.

Between detector frames each person's box comes from their own keypoints on the previous
frame (the confident ones' extent, widened), so the detector, the costliest stage on a CPU,
runs on a fraction of the frames. A detector frame matches its boxes to the followed people
by overlap, so track IDs carry across both kinds of frame. The detector runs at once when a
person is lost (too few confident keypoints), and every N frames for people who came in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from greitpose.detect import Detector
from greitpose.results import Detections, Poses


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N, 4) with every box in b (M, 4), xyxy."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.prod(np.clip(x[:, 2:] - x[:, :2], 0, None), axis=1)  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def boxes_from_keypoints(keypoints: np.ndarray, scores: np.ndarray, threshold: float = 0.3,
                         widen: float = 1.2, min_keypoints: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(N, 4) boxes around each person's confident keypoints, widened about their centre so
    that head tops and feet (beyond the outermost keypoints) stay in; and which persons had
    enough confident keypoints to be followed at all."""
    boxes = np.zeros((len(keypoints), 4), np.float32)
    kept = np.zeros(len(keypoints), bool)
    for i, (k, s) in enumerate(zip(keypoints, scores)):
        confident = k[s > threshold]
        if len(confident) < min_keypoints:
            continue
        lo, hi = confident.min(axis=0), confident.max(axis=0)
        centre, half = (lo + hi) / 2, (hi - lo) / 2 * widen
        boxes[i] = [*(centre - half), *(centre + half)]
        kept[i] = True
    return boxes, kept


def match(tracked: np.ndarray, detected: np.ndarray, min_iou: float = 0.3) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (tracked index, detected index), best first. A keypoint box is
    tighter than a detector's (no head top, hands or feet beyond the joints), so a followed box
    whose centre lies inside a detected one counts as a match even where their IoU is low."""
    centres = (tracked[:, None, :2] + tracked[:, None, 2:]) / 2
    inside = ((centres >= detected[None, :, :2]) & (centres <= detected[None, :, 2:])).all(axis=2)
    score = box_iou(tracked, detected) + 0.5 * inside
    pairs: list[tuple[int, int]] = []
    while score.size and score.max() >= min_iou:
        i, j = np.unravel_index(int(score.argmax()), score.shape)
        pairs.append((int(i), int(j)))
        score[i, :], score[:, j] = -1, -1
    return pairs


@dataclass
class Followed:
    boxes: np.ndarray  # (N, 4) from the last frame's keypoints
    scores: np.ndarray  # (N,) the detector score each person was found with
    ids: np.ndarray  # (N,) track ids


class PoseGuidedTracker:
    """A detector wrapper that detects every `every` frames and follows people in between;
    call `update` with each frame's poses before the next frame's boxes are asked for."""

    tracks = True

    def __init__(self, detector: Detector, every: int, kpt_thr: float = 0.3, min_iou: float = 0.3) -> None:
        self.detector, self.every, self.kpt_thr, self.min_iou = detector, every, kpt_thr, min_iou
        self.followed: Followed | None = None
        self.since_detection = 0
        self.next_id = 1
        self.detector_frames = 0

    def __call__(self, images: Sequence[np.ndarray]) -> list[Detections]:
        if len(images) != 1:
            raise ValueError("pose-guided tracking takes one frame at a time")
        if self.followed is None or len(self.followed.ids) == 0 or self.since_detection >= self.every:
            return [self._detect(images[0])]
        self.since_detection += 1
        f = self.followed
        return [Detections(f.boxes.copy(), f.scores.copy(), f.ids.copy())]

    def _detect(self, image: np.ndarray) -> Detections:
        self.detector_frames += 1
        self.since_detection = 1
        found = self.detector([image])[0]
        ids = np.zeros(len(found), np.int64)
        taken: set[int] = set()
        if self.followed is not None:
            for i, j in match(self.followed.boxes, found.boxes, self.min_iou):
                ids[j] = self.followed.ids[i]
                taken.add(j)
        for j in range(len(found)):
            if j not in taken:
                ids[j] = self.next_id
                self.next_id += 1
        return Detections(found.boxes, found.scores, ids)

    def update(self, poses: Poses) -> None:
        """Follow this frame's people into the next frame; a lost one brings the detector back."""
        boxes, kept = boxes_from_keypoints(poses.keypoints, poses.keypoint_scores, self.kpt_thr)
        ids = np.asarray(poses.track_ids if poses.track_ids is not None else np.arange(len(poses)))
        before = set(self.followed.ids.tolist()) if self.followed is not None else set()
        if any(i in before for i in ids[~kept].tolist()):
            self.since_detection = self.every  # someone followed so far was lost: detect next frame
        self.followed = Followed(boxes[kept], poses.box_scores[kept], ids[kept])
