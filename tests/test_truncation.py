"""--truncate: a person cut off by the photo's edge, as COCO's people at the frame are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from greitpose import codec
from greitpose.train import truncation

from test_train import make_dataset


def _person() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(5)
    joints = np.round(np.stack([rng.uniform(60, 140, 17), rng.uniform(40, 360, 17)], 1))  # on pixel centres
    visible = np.ones(17, np.float32)
    visible[3] = 0  # one joint unlabelled from the start
    box = np.array([50.0, 30.0, 150.0, 370.0])
    return joints, visible, box


def test_cut_blanks_past_the_edge_unlabels_its_joints_and_boxes_the_rest() -> None:
    joints, visible, box = _person()
    sides = set()
    for seed in range(60):
        image = np.full((400, 200, 3), 255, np.uint8)
        cut = truncation.truncate(image, joints, visible, box, 0.75, np.random.default_rng(seed))
        assert cut is not None
        out, kept, center, scale = cut
        px = joints.astype(int)
        blank = out[px[:, 1], px[:, 0]].sum(axis=1) == 0
        assert (kept[blank] == 0).all()  # no label left on the blanked side
        assert (kept[~blank] == visible[~blank]).all()  # every joint in view keeps its label
        assert blank.sum() >= 1 and (kept > 0).sum() >= truncation.MIN_JOINTS
        lo, hi = center - scale / 2, center + scale / 2
        inside = joints[kept > 0]
        assert (inside >= lo).all() and (inside <= hi).all()  # the crop holds what is in view
        rows, cols = (out == 0).all(axis=2).any(axis=1), (out == 0).all(axis=2).any(axis=0)
        side = ("bottom" if rows[-1] and not rows[0] else "top" if rows[0] and not rows[-1]
                else "right" if cols[-1] else "left")
        sides.add(side)
        full = codec.boxes_to_center_scale(box[None], 0.75)[1][0]
        if side in ("bottom", "top"):  # this tall person's crop shrinks to the part in view
            assert scale[1] < 0.95 * full[1]
        assert scale[1] <= full[1] + 1e-6
    assert sides == set(truncation.SIDES)


def test_too_few_joints_in_view_leave_the_sample_whole() -> None:
    joints, visible, box = _person()
    two = np.zeros(17, np.float32)
    two[[0, 16]] = 1
    image = np.full((400, 200, 3), 255, np.uint8)
    assert truncation.truncate(image, joints, two, box, 0.75, np.random.default_rng(0)) is None
    assert (image == 255).all()


def test_a_cut_that_leaves_no_box_leaves_the_photo_untouched() -> None:
    joints, visible, _ = _person()
    thin = np.array([50.0, 30.0, 150.0, 35.0])  # wholly above any top cut through the joints
    left_whole = 0
    for seed in range(200):
        image = np.full((400, 200, 3), 255, np.uint8)
        if truncation.truncate(image, joints, visible, thin, 0.75, np.random.default_rng(seed)) is None:
            left_whole += 1
            assert (image == 255).all()
    assert left_whole > 0


def test_truncated_samples_lose_targets_only_past_the_edge(tmp_path: Path) -> None:
    from greitpose.train.data import Augment, TopDownDataset, coco_samples

    ann = make_dataset(tmp_path / "data", n=3)
    samples, kset = coco_samples(ann, ann.parent, (128, 96))
    assert samples[0].box is not None
    plain = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1), augment=Augment(half_body_prob=0.0))
    cut = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1),
                         augment=Augment(half_body_prob=0.0, truncate=1.0))
    fewer = [float(cut[i][2].sum()) < float(plain[i][2].sum()) for i in range(3)]
    assert all(fewer)
    assert all(float(cut[i][2].sum()) >= truncation.MIN_JOINTS for i in range(3))
