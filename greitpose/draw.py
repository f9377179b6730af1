"""Drawing poses on images with OpenCV (no fonts or downloads needed)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from greitpose import limits
from greitpose.keypoints import KeypointSet
from greitpose.results import Poses

_PALETTE = [(255, 128, 0), (255, 153, 51), (255, 178, 102), (230, 230, 0), (255, 153, 255),
            (153, 204, 255), (255, 102, 255), (255, 51, 255), (102, 178, 255), (51, 153, 255),
            (255, 153, 153), (255, 102, 102), (255, 51, 51), (153, 255, 153), (102, 255, 102),
            (51, 255, 51), (0, 255, 0), (0, 0, 255), (255, 0, 0), (255, 255, 255)]


@dataclass(frozen=True)
class DrawStyle:
    kpt_thr: float = 0.3
    radius: int = 4
    thickness: int = 2
    boxes: bool = True

    def __post_init__(self) -> None:
        limits.check(kpt_thr=self.kpt_thr, radius=self.radius, thickness=self.thickness)


def _track_color(tid: int) -> tuple[int, int, int]:
    return _PALETTE[(tid * 7) % len(_PALETTE)]


def draw_poses(image: np.ndarray, poses: Poses, keypoints: KeypointSet,
               style: DrawStyle = DrawStyle()) -> np.ndarray:
    """Draw boxes, skeleton and keypoints on a copy of `image` (BGR)."""
    canvas = image.copy()
    for i in range(len(poses)):
        pts, scores = poses.keypoints[i], poses.keypoint_scores[i]
        tid = None if poses.track_ids is None else int(poses.track_ids[i])
        if style.boxes:
            x1, y1, x2, y2 = (int(round(v)) for v in poses.boxes[i])
            color = _track_color(tid) if tid is not None and tid >= 0 else (0, 200, 0)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), color, max(1, style.thickness - 1))
            label = f"{poses.scores[i]:.2f}" if tid is None or tid < 0 else f"#{tid} {poses.scores[i]:.2f}"
            cv2.putText(canvas, label, (x1, max(12, y1 - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1,
                        cv2.LINE_AA)
        for j, (a, b) in enumerate(keypoints.skeleton):
            if scores[a] > style.kpt_thr and scores[b] > style.kpt_thr:
                pa, pb = tuple(int(round(v)) for v in pts[a]), tuple(int(round(v)) for v in pts[b])
                cv2.line(canvas, pa, pb, _PALETTE[j % len(_PALETTE)], style.thickness, cv2.LINE_AA)
        for k in np.flatnonzero(scores > style.kpt_thr):
            center = tuple(int(round(v)) for v in pts[k])
            cv2.circle(canvas, center, style.radius, _PALETTE[k % len(_PALETTE)], -1, cv2.LINE_AA)
    return canvas
