"""Top-down pose estimation: person boxes in, keypoints in image coordinates out."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from greitpose import codec
from greitpose.backends import Backend
from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.results import Detections, Poses

#: Keypoints at or under this score do not count toward a person's instance score.
SCORE_THRESHOLD = 0.2


def crop_people(image_bgr: np.ndarray, center: np.ndarray, scale: np.ndarray,
                input_size: tuple[int, int], mean: Sequence[float], std: Sequence[float],
                rotation: np.ndarray | float = 0.0) -> np.ndarray:
    """Warp each person to an (N, 3, H, W) float32 batch of normalised RGB crops."""
    h, w = input_size
    return warp_crops(image_bgr, codec.crop_affine(center, scale, (w, h), rotation), input_size, mean, std)


def warp_crops(image_bgr: np.ndarray, matrices: np.ndarray, input_size: tuple[int, int],
               mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """`crop_people` for crop affines (N, 2, 3) already worked out."""
    h, w = input_size
    batch = np.empty((len(matrices), 3, h, w), np.float32)
    mean_a = np.asarray(mean, np.float32)[:, None, None]
    inv_std = 1.0 / np.asarray(std, np.float32)[:, None, None]
    for i, m in enumerate(matrices):
        crop = cv2.warpAffine(image_bgr, m, (w, h), flags=cv2.INTER_LINEAR)
        batch[i] = (crop[:, :, ::-1].transpose(2, 0, 1) - mean_a) * inv_std
    return batch


def instance_scores(box_scores: np.ndarray, keypoint_scores: np.ndarray,
                    threshold: float = SCORE_THRESHOLD) -> np.ndarray:
    """Detector score x mean keypoint score over keypoints above `threshold` (0 if none)."""
    above = keypoint_scores > threshold
    count = above.sum(axis=1)
    mean = np.where(count > 0, (keypoint_scores * above).sum(axis=1) / np.maximum(count, 1), 0.0)
    return box_scores * mean


def check_decoder(decode: str) -> None:
    """A heatmap decoder's name, checked before any model loads."""
    if decode not in codec.DECODERS:
        raise GreitposeError(f"unknown decoder '{decode}' ({' or '.join(codec.DECODERS)})")


class TopDown:
    """Crops people, runs the backend (with the flipped crops in the same batch), decodes
    (`decode`: the paper's quarter offset, or DARK)."""

    def __init__(self, backend: Backend, flip: bool = True, padding: float = codec.BOX_PADDING,
                 keypoints: KeypointSet | None = None, max_batch: int = 64, decode: str = "quarter") -> None:
        check_decoder(decode)
        self.backend = backend
        self.decode = decode
        self.max_batch = max_batch
        self.flip = flip
        self.padding = padding
        self.flip_index = (keypoints or backend.keypoints).flip_index()

    @property
    def input_size(self) -> tuple[int, int]:
        return self.backend.config.input_size

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """Heatmaps for a crop batch, flip-test averaged when enabled. At most `max_batch`
        crops (plain and mirrored counted) go through one forward pass, so that memory stays
        bounded however many people an image or a batch of frames holds."""
        if len(crops) == 0:
            return self.backend(crops)
        step = max(1, self.max_batch // 2 if self.flip else self.max_batch)
        parts = [self._forward(crops[i:i + step]) for i in range(0, len(crops), step)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _forward(self, crops: np.ndarray) -> np.ndarray:
        if not self.flip:
            return self.backend(crops)
        both = self.backend(np.concatenate([crops, crops[..., ::-1]]))
        plain, mirrored = both[: len(crops)], both[len(crops):]
        return (plain + codec.flip_heatmaps(mirrored, self.flip_index)) / 2

    def __call__(self, images: Sequence[np.ndarray], detections: Sequence[Detections],
                 padding: float | None = None) -> list[Poses]:
        """Pose of every detected person in every image, in batched forward passes.

        `padding` overrides the box padding (e.g. 1.0 for crops that are padded already).
        """
        h, w = self.input_size
        pad = self.padding if padding is None else padding
        centers, scales, crops = [], [], []
        for image, det in zip(images, detections):
            center, scale = codec.boxes_to_center_scale(det.boxes, w / h, pad)
            centers.append(center)
            scales.append(scale)
            crops.append(crop_people(image, center, scale, (h, w), self.backend.mean, self.backend.std))
        all_crops = np.concatenate(crops) if crops else np.zeros((0, 3, h, w), np.float32)
        heatmaps = self.heatmaps(np.ascontiguousarray(all_crops))
        hm_h, hm_w = heatmaps.shape[-2:]
        coords, kpt_scores = codec.decode_heatmaps(heatmaps, self.decode)
        center_all = np.concatenate(centers) if centers else np.zeros((0, 2))
        scale_all = np.concatenate(scales) if scales else np.zeros((0, 2))
        keypoints = codec.heatmap_to_image(coords, center_all, scale_all, (w, h), (hm_w, hm_h))
        k = self.backend.config.num_keypoints
        results, start = [], 0
        for det in detections:
            end = start + len(det)
            results.append(Poses(
                boxes=np.asarray(det.boxes, np.float32).reshape(-1, 4),
                box_scores=np.asarray(det.scores, np.float32),
                keypoints=keypoints[start:end].astype(np.float32).reshape(len(det), k, 2),
                keypoint_scores=kpt_scores[start:end].astype(np.float32).reshape(len(det), k),
                scores=instance_scores(np.asarray(det.scores, np.float32), kpt_scores[start:end]),
                track_ids=det.track_ids,
            ))
            start = end
        return results
