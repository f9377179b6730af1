"""Top-down geometry and heatmap coding: pure, batched functions.

Conventions: boxes are (x1, y1, x2, y2) in image pixels; `center`/`scale` are the crop's center
and (width, height) in image pixels; sizes are (width, height) for crops and heatmaps; angles are
degrees, positive turning the crop window counter-clockwise in the image. A heatmap pixel covers
`input / heatmap` input pixels, with pixel centers on integer coordinates (as cv2.warpAffine).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Array = np.ndarray

#: a person's box is enlarged by this factor before cropping, so the crop holds the whole body
BOX_PADDING = 1.25


def boxes_to_center_scale(boxes: Array, aspect_ratio: float, padding: float = BOX_PADDING) -> tuple[Array, Array]:
    """Box (N, 4) xyxy -> center (N, 2), scale (N, 2) widened to `aspect_ratio` (w/h), padded."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    center = (boxes[:, :2] + boxes[:, 2:]) / 2
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 1e-3)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 1e-3)
    wider = w > aspect_ratio * h
    h = np.where(wider, w / aspect_ratio, h)
    w = np.where(wider, w, h * aspect_ratio)
    return center, np.stack([w, h], axis=1) * padding


def crop_affine(center: Array, scale: Array, output_size: Sequence[int], rotation: Array | float = 0.0,
                inverse: bool = False) -> Array:
    """(N, 2, 3) affine matrices from image to crop (or back, with `inverse`).

    The box of size `scale` around `center`, turned by `rotation`, maps onto the
    `output_size` (w, h) crop: q = s R(-rot) (p - center) + crop_center, s = out_w / scale_w.
    """
    center = np.asarray(center, dtype=np.float64).reshape(-1, 2)
    scale = np.asarray(scale, dtype=np.float64).reshape(-1, 2)
    rot = np.deg2rad(np.broadcast_to(np.asarray(rotation, dtype=np.float64), (len(center),)))
    out_w, out_h = float(output_size[0]), float(output_size[1])
    s = out_w / scale[:, 0]
    cos, sin = np.cos(rot), np.sin(rot)
    # R(-rot) = [[cos, sin], [-sin, cos]]
    linear = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1) * s[:, None, None]
    crop_center = np.array([out_w / 2, out_h / 2])
    if inverse:
        linear_inv = np.linalg.inv(linear)
        t = center - np.einsum("nij,j->ni", linear_inv, crop_center)
        return np.concatenate([linear_inv, t[:, :, None]], axis=2)
    t = crop_center - np.einsum("nij,nj->ni", linear, center)
    return np.concatenate([linear, t[:, :, None]], axis=2)


def apply_affine(points: Array, matrices: Array) -> Array:
    """Apply (N, 2, 3) matrices to (N, K, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("nij,nkj->nki", matrices[:, :, :2], points) + matrices[:, None, :, 2]


def generate_heatmaps(keypoints: Array, visible: Array, heatmap_size: Sequence[int],
                      sigma: float = 2.0) -> tuple[Array, Array]:
    """Gaussian targets (N, K, H, W) centred on sub-pixel heatmap coordinates, and weights (N, K).

    `visible` is COCO's visibility (0: unlabelled, 1 or 2: labelled, weight 1) or a target
    weight between 0 and 1. A keypoint gets weight 0 when it is not labelled or its Gaussian
    lies wholly off the map (more than 3 sigma outside), so the loss ignores it.
    """
    keypoints = np.asarray(keypoints, dtype=np.float32)
    w, h = int(heatmap_size[0]), int(heatmap_size[1])
    x = np.arange(w, dtype=np.float32)
    y = np.arange(h, dtype=np.float32)
    mx, my = keypoints[..., 0:1], keypoints[..., 1:2]
    gx = np.exp(-((x - mx) ** 2) / (2 * sigma**2))  # (N, K, W)
    gy = np.exp(-((y - my) ** 2) / (2 * sigma**2))  # (N, K, H)
    heatmaps = gy[..., :, None] * gx[..., None, :]
    reach = 3 * sigma
    inside = ((keypoints[..., 0] > -reach) & (keypoints[..., 0] < w - 1 + reach)
              & (keypoints[..., 1] > -reach) & (keypoints[..., 1] < h - 1 + reach))
    visible = np.asarray(visible, np.float32)
    weights = np.where((visible > 0) & inside, np.minimum(visible, 1.0), 0.0)
    heatmaps *= (weights > 0)[..., None, None]
    return heatmaps.astype(np.float32), weights.astype(np.float32)


def flip_heatmaps(heatmaps: Array, flip_index: Sequence[int], shift: bool = True) -> Array:
    """Heatmaps of a mirrored crop (N, K, H, W) -> heatmaps for the original crop.

    Mirrors the width, swaps left/right channels, and (with `shift`) moves one pixel right:
    a mirrored input pixel x lands at W_in - 1 - x, which is 3/4 of a heatmap pixel off the
    plain flip of a 4x smaller map, so the shift re-aligns the two before averaging.
    """
    out = heatmaps[:, list(flip_index), :, ::-1]
    return np.concatenate([out[..., :1], out[..., :-1]], axis=-1) if shift else out


#: Heatmap decoders: the paper's quarter offset (the default) and DARK (opt-in, DESIGN.md 3).
DECODERS = ("quarter", "dark")


def _argmax(heatmaps: Array) -> tuple[Array, Array, Array]:
    """Per-channel maximum of (N, K, H, W): x (N, K), y (N, K), score (N, K)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    return idx % w, idx // w, scores


def decode_heatmaps(heatmaps: Array, method: str = "quarter") -> tuple[Array, Array]:
    """(N, K, H, W) heatmaps -> coordinates (N, K, 2) in heatmap px and scores (N, K) (the maxima).

    `quarter`: argmax, then each coordinate moves 0.25 px toward the larger of its two
    neighbours, per axis. `dark`: argmax refined by `dark_offsets`.
    """
    if method not in DECODERS:
        raise ValueError(f"unknown heatmap decoder '{method}' ({', '.join(DECODERS)})")
    heatmaps = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = heatmaps.shape
    px, py, scores = _argmax(heatmaps)
    if method == "dark":
        return np.stack([px, py], axis=2) + dark_offsets(heatmaps, px, py), scores
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def towards(lo: Array, hi: Array, inner: Array) -> Array:
        return np.where(inner, 0.25 * np.sign(hi - lo), 0.0)

    inner_x = (px > 0) & (px < w - 1)
    inner_y = (py > 0) & (py < h - 1)
    dx = towards(heatmaps[ni, ki, py, np.clip(px - 1, 0, w - 1)],
                 heatmaps[ni, ki, py, np.clip(px + 1, 0, w - 1)], inner_x)
    dy = towards(heatmaps[ni, ki, np.clip(py - 1, 0, h - 1), px],
                 heatmaps[ni, ki, np.clip(py + 1, 0, h - 1), px], inner_y)
    coords = np.stack([px + dx, py + dy], axis=2).astype(np.float64)
    return coords, scores


def dark_offsets(heatmaps: Array, px: Array, py: Array, kernel: int = 11) -> Array:
    """Sub-pixel offsets (N, K, 2) of each maximum by DARK (Zhang et al., CVPR 2020).

    The heatmap is smoothed with a Gaussian (kernel 11: sigma 2, the training targets' own),
    rescaled to its old maximum and taken in log, where a Gaussian peak is a quadratic; one
    Newton step from the integer maximum, -Hessian^-1 x gradient, lands on the peak. Where the
    Hessian is singular (a flat map), or the maximum lies within two pixels of the border (the
    differences would reach past it), the offset is 0.
    """
    n, k, h, w = heatmaps.shape
    maps = heatmaps.reshape(n * k, h, w)
    peak = maps.max(axis=(1, 2))
    smooth = np.stack([cv2.GaussianBlur(m, (kernel, kernel), 0) for m in maps]) if len(maps) else maps
    smooth *= (peak / np.maximum(smooth.max(axis=(1, 2)), 1e-10))[:, None, None]
    log = np.log(np.maximum(smooth, 1e-10))
    x, y = px.reshape(-1), py.reshape(-1)
    inner = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    i, x, y = np.arange(n * k), np.clip(x, 2, w - 3), np.clip(y, 2, h - 3)

    def at(dx: int, dy: int) -> Array:
        return log[i, y + dy, x + dx]

    gx, gy = 0.5 * (at(1, 0) - at(-1, 0)), 0.5 * (at(0, 1) - at(0, -1))
    hxx = 0.25 * (at(2, 0) - 2 * at(0, 0) + at(-2, 0))
    hyy = 0.25 * (at(0, 2) - 2 * at(0, 0) + at(0, -2))
    hxy = 0.25 * (at(1, 1) - at(1, -1) - at(-1, 1) + at(-1, -1))
    det = hxx * hyy - hxy * hxy
    solvable = inner & (np.abs(det) > 1e-12)
    safe = np.where(solvable, det, 1.0)
    ox = np.where(solvable, -(hyy * gx - hxy * gy) / safe, 0.0)
    oy = np.where(solvable, -(hxx * gy - hxy * gx) / safe, 0.0)
    return np.stack([ox, oy], axis=1).reshape(n, k, 2).astype(np.float64)


def heatmap_to_image(coords: Array, center: Array, scale: Array, input_size: Sequence[int],
                     heatmap_size: Sequence[int], rotation: Array | float = 0.0) -> Array:
    """Heatmap coordinates (N, K, 2) -> image coordinates, through the crop's inverse affine."""
    stride = np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]])
    inverse = crop_affine(center, scale, input_size, rotation, inverse=True)
    return apply_affine(np.asarray(coords) * stride, inverse)


def image_to_heatmap(points: Array, center: Array, scale: Array, input_size: Sequence[int],
                     heatmap_size: Sequence[int], rotation: Array | float = 0.0) -> Array:
    """Image coordinates (N, K, 2) -> heatmap coordinates of each crop (training targets)."""
    stride = np.array([input_size[0] / heatmap_size[0], input_size[1] / heatmap_size[1]])
    return apply_affine(points, crop_affine(center, scale, input_size, rotation)) / stride
