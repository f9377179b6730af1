"""People cut off by the photo's edge, for training crops.

COCO scenes are full of people whose legs or one side the frame cuts off: their box (drawn by
an annotator or a detector) covers only the part in view, and the joints past the edge are not
labelled. The training pool's photos mostly frame the whole person, so a network trained on it
rarely sees a crop that ends in the frame's blank border halfway down a body. `truncate` makes
one from a sample: the photo is cut at a line through the person (what lies past it becomes
the blank that cropping fills outside a photo with), the box shrinks to the part in view, and
the joints past the line lose their labels (v=0), as COCO leaves joints outside the image.
"""

from __future__ import annotations

import numpy as np

from greitpose import codec

#: the edge that cuts the person and how often: the bottom most (legs out of the frame), as in
#: COCO's scenes; left and right; the top rarely
SIDES = ("bottom", "left", "right", "top")
SIDE_P = (0.55, 0.2, 0.2, 0.05)
#: share of the person's extent (from their labelled joints) left in view
KEEP = (0.4, 0.85)
#: labelled joints that must stay in view, or the sample is left whole
MIN_JOINTS = 3


def truncate(image: np.ndarray, joints: np.ndarray, visible: np.ndarray, box: np.ndarray | None,
             aspect: float, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(image, visible, center, scale) of the sample cut off at a random edge, or None when too
    few labelled joints would stay in view. `image` is changed in place; `box` is the person's
    (x1, y1, x2, y2) as annotated (None: its labelled joints' extent); `aspect` is the crop's
    width / height. The crop box is the part of `box` in view, padded as at inference."""
    side = SIDES[int(rng.choice(len(SIDES), p=SIDE_P))]
    axis = 1 if side in ("bottom", "top") else 0
    far = side in ("bottom", "right")  # the edge lies at the larger coordinates
    seen = visible > 0
    lo, hi = joints[seen, axis].min(initial=np.inf), joints[seen, axis].max(initial=-np.inf)
    if not hi > lo:
        return None
    keep = rng.uniform(*KEEP)
    cut = lo + keep * (hi - lo) if far else hi - keep * (hi - lo)
    beyond = joints[:, axis] > cut if far else joints[:, axis] < cut
    kept = visible * ~beyond
    if (kept > 0).sum() < MIN_JOINTS:
        return None
    box = np.concatenate([joints[seen].min(axis=0), joints[seen].max(axis=0)]) if box is None \
        else np.array(box, np.float64)
    # pixel rows (or columns) past the line: from floor(cut) + 1 on, or before ceil(cut)
    edge = int(np.clip(np.floor(cut) + 1 if far else np.ceil(cut), 0, image.shape[1 - axis]))
    if far:
        box[2 + axis] = min(box[2 + axis], edge - 1.0)
    else:
        box[axis] = max(box[axis], float(edge))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None  # before the photo is touched: a sample left whole keeps its pixels
    blank = (slice(edge, None) if far else slice(0, edge))
    image[(blank, slice(None)) if axis else (slice(None), blank)] = 0
    new_center, new_scale = codec.boxes_to_center_scale(box[None], aspect)
    return image, kept.astype(visible.dtype), new_center[0], new_scale[0]
