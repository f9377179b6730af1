"""MPII PCKh: a joint is correct within `threshold` x head segment length of the truth.

The head segment length is 0.6 x the head box diagonal when the annotation has a head box (the
standard protocol). MPII json files without head boxes fall back to the distance between the
upper neck and the head top, the segment that box was drawn around; people with neither are left
out and counted in `skipped`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from greitpose.datasets import MpiiPerson, mpii_box
from greitpose.errors import GreitposeError
from greitpose.pose import TopDown
from greitpose.results import Detections
from greitpose.sources import read_image

HEAD_BOX_FACTOR = 0.6
UPPER_NECK, HEAD_TOP = 8, 9
# (name, joint indices) of the standard table; Mean leaves out pelvis (6) and thorax (7).
GROUPS = (("Head", (9,)), ("Shoulder", (12, 13)), ("Elbow", (11, 14)), ("Wrist", (10, 15)),
          ("Hip", (2, 3)), ("Knee", (1, 4)), ("Ankle", (0, 5)))
MEAN_JOINTS = tuple(j for j in range(16) if j not in (6, 7))


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


def pckh(predictions: np.ndarray, people: Sequence[MpiiPerson], threshold: float = 0.5) -> dict[str, float]:
    """PCKh@threshold in percent per joint group and Mean, from (N, 16, 2) 0-based predictions."""
    gt = np.stack([p.joints for p in people])
    visible = np.stack([p.visible for p in people]) > 0
    sizes = head_sizes(people)
    usable = np.isfinite(sizes) & (sizes > 0)
    visible &= usable[:, None]
    err = np.linalg.norm(predictions - gt, axis=-1) / np.where(usable, sizes, 1.0)[:, None]
    correct = (err <= threshold) & visible
    count = visible.sum(axis=0)
    per_joint = 100 * correct.sum(axis=0) / np.maximum(count, 1)
    result = {name: float(np.mean(per_joint[list(idx)])) for name, idx in GROUPS}
    mean_idx = list(MEAN_JOINTS)
    result["Mean"] = float(100 * correct[:, mean_idx].sum() / max(count[mean_idx].sum(), 1))
    result["skipped"] = int((~usable).sum())
    return result


def predict(people: Sequence[MpiiPerson], topdown: TopDown, batch: int = 16,
            advance: Callable[[int], None] | None = None) -> np.ndarray:
    """(N, 16, 2) keypoints from the standard MPII crops (center/scale boxes, no extra padding)."""
    if topdown.backend.config.num_keypoints != 16:
        raise GreitposeError(f"MPII needs a 16-keypoint model, this one has "
                             f"{topdown.backend.config.num_keypoints}")
    out = []
    for start in range(0, len(people), batch):
        chunk = people[start:start + batch]
        images = []
        for p in chunk:
            image = read_image(p.image)
            if image is None:
                raise GreitposeError(f"cannot read image {p.image}")
            images.append(image)
        dets = [Detections(mpii_box(p)[None].astype(np.float32), np.ones(1, np.float32)) for p in chunk]
        out.extend(poses.keypoints[0] for poses in topdown(images, dets, padding=1.0))
        if advance:
            advance(len(chunk))
    return np.stack(out) if out else np.zeros((0, 16, 2))
