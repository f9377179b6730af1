"""One-Euro filtering of keypoints per track: less jitter when still, little lag when moving."""

from __future__ import annotations

import math

import numpy as np

from greitpose.results import Poses


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """The One-Euro filter (Casiez et al., 2012) over an array of values sampled together."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, d_cutoff: float = 1.0) -> None:
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.x: np.ndarray | None = None
        self.dx: np.ndarray | None = None
        self.t = 0.0

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        if self.x is None or t <= self.t:
            self.x, self.dx, self.t = x.astype(np.float64), np.zeros_like(x, np.float64), t
            return x
        dt = t - self.t
        dx = (x - self.x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self.dx = a_d * dx + (1 - a_d) * self.dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self.dx), dt)
        self.x = a * x + (1 - a) * self.x
        self.t = t
        return self.x.astype(x.dtype)


class TrackSmoother:
    """One filter per track id; tracks unseen for `forget_after` seconds start afresh."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.05, forget_after: float = 1.0) -> None:
        self.params = (min_cutoff, beta)
        self.forget_after = forget_after
        self.filters: dict[int, OneEuroFilter] = {}

    def __call__(self, poses: Poses, t: float) -> Poses:
        """Smooth `poses` (with track ids) observed at time `t` seconds, in place."""
        if poses.track_ids is None:
            return poses
        for i, tid in enumerate(poses.track_ids.tolist()):
            if tid < 0:
                continue
            f = self.filters.get(tid)
            if f is None or t - f.t > self.forget_after:
                f = self.filters[tid] = OneEuroFilter(*self.params)
            poses.keypoints[i] = f(poses.keypoints[i], t)
        self.filters = {k: f for k, f in self.filters.items() if t - f.t <= self.forget_after}
        return poses
