"""A loss for labels whose left and right cannot be trusted.

Training sets that mix conventions (crowd-sourced labels that give some people's sides as seen
from the camera rather than from the person, for the arms, the legs or both) teach a network
that left and right are interchangeable when the loss takes them at their word. For samples
from sources named in `--free-sides`, the loss scores the prediction against the label with
each limb group's sides as given or exchanged and keeps the best: those samples still teach
where the joints are, and the other sources teach which side is which. On the training pool's
sports photos it measured worse than trusting the labels (docs/training.md), so the pool's
recipe does not use it.
"""

from __future__ import annotations

import torch

from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.train.data import Sample
from greitpose.train.losses import per_sample_mse

#: COCO's limb groups whose sides a label may give exchanged: (left, right) index pairs
COCO_ARMS = ((5, 6), (7, 8), (9, 10))  # shoulders, elbows, wrists
COCO_LEGS = ((11, 12), (13, 14), (15, 16))  # hips, knees, ankles


def parse_sources(text: str) -> frozenset[str]:
    """'lspet-10k,other' -> the set of source names (empty text: none)."""
    return frozenset(filter(None, (t.strip() for t in text.split(","))))


def side_assignments(keypoints: KeypointSet) -> torch.Tensor:
    """(4, K) keypoint permutations: the label as given, its arms exchanged, its legs
    exchanged, both. Only COCO's 17 keypoints name these groups."""
    if keypoints.name != "coco" or keypoints.num_keypoints != 17:
        raise GreitposeError(f"--free-sides knows the limbs of COCO's 17 keypoints only, not "
                             f"'{keypoints.name}' ({keypoints.num_keypoints} keypoints)")
    perms = []
    for groups in ((), COCO_ARMS, COCO_LEGS, COCO_ARMS + COCO_LEGS):
        perm = list(range(keypoints.num_keypoints))
        for left, right in groups:
            perm[left], perm[right] = right, left
        perms.append(perm)
    return torch.tensor(perms)


def side_free_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, free: torch.Tensor,
                  perms: torch.Tensor, hard: int = 0) -> torch.Tensor:
    """The weighted heatmap MSE (train.losses.weighted_mse, `hard` as there), where a sample
    with `free` set is scored against the best of its label's side assignments `perms` (first:
    as given)."""
    losses = torch.stack([per_sample_mse(pred, target[:, perm], weight[:, perm], hard) for perm in perms], dim=1)
    return torch.where(free, losses.min(dim=1).values, losses[:, 0]).mean()


def free_side_samples(samples: list[Sample], keypoints: KeypointSet, sources: str
                      ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Per-sample flags of the samples whose sides the loss leaves free (train.side_free), and
    the side assignments it tries; (None, None) when no source is named."""
    names = parse_sources(sources)
    if not names:
        return None, None
    if unknown := sorted(names - {s.source for s in samples}):
        raise GreitposeError(f"--free-sides names sources no annotation has: {', '.join(unknown)}")
    return torch.tensor([s.source in names for s in samples]), side_assignments(keypoints)
