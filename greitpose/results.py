"""Typed results of pose estimation, and their JSON forms."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Detections:
    """Person boxes of one image: xyxy (N, 4), scores (N,), optional track ids (N,)."""

    boxes: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray | None = None

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32))

    def __len__(self) -> int:
        return len(self.boxes)


@dataclass
class Poses:
    """People found in one image.

    boxes (N, 4) xyxy image px; box_scores (N,) detector confidence; keypoints (N, K, 2) image px;
    keypoint_scores (N, K) heatmap maxima; scores (N,) instance score = box score x mean of the
    keypoint scores above 0.2; track_ids (N,) when tracking, else None.
    """

    boxes: np.ndarray
    box_scores: np.ndarray
    keypoints: np.ndarray
    keypoint_scores: np.ndarray
    scores: np.ndarray
    track_ids: np.ndarray | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.boxes)

    def people(self) -> list[dict[str, Any]]:
        """One dict per person: bbox [x, y, w, h], keypoints [x1, y1, s1, ...], score, track_id."""
        out = []
        for i in range(len(self)):
            x1, y1, x2, y2 = (float(v) for v in self.boxes[i])
            kpts = np.concatenate([self.keypoints[i], self.keypoint_scores[i][:, None]], axis=1)
            person = {
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "keypoints": [round(float(v), 3) for v in kpts.reshape(-1)],
                "score": round(float(self.scores[i]), 5),
                "box_score": round(float(self.box_scores[i]), 5),
            }
            if self.track_ids is not None:
                person["track_id"] = int(self.track_ids[i])
            out.append(person)
        return out

    def coco_results(self, image_id: int | str, category_id: int = 1) -> list[dict[str, Any]]:
        """COCO keypoint results entries (image_id, category_id, keypoints[3K], score, bbox)."""
        return [{"image_id": image_id, "category_id": category_id, **p} for p in self.people()]
