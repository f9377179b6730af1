"""Distractor people for training crops: another person from the training set pasted beside
(and partly over) the one the crop is about.

In crowded photos a person's box holds parts of the people around them, and a top-down model
must follow the person in the middle, not the most visible body. The training pool is mostly
one person per photo, so crops rarely show that; pasting a real person from another photo
into a crop teaches it. The pasted person is cut out with a soft ellipse (no box edges to
learn from), kept off the crop's centre so the target stays the one in the middle, and the
targets are unchanged: the pasted person's joints are not the crop's, and the target's hidden
joints are still where the body says they are (as with the occluding blocks)."""

from __future__ import annotations

import numpy as np

#: the pasted person's height as a fraction of the crop's, and how far (in crop widths) their
#: centre lies from the crop's centre, left or right
HEIGHT = (0.5, 1.0)
OFFSET = (0.35, 0.65)


def soft_ellipse(h: int, w: int) -> np.ndarray:
    """(h, w) mask: 1 inside an ellipse filling the box, fading to 0 at its edge."""
    y = (np.arange(h, dtype=np.float32) + 0.5) / h * 2 - 1
    x = (np.arange(w, dtype=np.float32) + 0.5) / w * 2 - 1
    r = np.sqrt(y[:, None] ** 2 + x[None, :] ** 2)
    return np.clip((1.0 - r) / 0.25, 0.0, 1.0)


def distractor_size(crop_hw: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """(height, width) in crop pixels of the person to paste, at the crop's aspect ratio."""
    h, w = crop_hw
    scale = rng.uniform(*HEIGHT)
    return max(2, int(round(h * scale))), max(2, int(round(w * scale)))


def paste(crop: np.ndarray, person: np.ndarray, inside: np.ndarray, rng: np.random.Generator) -> None:
    """Blend `person` (C, h, w), a tightly cropped person at the crop's normalisation, into
    `crop` (C, H, W) in place: its centre left or right of the crop's centre by OFFSET crop
    widths, up or down by at most a tenth of the crop; what falls outside is cut off, and so
    is what lay outside the person's own photo (`inside` (h, w): 1 where the cut-out saw it)."""
    _, H, W = crop.shape
    _, h, w = person.shape
    side = rng.choice([-1.0, 1.0])
    cx = W / 2 + side * rng.uniform(*OFFSET) * W
    cy = H / 2 + rng.uniform(-0.1, 0.1) * H
    x0, y0 = int(round(cx - w / 2)), int(round(cy - h / 2))
    # the overlap of the pasted box with the crop, in both frames
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(W, x0 + w), min(H, y0 + h)
    if cx1 <= cx0 or cy1 <= cy0:
        return
    mask = (soft_ellipse(h, w) * inside)[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    part = person[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
    region = crop[:, cy0:cy1, cx0:cx1]
    region += (part - region) * mask
