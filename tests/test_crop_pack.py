"""pack: persons cut out of their photos train exactly as the photos do; train --minutes."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO
from greitpose.train.crop_pack import PACK_FILE, PackSettings, pack_crops
from greitpose.train.data import Augment, TopDownDataset, coco_samples
from greitpose.train.time_budget import TimeBudget

from conftest import run_cli


def _photos(root: Path) -> Path:
    """Two textured photos: one with two people (one partly outside the photo, one keypoint
    unlabelled, one at a lower training weight), one with a person larger than the packs' size cap."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    people = {0: [(20, 30, 60, 140), (-10, 100, 70, 160)], 1: [(100, 40, 160, 380)]}
    for image_id, boxes in people.items():
        h, w = (240, 320) if image_id == 0 else (480, 400)
        cv2.imwrite(str(root / f"{image_id}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": w, "height": h})
        for x, y, bw, bh in boxes:
            k = np.stack([rng.uniform(x + 5, x + bw - 5, 17), rng.uniform(y + 5, y + bh - 5, 17),
                          np.full(17, 2.0)], 1)
            k[3] = 0
            anns.append({"id": len(anns) + 1, "image_id": image_id, "category_id": 1, "bbox": [x, y, bw, bh],
                         "area": float(bw * bh), "iscrowd": 0, "num_keypoints": 16, "source": f"s{image_id}",
                         "segmentation": [[0, 0, 1, 1, 2, 2]], "keypoints": k.ravel().tolist(),
                         "keypoint_weights": [1.0] * 5 + [0.25] + [1.0] * 11})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.names), "skeleton": []}]}
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json"


def _datasets(ann: Path, pack: Path, augment: Augment | None) -> tuple[TopDownDataset, TopDownDataset]:
    original, kset = coco_samples(ann, ann.parent, (128, 96))
    packed, _ = coco_samples(pack / PACK_FILE, pack, (128, 96))
    assert [s.source for s in packed] == [s.source for s in original]
    return tuple(TopDownDataset(s, kset, (128, 96), (0, 0, 0), (1, 1, 1), augment=augment, seed=3)
                 for s in (original, packed))


def test_a_lossless_pack_gives_the_photos_crops_and_targets(tmp_path: Path) -> None:
    ann = _photos(tmp_path / "photos")
    counts = pack_crops(ann, ann.parent, tmp_path / "pack", PackSettings(max_height=1024, format="png"))
    assert counts["persons"] == 3 and counts["photos"] == 2
    data = json.loads(gzip.decompress((tmp_path / "pack" / PACK_FILE).read_bytes()))
    assert all("segmentation" not in a for a in data["annotations"])  # photo coordinates do not travel
    assert data["annotations"][0]["keypoints"][9:12] == [0, 0, 0]  # unlabelled stays unlabelled
    plain, packed = _datasets(ann, tmp_path / "pack", None)
    for i in range(3):
        (a, ta, wa), (b, tb, wb) = plain[i], packed[i]
        assert np.array_equal(a.numpy(), b.numpy())  # the photo's own pixels, outside it 0 alike
        assert np.abs((ta - tb).numpy()).max() < 1e-3 and np.array_equal(wa.numpy(), wb.numpy())
        assert wb[5] == 0.5  # per-keypoint training weights travel with the pack
    # augmented (rotation, scale, flip, shift): the same draws give the same targets
    plain, packed = _datasets(ann, tmp_path / "pack", Augment(shift=0.1, half_body_prob=0.0))
    for i in range(3):
        assert np.abs((plain[i][1] - packed[i][1]).numpy()).max() < 1e-3


def test_large_people_are_shrunk_and_keep_their_targets(tmp_path: Path) -> None:
    ann = _photos(tmp_path / "photos")
    settings = PackSettings(max_height=64, margin=1.3, quality=70)
    pack_crops(ann, ann.parent, tmp_path / "pack", settings)
    data = json.loads(gzip.decompress((tmp_path / "pack" / PACK_FILE).read_bytes()))
    heights = [im["height"] for im in data["images"]]
    assert max(heights) <= np.ceil(64 * 1.3) and heights[2] == np.ceil(64 * 1.3)  # the 380 px person
    for im in data["images"]:
        assert cv2.imread(str(tmp_path / "pack" / im["file_name"])).shape[:2] == (im["height"], im["width"])
    plain, packed = _datasets(ann, tmp_path / "pack", None)
    for i in range(3):
        assert np.abs((plain[i][1] - packed[i][1]).numpy()).max() < 1e-3


def test_pack_errors_are_one_line_and_leave_no_half_pack(tmp_path: Path) -> None:
    ann = _photos(tmp_path / "photos")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [(["--out", str(tmp_path / "full")], "is not empty"),
             (["--out", str(tmp_path / "a"), "--quality", "0"], "--quality must be 1 to 100"),
             (["--out", str(tmp_path / "a"), "--format", "gif"], "unknown pack format 'gif'"),
             (["--out", str(tmp_path / "a"), "--sources", "nobody"], "no person with a labelled keypoint")]
    for args, message in cases:
        result = run_cli("pack", str(ann), "--images", str(ann.parent), *args)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    (ann.parent / "1.png").write_bytes(b"not an image")
    with pytest.raises(GreitposeError, match="cannot read training image"):
        pack_crops(ann, ann.parent, tmp_path / "b")
    assert not any((tmp_path / "b").rglob("*.*"))  # the first photo's crops went with it
    (tmp_path / "bad.json.gz").write_bytes(b"not gzip")
    with pytest.raises(GreitposeError, match="is not readable gzip"):
        coco_samples(tmp_path / "bad.json.gz", tmp_path, (128, 96))


def test_time_budget_fits_the_schedule_to_the_time_left() -> None:
    now = [0.0]
    budget = TimeBudget(1.0, settle=2, clock=lambda: now[0])
    for step in range(3):  # start-up: the planned schedule holds until the rate is measured
        assert budget.total_steps(step, 1000) == 1000
    now[0] = 10.0  # one step a second since step 2
    assert budget.total_steps(12, 1000) == 12 + 50 and not budget.expired()
    assert budget.total_steps(12, 40) == 40  # never past the epochs asked for
    now[0] = 60.0
    assert budget.total_steps(62, 1000) == 62 and budget.expired()


def test_train_minutes_ends_the_cosine_when_the_time_is_up(tmp_path: Path) -> None:
    from greitpose.train.config import resolve
    from greitpose.train.loop import Trainer

    ann = _photos(tmp_path / "photos")
    with pytest.raises(GreitposeError, match="--minutes must be >= 0"):
        resolve(None, dict(train_ann=str(ann), minutes=-1.0))
    cfg = resolve(None, dict(train_ann=str(ann), input_size="64x64", batch_size=1, epochs=100, warmup_steps=2,
                             minutes=0.5, workers=0, log_every=1, device="cpu", out=str(tmp_path / "run")))
    trainer = Trainer(cfg)
    trainer.budget = TimeBudget(0.5, settle=2, clock=lambda: float(trainer.state.step))  # a step a second
    trainer.run()
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in records if "lr" in r]
    assert steps[-1]["step"] == 30  # 30 s at a step a second, of the 300 steps 100 epochs hold
    assert steps[-1]["lr"] == pytest.approx(cfg.min_lr) and steps[10]["lr"] > 0.5 * cfg.lr
