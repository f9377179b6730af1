"""Training samples and their augmentation (rotation, scale, flip with pair swap, half-body,
crop shift, occluding blocks, pasted distractor people, colour and sharpness, people cut off by
the photo's edge),
decoded in DataLoader workers. Every sample's randomness comes from (seed, epoch, index), so
a run is reproducible whatever the number of workers and when resumed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from greitpose import codec
from greitpose.datasets import load_coco, load_mpii, mpii_box, parse_flip_pairs
from greitpose.errors import GreitposeError
from greitpose.keypoints import MPII, KeypointSet
from greitpose.pose import crop_people, warp_crops
from greitpose.sources import read_image
from greitpose.train import distractors, photometric, truncation

if TYPE_CHECKING:
    from greitpose.train.config import TrainConfig


@dataclass
class Sample:
    image: Path
    joints: np.ndarray  # (K, 2) image px
    visible: np.ndarray  # (K,) 0: unlabelled, else the target weight (1, or lower: keypoint_weights)
    center: np.ndarray  # (2,)
    scale: np.ndarray  # (2,) crop size in image px (aspect and padding applied)
    source: str = ""  # the annotation's "source" field, for per-source sampling weights
    box: np.ndarray | None = None  # (4,) x1, y1, x2, y2 as annotated and clipped (truncation)


@dataclass(frozen=True)
class Augment:
    rotation: float = 30.0  # degrees: normal * rotation, clipped to +-2 rotation, on 60% of samples
    scale: float = 0.25  # scale *= clip(1 + normal * scale, 1 - scale, 1 + scale)
    flip: bool = True
    half_body_prob: float = 0.3  # COCO: crop to the upper or lower body (when > 8 keypoints seen)
    upper_body: tuple[int, ...] = tuple(range(11))  # COCO: face, shoulders, arms
    shift: float = 0.0  # crop centre moved by up to this fraction of the crop (detector-like boxes)
    occlusion: float = 0.0  # probability of a random grey-noise block over part of the crop
    paste: float = 0.0  # probability of another training person pasted beside the crop's own
    photometric: float = 0.0  # probability of colour and sharpness changes (photometric.jitter)
    truncate: float = 0.0  # probability of the person cut off by the photo's edge (truncation.truncate)


def clipped_box(annotation: dict, width: float, height: float) -> np.ndarray | None:
    """A person's box (x1, y1, x2, y2) clipped to its image as the SimpleBaseline/HRNet protocol
    clips it (x2 = x1 + w - 1); None when nothing of it is left."""
    x, y, bw, bh = annotation["bbox"]
    x1, y1 = max(0.0, x), max(0.0, y)
    x2, y2 = min(width - 1.0, x1 + max(0.0, bw - 1)), min(height - 1.0, y1 + max(0.0, bh - 1))
    return None if x2 < x1 or y2 < y1 else np.array([x1, y1, x2, y2], np.float64)


def target_weights(visibility: np.ndarray, keypoint_weights: list[float] | None) -> np.ndarray:
    """(K,) target weights: 0 where unlabelled, else 1 or the square root of the annotation's
    "keypoint_weights" (loss weights: the weighted MSE multiplies both heatmaps by the target
    weight, so the loss scales with its square)."""
    labelled = (np.asarray(visibility) > 0).astype(np.float32)
    if keypoint_weights is None:
        return labelled
    return labelled * np.sqrt(np.asarray(keypoint_weights, np.float32))


def coco_samples(ann: Path, images: Path, input_size: tuple[int, int],
                 flip_pairs: tuple[tuple[int, int], ...] | None = None) -> tuple[list[Sample], KeypointSet]:
    """Persons with at least one labelled keypoint; boxes clipped to the image as the
    SimpleBaseline/HRNet protocol does. Every image file must exist."""
    ds = load_coco(ann, images, flip_pairs)
    h, w = input_size
    samples = []
    for image_id, im in ds.images.items():
        for a in ds.persons(image_id, min_keypoints=1):
            box = clipped_box(a, im.width or np.inf, im.height or np.inf)
            if box is None:
                continue
            k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
            center, scale = codec.boxes_to_center_scale(box[None], w / h)
            samples.append(Sample(im.path, k[:, :2], target_weights(k[:, 2], a.get("keypoint_weights")),
                                  center[0], scale[0], str(a.get("source", "")), box))
    return samples, ds.keypoints


def mpii_samples(ann: Path, images: Path, input_size: tuple[int, int]) -> tuple[list[Sample], KeypointSet]:
    """MPII people with the standard crop (center moved down 15 x scale px, side 1.25 x scale x 200)."""
    h, w = input_size
    samples = []
    for p in load_mpii(ann, images):
        center, scale = codec.boxes_to_center_scale(mpii_box(p, w / h)[None], w / h, padding=1.0)
        samples.append(Sample(p.image, p.joints, (p.visible > 0).astype(np.float32), center[0], scale[0]))
    return samples, MPII


def occlude(crop: np.ndarray, rng: np.random.Generator) -> None:
    """Cover a random block (2-20% of the crop, aspect 1:3..3:1) with noise, in place: people
    in everyday photos are often hidden behind others or objects, and a crop must not need
    every part of the body in view. Targets stay: a hidden joint is still where it is."""
    _, h, w = crop.shape
    area = rng.uniform(0.02, 0.2) * h * w
    aspect = np.exp(rng.uniform(np.log(1 / 3), np.log(3)))
    bh, bw = min(h, int(np.sqrt(area * aspect))), min(w, int(np.sqrt(area / aspect)))
    y, x = int(rng.integers(0, h - bh + 1)), int(rng.integers(0, w - bw + 1))
    crop[:, y:y + bh, x:x + bw] = rng.normal(size=(crop.shape[0], bh, bw)).astype(crop.dtype)


class TopDownDataset(Dataset):
    """(crop, target heatmaps, target weights) for every sample, augmented when `augment` is set."""

    def __init__(self, samples: list[Sample], keypoints: KeypointSet, input_size: tuple[int, int],
                 mean: tuple, std: tuple, sigma: float = 2.0, augment: Augment | None = None,
                 seed: int = 0) -> None:
        if not samples:
            raise GreitposeError("the training set has no person with a labelled keypoint")
        self.samples, self.keypoints = samples, keypoints
        self.input_size, self.mean, self.std, self.sigma = input_size, mean, std, sigma
        self.augment, self.seed, self.epoch = augment, seed, 0
        self.flip_index = keypoints.flip_index()

    def __len__(self) -> int:
        return len(self.samples)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _half_body(self, joints: np.ndarray, visible: np.ndarray, rng: np.random.Generator,
                   aug: Augment) -> tuple[np.ndarray, np.ndarray] | None:
        upper = [j for j in aug.upper_body if j < len(joints) and visible[j] > 0]
        lower = [j for j in range(len(joints)) if j not in aug.upper_body and visible[j] > 0]
        chosen = upper if (rng.random() < 0.5 and len(upper) > 2) or len(lower) < 2 else lower
        if len(chosen) < 2:
            return None
        pts = joints[chosen]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        h, w = self.input_size
        center, scale = codec.boxes_to_center_scale(np.array([[*lo, *hi]]), w / h, padding=1.5)
        return center[0], scale[0]

    def _distractor(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Another sample's person, tightly cropped (its box without padding), at a random
        size, mirrored half of the time, normalised like the crops; and where the cut-out lay
        inside its photo (1) or past its edge (0)."""
        other = self.samples[(index + 1 + int(rng.integers(len(self.samples) - 1))) % len(self.samples)
                             if len(self.samples) > 1 else index]
        image = read_image(other.image)
        if image is None:
            raise GreitposeError(f"cannot read training image {other.image}")
        h, w = distractors.distractor_size(self.input_size, rng)
        matrix = codec.crop_affine(other.center[None], other.scale[None] / codec.BOX_PADDING, (w, h))
        person = warp_crops(image, matrix, (h, w), self.mean, self.std)[0]
        inside = cv2.warpAffine(np.ones(image.shape[:2], np.float32), matrix[0], (w, h), flags=cv2.INTER_LINEAR)
        if rng.random() < 0.5:
            person, inside = person[..., ::-1], inside[:, ::-1]
        return person, inside

    def __getitem__(self, key: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Sample `key` mod len, augmented as in epoch `set_epoch` + key // len: a key names its
        epoch, so that loader workers that outlive an epoch need not be told of the next."""
        later, index = divmod(key, len(self.samples))
        epoch = self.epoch + later
        s = self.samples[index]
        image = read_image(s.image)
        if image is None:
            raise GreitposeError(f"cannot read training image {s.image}")
        joints, visible = s.joints.copy(), s.visible.copy()
        center, scale, rotation = s.center.copy(), s.scale.copy(), 0.0
        aug = self.augment
        if aug is not None:
            rng = np.random.default_rng([self.seed, epoch, index])
            if aug.truncate and rng.random() < aug.truncate:
                cut = truncation.truncate(image, joints, visible, s.box, self.input_size[1] / self.input_size[0], rng)
                if cut is not None:
                    image, visible, center, scale = cut
            if aug.half_body_prob and (visible > 0).sum() > 8 and rng.random() < aug.half_body_prob:
                half = self._half_body(joints, visible, rng, aug)
                if half is not None:
                    center, scale = half
            scale = scale * np.clip(1 + rng.normal() * aug.scale, 1 - aug.scale, 1 + aug.scale)
            if aug.shift:
                center = center + rng.uniform(-aug.shift, aug.shift, 2) * scale
            if rng.random() <= 0.6:
                rotation = float(np.clip(rng.normal() * aug.rotation, -2 * aug.rotation, 2 * aug.rotation))
            if aug.flip and rng.random() < 0.5:
                width = image.shape[1]
                image = image[:, ::-1]
                joints[:, 0] = width - 1 - joints[:, 0]
                joints, visible = joints[self.flip_index], visible[self.flip_index]
                center[0] = width - 1 - center[0]
        h, w = self.input_size
        crop = crop_people(np.ascontiguousarray(image), center[None], scale[None], (h, w), self.mean,
                           self.std, rotation)[0]
        if aug is not None and aug.paste and rng.random() < aug.paste:
            distractors.paste(crop, *self._distractor(index, rng), rng)
        if aug is not None and aug.photometric and rng.random() < aug.photometric:
            photometric.jitter(crop, self.mean, self.std, rng)
        if aug is not None and aug.occlusion and rng.random() < aug.occlusion:
            occlude(crop, rng)
        hm = codec.image_to_heatmap(joints[None], center[None], scale[None], (w, h), (w // 4, h // 4), rotation)
        target, weight = codec.generate_heatmaps(hm, visible[None], (w // 4, h // 4), self.sigma)
        return torch.from_numpy(crop), torch.from_numpy(target[0]), torch.from_numpy(weight[0])


def configured_samples(config: TrainConfig, input_size: tuple[int, int]) -> tuple[list[Sample], KeypointSet]:
    """The training set a configuration names (COCO-format or MPII annotations)."""
    ann = Path(config.train_ann)
    images = Path(config.train_images) if config.train_images else ann.parent
    if config.dataset == "mpii":
        return mpii_samples(ann, images, input_size)
    pairs = parse_flip_pairs(config.flip_pairs) if config.flip_pairs else None
    return coco_samples(ann, images, input_size, pairs)


def configured_dataset(config: TrainConfig, samples: list[Sample], keypoints: KeypointSet,
                       input_size: tuple[int, int], mean: tuple, std: tuple) -> TopDownDataset:
    """Crops, targets and the augmentation a configuration asks for (half-body on COCO only)."""
    augment = None
    if config.augment:
        half = 0.3 if config.half_body and config.dataset == "coco" and keypoints.num_keypoints == 17 else 0.0
        augment = Augment(config.rotation, config.scale, config.flip, half, shift=config.shift,
                          occlusion=config.occlusion, paste=config.paste,
                          photometric=config.photometric, truncate=config.truncate)
    return TopDownDataset(samples, keypoints, input_size, mean, std, config.sigma, augment, config.seed)
