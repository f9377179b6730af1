"""Picture-quality augmentation: colour (brightness, contrast, saturation) and sharpness.

The pool's photos come from few cameras and light conditions (studio portraits, sports
broadcasts); everyday photos vary in exposure, colour cast and focus far more. Geometry and
targets stay as they are: only the pixels of a crop change.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

#: Ranges of the colour changes: brightness shift in 0-255 levels, contrast and saturation factors.
BRIGHTNESS = 32.0
CONTRAST = (0.6, 1.4)
SATURATION = (0.5, 1.5)
#: Share of the changed crops that are also blurred, and the blur's sigma range in crop pixels.
BLUR_SHARE = 0.25
BLUR_SIGMA = (0.5, 1.5)
#: ITU-R BT.601 luma weights, RGB order (the crops are normalised RGB).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def jitter(crop: np.ndarray, mean: Sequence[float], std: Sequence[float], rng: np.random.Generator) -> None:
    """Change a normalised (3, H, W) RGB crop's brightness, contrast and saturation by random
    amounts, in random order, and blur a quarter of such crops slightly; in place."""
    m = np.asarray(mean, np.float32)[:, None, None]
    s = np.asarray(std, np.float32)[:, None, None]
    rgb = crop * s + m
    for step in rng.permutation(3):
        if step == 0:
            rgb += np.float32(rng.uniform(-BRIGHTNESS, BRIGHTNESS))
        else:
            gray = np.tensordot(LUMA, rgb, axes=1)
            pivot = gray.mean() if step == 1 else gray
            rgb = pivot + (rgb - pivot) * np.float32(rng.uniform(*(CONTRAST if step == 1 else SATURATION)))
        np.clip(rgb, 0.0, 255.0, out=rgb)
    if rng.random() < BLUR_SHARE:
        sigma = float(rng.uniform(*BLUR_SIGMA))
        rgb = cv2.GaussianBlur(rgb.transpose(1, 2, 0), (0, 0), sigma).transpose(2, 0, 1)
    crop[:] = (rgb - m) / s
