"""Teacher keypoints held to the teacher's own reading of the mirrored person.

A teacher's confidence says little about which of its keypoints are wrong: on val.json's
human-labelled people, 13% of its keypoints of confidence >= 0.5 are wrong (OKS term under 0.5;
31% on the sports photos), and raising the cut-off to 0.8 removes only a tenth of those. Reading
the person's square once more, mirrored, and keeping a keypoint only where the two readings
agree removes 39% of the wrong ones for 3% of the right ones (docs/training.md). Keypoints that
fail become unlabelled (v=0): they teach nothing instead of teaching the teacher's mistake.
On the training pool a student trained on checked labels did not gain: what the check takes
away is mostly the hard keypoints, noise and signal together. The middle way keeps them at a
lower training weight (the annotation's "keypoint_weights", read by train/data.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from greitpose.evaluation.oks import oks_terms
from greitpose.keypoints import COCO

FACE = np.arange(5)  # nose, eyes, ears: what a 'human+teacher' label took from the teacher


def teacher_keypoints(annotation: dict[str, Any]) -> np.ndarray:
    """(17,) bool: the labelled keypoints that came from the teacher ('teacher': all of them;
    'human+teacher': the face points a person left out; human labels: none)."""
    labelled = np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)[:, 2] > 0
    kind = annotation.get("label")
    if kind == "teacher":
        return labelled
    if kind == "human+teacher":
        return labelled & np.isin(np.arange(len(labelled)), FACE)
    return np.zeros_like(labelled)


def checked(annotation: dict[str, Any], mirrored: tuple[np.ndarray, np.ndarray] | None, min_agree: float,
            min_conf: float, disputed_weight: float = 0.0) -> tuple[dict[str, Any], int]:
    """The annotation with its teacher keypoints unlabelled where the mirrored reading
    ((K, 2) keypoints, (K,) confidences; None: the teacher found no such person mirrored)
    is unsure of them or puts them elsewhere, or with `disputed_weight` > 0 kept at that
    training weight; and how many were disputed."""
    joints = np.asarray(annotation["keypoints"], np.float64).reshape(-1, 3)
    doubtful = teacher_keypoints(annotation)
    if mirrored is not None:
        _, _, w, h = annotation["bbox"]
        agree = oks_terms(joints[:, :2], mirrored[0][None], float(annotation.get("area") or w * h), COCO.sigmas)[0]
        doubtful &= (agree < min_agree) | (mirrored[1] < min_conf)
    if not doubtful.any():
        return annotation, 0
    if disputed_weight > 0:
        weights = np.asarray(annotation.get("keypoint_weights", np.ones(len(joints))), np.float64)
        weights[doubtful] = np.minimum(weights[doubtful], disputed_weight)
        return {**annotation, "keypoint_weights": [round(float(v), 3) for v in weights]}, int(doubtful.sum())
    joints[doubtful] = 0.0
    flat = [round(float(v), 2) for v in joints.ravel()]
    return {**annotation, "keypoints": flat, "num_keypoints": int((joints[:, 2] > 0).sum())}, int(doubtful.sum())
