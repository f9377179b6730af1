"""MPII PCKh: a joint is correct within `threshold` x head segment length of the truth.

The head segment length is 0.6 x the head box diagonal when the annotation has a head box (the
standard protocol). MPII json files without head boxes fall back to the distance between the
upper neck and the head top, the segment that box was drawn around; people with neither are left
out and counted in `skipped`.

A COCO-keypoint model is scored on the joints both sets share: its limbs, pelvis and thorax as
the midpoints of its hips and shoulders; COCO has no upper neck or head top, so the Head group is
left out and Mean covers the 12 limb joints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from greitpose.datasets import MpiiPerson, mpii_box
from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO, MPII, KeypointSet
from greitpose.pose import TopDown
from greitpose.results import Detections, Poses
from greitpose.sources import must_read_image

HEAD_BOX_FACTOR = 0.6
UPPER_NECK, HEAD_TOP = 8, 9
# (name, joint indices) of the standard table; Mean leaves out pelvis (6) and thorax (7).
GROUPS = (("Head", (9,)), ("Shoulder", (12, 13)), ("Elbow", (11, 14)), ("Wrist", (10, 15)),
          ("Hip", (2, 3)), ("Knee", (1, 4)), ("Ankle", (0, 5)))
MEAN_JOINTS = tuple(j for j in range(16) if j not in (6, 7))
ALL_JOINTS = tuple(range(16))
#: MPII joint <- the COCO keypoints it is read from (the midpoint of two for pelvis and thorax).
FROM_COCO: dict[int, tuple[int, ...]] = {
    0: (16,), 1: (14,), 2: (12,), 3: (11,), 4: (13,), 5: (15,), 6: (11, 12), 7: (5, 6),
    10: (10,), 11: (8,), 12: (6,), 13: (5,), 14: (7,), 15: (9,)}


def mpii_joints(keypoints: KeypointSet) -> tuple[int, ...]:
    """The MPII joints a model with these keypoints predicts (all 16, or COCO's 14)."""
    if keypoints.names == MPII.names:
        return ALL_JOINTS
    if keypoints.names == COCO.names:
        return tuple(FROM_COCO)
    raise GreitposeError(f"MPII needs an MPII (16) or COCO (17) keypoint model, this one has "
                         f"{keypoints.num_keypoints} keypoints ({keypoints.name})")


def as_mpii(points: np.ndarray, keypoints: KeypointSet) -> np.ndarray:
    """(N, K, 2) keypoints of an MPII or COCO model -> (N, 16, 2) MPII joints, NaN where the
    model has no such joint."""
    points = np.asarray(points, np.float64)
    if keypoints.names == MPII.names:
        return points
    mpii_joints(keypoints)  # refuses other sets
    out = np.full((len(points), 16, 2), np.nan)
    for joint, sources in FROM_COCO.items():
        out[:, joint] = points[:, list(sources)].mean(axis=1)
    return out


def head_sizes(people: Sequence[MpiiPerson]) -> np.ndarray:
    """Head segment length per person (NaN when it cannot be known)."""
    sizes = []
    for p in people:
        if p.head_box is not None:
            sizes.append(HEAD_BOX_FACTOR * float(np.linalg.norm(p.head_box[2:] - p.head_box[:2])))
        elif p.visible[UPPER_NECK] > 0 and p.visible[HEAD_TOP] > 0:
            sizes.append(float(np.linalg.norm(p.joints[HEAD_TOP] - p.joints[UPPER_NECK])))
        else:
            sizes.append(np.nan)
    return np.asarray(sizes)


def pckh(predictions: np.ndarray, people: Sequence[MpiiPerson], threshold: float = 0.5,
         joints: Sequence[int] = ALL_JOINTS) -> dict[str, float]:
    """PCKh@threshold in percent per joint group and Mean, from (N, 16, 2) 0-based predictions,
    over the MPII `joints` the model predicts (groups without any are left out). A NaN
    prediction (a person the model missed) counts as wrong."""
    gt = np.stack([p.joints for p in people])
    visible = np.stack([p.visible for p in people]) > 0
    visible[:, [j for j in ALL_JOINTS if j not in joints]] = False
    sizes = head_sizes(people)
    usable = np.isfinite(sizes) & (sizes > 0)
    visible &= usable[:, None]
    err = np.linalg.norm(predictions - gt, axis=-1) / np.where(usable, sizes, 1.0)[:, None]
    correct = (err <= threshold) & visible
    count = visible.sum(axis=0)
    per_joint = 100 * correct.sum(axis=0) / np.maximum(count, 1)
    result = {name: float(np.mean(per_joint[list(idx)])) for name, idx in GROUPS
              if all(j in joints for j in idx)}
    mean_idx = [j for j in MEAN_JOINTS if j in joints]
    result["Mean"] = float(100 * correct[:, mean_idx].sum() / max(count[mean_idx].sum(), 1))
    result["skipped"] = int((~usable).sum())
    return result


def predict(people: Sequence[MpiiPerson], topdown: TopDown, batch: int = 16,
            advance: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, 16, 2) MPII joints (`as_mpii`) from the standard MPII crops (`mpii_box` at the model's
    aspect, no extra padding)."""
    keypoints = topdown.backend.keypoints
    mpii_joints(keypoints)
    height, width = topdown.input_size
    aspect = width / height
    out = []
    for start in range(0, len(people), batch):
        chunk = people[start:start + batch]
        images = [must_read_image(p.image) for p in chunk]
        dets = [Detections(mpii_box(p, aspect)[None].astype(np.float32), np.ones(1, np.float32)) for p in chunk]
        out.extend(poses.keypoints[0] for poses in topdown(images, dets, padding=1.0))
        if advance:
            advance(len(chunk))
    return as_mpii(np.stack(out) if out else np.zeros((0, keypoints.num_keypoints, 2)), keypoints)


def nearest_pose(poses: Poses, center: np.ndarray) -> int | None:
    """Which of a whole-image estimator's people is the annotated person: the one whose box
    holds the annotated center nearest its own center (None when no box holds it)."""
    boxes = poses.boxes
    inside = ((boxes[:, 0] <= center[0]) & (center[0] <= boxes[:, 2])
              & (boxes[:, 1] <= center[1]) & (center[1] <= boxes[:, 3]))
    if not inside.any():
        return None
    distance = np.linalg.norm((boxes[:, :2] + boxes[:, 2:]) / 2 - center, axis=1)
    return int(np.argmin(np.where(inside, distance, np.inf)))


def predict_whole_images(people: Sequence[MpiiPerson], estimate: Callable[[np.ndarray], Poses],
                         keypoints: KeypointSet, advance: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, 16, 2) MPII joints of a whole-image estimator (a one-stage peer): each image read
    once, each annotated person matched by `nearest_pose`, NaN for a person it missed."""
    out = np.full((len(people), 16, 2), np.nan)
    by_image: dict[Path, list[int]] = {}
    for i, p in enumerate(people):
        by_image.setdefault(p.image, []).append(i)
    for path, members in by_image.items():
        poses = estimate(must_read_image(path))
        for i in members:
            found = nearest_pose(poses, people[i].center)
            if found is not None:
                out[i] = as_mpii(poses.keypoints[found:found + 1], keypoints)[0]
        if advance:
            advance(len(members))
    return out
