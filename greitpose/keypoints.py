"""Keypoint sets: names, left/right flip pairs, skeletons and OKS sigmas."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class KeypointSet:
    """What a model's output channels mean; recorded in checkpoints and ONNX metadata."""

    name: str
    names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...] = ()
    sigmas: tuple[float, ...] = field(default=())

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    def flip_index(self) -> np.ndarray:
        """Permutation that swaps every left channel with its right partner."""
        index = np.arange(self.num_keypoints)
        for a, b in self.flip_pairs:
            index[a], index[b] = b, a
        return index


COCO = KeypointSet(
    name="coco",
    names=("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder",
           "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
           "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle"),
    flip_pairs=((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)),
    skeleton=((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
              (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6)),
    sigmas=(0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107,
            0.107, 0.087, 0.087, 0.089, 0.089),
)

MPII = KeypointSet(
    name="mpii",
    names=("right_ankle", "right_knee", "right_hip", "left_hip", "left_knee", "left_ankle",
           "pelvis", "thorax", "upper_neck", "head_top", "right_wrist", "right_elbow",
           "right_shoulder", "left_shoulder", "left_elbow", "left_wrist"),
    flip_pairs=((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
    skeleton=((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9), (7, 12),
              (12, 11), (11, 10), (7, 13), (13, 14), (14, 15)),
)

KEYPOINT_SETS = {k.name: k for k in (COCO, MPII)}


def generic(num_keypoints: int, flip_pairs: tuple[tuple[int, int], ...] = (),
            names: tuple[str, ...] | None = None, skeleton: tuple[tuple[int, int], ...] = (),
            sigmas: tuple[float, ...] = ()) -> KeypointSet:
    """A user's own keypoint set (e.g. read from a COCO-format categories entry)."""
    names = names or tuple(f"kpt_{i}" for i in range(num_keypoints))
    return KeypointSet("custom", tuple(names), tuple(map(tuple, flip_pairs)),
                       tuple(map(tuple, skeleton)), tuple(sigmas))


def default_for(num_keypoints: int) -> KeypointSet:
    """COCO for 17 keypoints, MPII for 16, a generic set without pairs otherwise."""
    for kset in KEYPOINT_SETS.values():
        if kset.num_keypoints == num_keypoints:
            return kset
    return generic(num_keypoints)
