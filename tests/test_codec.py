"""Codec: hand-computed cases for crops, targets, flip and decoding."""

from __future__ import annotations

import numpy as np
import pytest

from greitpose import codec
from greitpose.keypoints import COCO


def test_box_is_widened_to_aspect_and_padded() -> None:
    center, scale = codec.boxes_to_center_scale(np.array([[10, 20, 40, 140]]), 0.75)
    assert np.allclose(center, [[25, 80]])
    assert np.allclose(scale, [[90 * 1.25, 120 * 1.25]])  # too narrow: width grows to 0.75 * 120
    _, scale = codec.boxes_to_center_scale(np.array([[0, 0, 300, 100]]), 0.75)
    assert np.allclose(scale, [[300 * 1.25, 400 * 1.25]])  # too wide: height grows to 300 / 0.75


def test_affine_maps_box_center_to_crop_center_and_inverts() -> None:
    center, scale = np.array([[100.0, 50.0]]), np.array([[96.0, 128.0]])
    for rot in (0.0, 30.0, -90.0):
        m = codec.crop_affine(center, scale, (192, 256), rot)
        inv = codec.crop_affine(center, scale, (192, 256), rot, inverse=True)
        assert np.allclose(codec.apply_affine(center[:, None], m), [[[96, 128]]])
        pts = np.random.default_rng(0).uniform(0, 200, (1, 5, 2))
        assert np.allclose(codec.apply_affine(codec.apply_affine(pts, m), inv), pts)
    # 90 degrees: a point above the center (image y smaller) ends up on the crop's left/right
    m = codec.crop_affine(center, scale, (192, 256), 90.0)
    q = codec.apply_affine(np.array([[[100.0, 40.0]]]), m)
    assert np.allclose(q[0, 0, 1], 128) and not np.isclose(q[0, 0, 0], 96)


@pytest.mark.parametrize("x, y", [(10.0, 20.0), (10.4, 20.6), (23.5, 7.25), (0.2, 63.0), (47.0, 31.9)])
def test_encode_then_decode_is_within_0_3_px(x: float, y: float) -> None:
    hm, w = codec.generate_heatmaps(np.array([[[x, y]]]), np.ones((1, 1)), (48, 64), sigma=2)
    assert hm.shape == (1, 1, 64, 48) and w[0, 0] == 1
    coords, scores = codec.decode_heatmaps(hm)
    assert np.abs(coords[0, 0] - [x, y]).max() <= 0.3
    assert scores[0, 0] > 0.9


@pytest.mark.parametrize("x, y", [(10.0, 20.0), (10.4, 20.6), (23.5, 7.25), (30.8, 50.1)])
def test_dark_recovers_a_gaussian_peak_to_a_twentieth_of_a_pixel(x: float, y: float) -> None:
    """DARK's Taylor step lands on the peak itself, where the quarter offset is up to 0.25 px off."""
    hm, _ = codec.generate_heatmaps(np.array([[[x, y]]]), np.ones((1, 1)), (48, 64), sigma=2)
    coords, scores = codec.decode_heatmaps(hm, "dark")
    assert np.abs(coords[0, 0] - [x, y]).max() <= 0.05
    assert scores[0, 0] == hm.max()


def test_dark_leaves_border_maxima_and_flat_maps_at_the_argmax() -> None:
    hm = np.zeros((1, 2, 16, 12), np.float32)
    hm[0, 0, 1, 5], hm[0, 0, 1, 6] = 1.0, 0.8  # maximum one pixel from the top edge
    coords, _ = codec.decode_heatmaps(hm, "dark")
    assert np.allclose(coords[0], [[5.0, 1.0], [0.0, 0.0]])  # a flat map: index 0, no offset


def test_unknown_decoder_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown heatmap decoder"):
        codec.decode_heatmaps(np.zeros((1, 1, 4, 4), np.float32), "argmax")


def test_invisible_or_far_away_keypoints_get_zero_weight() -> None:
    kpts = np.array([[[10.0, 10.0], [10.0, 10.0], [-20.0, 5.0]]])
    hm, w = codec.generate_heatmaps(kpts, np.array([[2, 0, 1]]), (48, 64))
    assert w.tolist() == [[1, 0, 0]]
    assert hm[0, 1].max() == 0 and hm[0, 2].max() == 0


def test_quarter_offset_moves_toward_larger_neighbour() -> None:
    hm = np.zeros((1, 2, 5, 5), np.float32)
    hm[0, 0, 2, 2], hm[0, 0, 2, 3], hm[0, 0, 2, 1] = 1.0, 0.5, 0.2  # right neighbour larger
    hm[0, 0, 1, 2], hm[0, 0, 3, 2] = 0.7, 0.1  # upper neighbour larger
    hm[0, 1, 2, 2], hm[0, 1, 2, 1] = 1.0, 0.3  # left neighbour larger, y neighbours equal
    coords, scores = codec.decode_heatmaps(hm)
    assert np.allclose(coords[0, 0], [2.25, 1.75])
    assert np.allclose(coords[0, 1], [1.75, 2.0])
    assert np.allclose(scores[0], [1.0, 1.0])


def test_no_offset_on_the_border() -> None:
    hm = np.zeros((1, 1, 4, 4), np.float32)
    hm[0, 0, 0, 3], hm[0, 0, 0, 2], hm[0, 0, 1, 3] = 1.0, 0.9, 0.9
    coords, _ = codec.decode_heatmaps(hm)
    assert np.allclose(coords[0, 0], [3.0, 0.0])


def test_flip_of_a_flip_is_identity() -> None:
    hm = np.random.default_rng(1).random((2, 17, 8, 6)).astype(np.float32)
    index = COCO.flip_index()
    twice = codec.flip_heatmaps(codec.flip_heatmaps(hm, index, shift=False), index, shift=False)
    assert np.array_equal(twice, hm)


def test_flip_swaps_left_right_and_shifts_one_pixel() -> None:
    hm = np.zeros((1, 17, 4, 6), np.float32)
    hm[0, 5, 1, 1] = 1.0  # left shoulder at x=1
    flipped = codec.flip_heatmaps(hm, COCO.flip_index())
    # mirrored x = 6-1-1 = 4, shifted one pixel right = 5, now in the right shoulder's channel
    assert flipped[0, 6, 1, 5] == 1.0 and flipped[0, 5].max() == 0


def test_flip_test_realigns_a_mirrored_crop() -> None:
    """A keypoint seen in a mirrored crop decodes, after flip-back, within a pixel of the plain one."""
    x_in, y_in, in_w = 101.0, 80.0, 192
    plain = np.array([[[x_in / 4, y_in / 4]]])
    mirrored = np.array([[[(in_w - 1 - x_in) / 4, y_in / 4]]])
    hm_plain, _ = codec.generate_heatmaps(plain, np.ones((1, 1)), (48, 64))
    hm_mirror, _ = codec.generate_heatmaps(mirrored, np.ones((1, 1)), (48, 64))
    back = codec.flip_heatmaps(hm_mirror, [0])
    c_plain, _ = codec.decode_heatmaps(hm_plain)
    c_back, _ = codec.decode_heatmaps(back)
    assert abs(c_plain[0, 0, 0] - c_back[0, 0, 0]) <= 0.5


@pytest.mark.parametrize("rotation", [0.0, 25.0, -60.0])
@pytest.mark.parametrize("box_h", [64.0, 240.0])
def test_crop_heatmap_image_round_trip(rotation: float, box_h: float) -> None:
    """Image -> heatmap -> image is exact; through encode/decode it stays within 0.3 heatmap px,
    which is under 1 image px when a heatmap pixel covers one image pixel (box_h = 64)."""
    rng = np.random.default_rng(2)
    box = np.array([[100.0, 50.0, 100.0 + box_h * 0.75, 50.0 + box_h]])
    center, scale = codec.boxes_to_center_scale(box, 192 / 256, padding=1.0)
    px_per_hm = scale[0, 1] / 64
    pts = center[:, None] + rng.uniform(-0.3, 0.3, (1, 17, 2)) * scale[:, None]
    hm_coords = codec.image_to_heatmap(pts, center, scale, (192, 256), (48, 64), rotation)
    exact = codec.heatmap_to_image(hm_coords, center, scale, (192, 256), (48, 64), rotation)
    assert np.allclose(exact, pts)
    heatmaps, weights = codec.generate_heatmaps(hm_coords, np.ones((1, 17)), (48, 64))
    assert weights.all()
    decoded, _ = codec.decode_heatmaps(heatmaps)
    back = codec.heatmap_to_image(decoded, center, scale, (192, 256), (48, 64), rotation)
    err = np.linalg.norm(back - pts, axis=-1).max()
    assert err <= 0.3 * np.sqrt(2) * px_per_hm
    if box_h == 64.0:
        assert err < 1.0


def test_warped_crop_agrees_with_affine() -> None:
    """A bright dot in the image lands where the affine says in the cv2-warped crop."""
    import cv2

    img = np.zeros((400, 300), np.float32)
    img[150, 120] = 1.0
    img = cv2.GaussianBlur(img, (0, 0), 3)
    center, scale = codec.boxes_to_center_scale(np.array([[60, 50, 240, 350]]), 0.75)
    m = codec.crop_affine(center, scale, (192, 256), 20.0)
    crop = cv2.warpAffine(img, m[0], (192, 256), flags=cv2.INTER_LINEAR)
    y, x = np.unravel_index(crop.argmax(), crop.shape)
    expected = codec.apply_affine(np.array([[[120.0, 150.0]]]), m)[0, 0]
    assert np.abs(np.array([x, y]) - expected).max() <= 1.0
