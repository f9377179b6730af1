"""Object keypoint similarity and OKS-based non-maximum suppression."""

from __future__ import annotations

import numpy as np


def oks_terms(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """(M, K) per-keypoint terms exp(-d^2 / (2 area (2 sigma)^2)) of pose `a` (K, 2) against
    poses `b` (M, K, 2)."""
    var = (2 * np.asarray(sigmas)) ** 2
    d2 = ((b - a[None]) ** 2).sum(axis=-1)
    return np.exp(-d2 / var[None] / (area + np.spacing(1)) / 2)


def oks(a: np.ndarray, b: np.ndarray, area: float, sigmas: np.ndarray,
        visible: np.ndarray | None = None) -> np.ndarray:
    """OKS of pose `a` (K, 2) against poses `b` (M, K, 2), the COCO formula: the mean of
    the per-keypoint terms over visible keypoints."""
    vis = np.ones(a.shape[0], bool) if visible is None else visible > 0
    if not vis.any():
        return np.zeros(len(b))
    return oks_terms(a, b, area, sigmas)[:, vis].mean(axis=1)


def oks_nms(keypoints: np.ndarray, scores: np.ndarray, areas: np.ndarray, sigmas: np.ndarray,
            threshold: float = 0.9) -> list[int]:
    """Indices of poses kept, best first: a pose is dropped when its OKS with a kept one > threshold."""
    order = list(np.argsort(-scores))
    keep: list[int] = []
    while order:
        i = order.pop(0)
        keep.append(i)
        if not order:
            break
        rest = np.array(order)
        sim = oks(keypoints[i], keypoints[rest], float(areas[i]), sigmas)
        order = [j for j, s in zip(order, sim) if s <= threshold]
    return keep
