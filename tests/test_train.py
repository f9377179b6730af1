"""train: overfitting, distributed runs, exact resumption, config files, broken data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

from greitpose import checkpoint, codec
from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO
from greitpose.train import distributed
from greitpose.train.config import TrainConfig, resolve
from greitpose.train.loop import Trainer

from conftest import REPO, run_cli


def make_dataset(root: Path, n: int = 4, seed: int = 0) -> Path:
    """n 128x96 images, one person each: 17 coloured dots (learnable keypoints), COCO format."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    colors = [tuple(int(c) for c in rng.integers(60, 255, 3)) for _ in range(17)]
    images, anns = [], []
    for i in range(n):
        img = np.full((128, 96, 3), 20, np.uint8)
        pts = np.stack([rng.uniform(28, 68, 17), rng.uniform(24, 104, 17)], 1)
        for k, (x, y) in enumerate(pts):
            cv2.circle(img, (int(round(x)), int(round(y))), 2, colors[k], -1)
        cv2.imwrite(str(root / f"{i}.png"), img)
        images.append({"id": i, "file_name": f"{i}.png", "width": 96, "height": 128})
        (x1, y1), (x2, y2) = pts.min(0) - 4, pts.max(0) + 4
        anns.append({"id": i + 1, "image_id": i, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1],
                     "area": float((x2 - x1) * (y2 - y1)), "iscrowd": 0, "num_keypoints": 17,
                     "keypoints": np.concatenate([pts, np.full((17, 1), 2)], 1).reshape(-1).tolist()})
    data = {"images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.names), "skeleton": []}]}
    (root / "ann.json").write_text(json.dumps(data))
    return root / "ann.json"


def _losses(run: Path) -> dict[int, float]:
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


@pytest.mark.slow
def test_overfits_a_handful_of_people(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data")
    cfg = resolve(None, dict(train_ann=str(ann), input_size="128x96", batch_size=4, max_steps=150,
                             epochs=1000, warmup_steps=0, augment=False, workers=0, log_every=1,
                             out=str(tmp_path / "run"), device="cpu"))
    Trainer(cfg).run()
    losses = _losses(tmp_path / "run")
    first, last = np.mean([losses[s] for s in (1, 2, 3)]), np.mean([losses[s] for s in (148, 149, 150)])
    assert first / last >= 5
    model = checkpoint.load(tmp_path / "run" / "last.pt")
    from greitpose.backends import TorchBackend
    from greitpose.pose import TopDown
    from greitpose.results import Detections

    data = json.loads(ann.read_text())
    topdown = TopDown(TorchBackend(model, "cpu"), flip=False)
    errors = []
    for im, a in zip(data["images"], data["annotations"]):
        x, y, w, h = a["bbox"]
        image = cv2.imread(str(ann.parent / im["file_name"]))
        poses = topdown([image], [Detections(np.array([[x, y, x + w, y + h]], np.float32), np.ones(1))])[0]
        truth = np.asarray(a["keypoints"]).reshape(-1, 3)[:, :2]
        errors.append(np.linalg.norm(poses.keypoints[0] - truth, axis=1))
    assert np.median(errors) <= 3.0, np.median(errors)


def test_resume_continues_exactly(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data", n=8)
    base = dict(train_ann=str(ann), input_size="64x64", batch_size=4, epochs=10, warmup_steps=2, workers=0,
                log_every=1, device="cpu", save_every_steps=3)
    Trainer(resolve(None, {**base, "max_steps": 5, "out": str(tmp_path / "full")})).run()
    Trainer(resolve(None, {**base, "max_steps": 4, "out": str(tmp_path / "part"),
                           "resume": str(tmp_path / "full" / "state-step3.pt")})).run()
    full, part = _losses(tmp_path / "full"), _losses(tmp_path / "part")
    assert set(part) == {4}  # resumed at step 3 (mid-epoch: 2 steps per epoch)
    assert part[4] == pytest.approx(full[4], rel=1e-6, abs=1e-9)


def test_short_epochs_do_not_rewrite_the_state_every_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greitpose.train import loop

    ann = make_dataset(tmp_path / "data", n=4)
    writes: list[str] = []
    save = Trainer._save_state
    monkeypatch.setattr(Trainer, "_save_state", lambda self, path: (writes.append(path.name), save(self, path)))
    base = dict(train_ann=str(ann), input_size="64x64", batch_size=4, epochs=10, max_steps=3, workers=0,
                device="cpu")  # one step per epoch
    for interval, expected in ((1e9, ["state.pt"]), (0.0, ["state.pt"] * 4)):
        monkeypatch.setattr(loop, "EPOCH_SAVE_INTERVAL_S", interval)
        writes.clear()
        Trainer(resolve(None, {**base, "out": str(tmp_path / f"run{interval}")})).run()
        assert writes == expected  # each epoch end when due, and always the run's end
        state = torch.load(tmp_path / f"run{interval}" / "state.pt", weights_only=False)
        assert state["state"]["step"] == 3 and (tmp_path / f"run{interval}" / "last.pt").is_file()


def _end_record(run: Path) -> dict:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][-1]


@pytest.mark.slow
def test_two_process_runs_keep_ranks_identical_under_torchrun_and_procs(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data", n=8)
    args = ["train", "--train-ann", str(ann), "--input-size", "64x64", "--batch-size", "2", "--max-steps", "3",
            "--workers", "1", "--device", "cpu", "--log-every", "1"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "greitpose", *args, "--out", str(tmp_path / "ddp")]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (result.stdout + result.stderr).count("done:") == 1  # rank 0 speaks for the run
    end = _end_record(tmp_path / "ddp")
    a, b = end["rank_fingerprints"]
    assert end["step"] == 3 and a == b
    # --procs starts the same two ranks itself: the same run, to the last bit
    result = run_cli(*args, "--procs", "2", "--out", str(tmp_path / "procs"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _end_record(tmp_path / "procs")["rank_fingerprints"] == end["rank_fingerprints"]
    # a user error inside the ranks reaches the terminal as one line
    (tmp_path / "data" / "2.png").unlink()
    result = run_cli(*args, "--procs", "2", "--out", str(tmp_path / "broken"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [f"error: image 2.png (id 2) listed in ann.json is missing from {tmp_path / 'data'}"]


def test_config_file_is_recorded_and_flags_override(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"train_ann": str(ann), "input_size": "64x64", "batch_size": 2,
                                                     "lr": 0.001, "workers": 0, "device": "cpu"}))
    result = run_cli("train", "--config", str(tmp_path / "c.yaml"), "--max-steps", "1", "--lr", "0.0005",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    saved = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert saved["lr"] == 0.0005 and saved["batch_size"] == 2 and saved["epochs"] == 210
    assert checkpoint.load(tmp_path / "run" / "last.pt").config.input_size == (64, 64)
    (tmp_path / "bad.toml").write_text('learning_rate = 0.1\n')
    result = run_cli("train", "--config", str(tmp_path / "bad.toml"))
    assert result.returncode != 0 and "unknown settings learning_rate" in result.stderr


def test_default_loader_workers_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(2)))
    assert [TrainConfig(procs=p).workers for p in (1, 2, 4)] == [2, 1, 1]
    assert TrainConfig(procs=2, workers=0).workers == 0  # a given value stands
    assert resolve(None, {"train_ann": "a.json", "workers": None, "procs": 2}).workers == 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(64)))
    assert TrainConfig().workers == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "16")  # torchrun's ranks on this machine
    assert TrainConfig().workers == 4


def test_more_training_processes_than_gpus_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda _i: pytest.fail("picked a GPU that is not there"))
    for name, value in {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    with pytest.raises(GreitposeError, match=r"^2 training processes on this machine, but it has 1 GPU: .*--procs 1"):
        distributed.setup(torch.device("cuda"))


def test_broken_data_is_named_before_training(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data")
    (tmp_path / "data" / "2.png").unlink()
    result = run_cli("train", "--train-ann", str(ann), "--out", str(tmp_path / "run"), "--device", "cpu")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "image 2.png (id 2)" in result.stderr and "missing" in result.stderr
    assert not (tmp_path / "run" / "last.pt").exists()
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(GreitposeError, match="bad.json is not valid JSON"):
        Trainer(resolve(None, dict(train_ann=str(tmp_path / "bad.json"), device="cpu")))


def test_augmented_targets_follow_the_keypoints(tmp_path: Path) -> None:
    """Flip, rotation and scale move image and targets together: the decoded target maps back
    onto the labelled keypoint (with flip, onto its left/right partner's label)."""
    from greitpose.train.data import Augment, TopDownDataset, coco_samples

    ann = make_dataset(tmp_path / "data", n=2)
    samples, kset = coco_samples(ann, ann.parent, (128, 96))
    ds = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1), augment=Augment(half_body_prob=0.0))
    for epoch in range(4):
        ds.set_epoch(epoch)
        crop, target, weight = ds[0]
        assert crop.shape == (3, 128, 96) and target.shape == (17, 32, 24)
        coords, _ = codec.decode_heatmaps(target.numpy()[None])
        visible = weight.numpy() > 0
        assert visible.sum() >= 10
        # the crop's colour at each decoded target is the keypoint's dot colour, not background
        pix = crop.numpy().transpose(1, 2, 0)
        xy = np.clip(np.round(coords[0] * 4).astype(int), 0, [95, 127])
        assert (pix[xy[visible, 1], xy[visible, 0]].max(axis=1) > 40).mean() > 0.7


def test_keypoint_weights_scale_the_loss_and_move_with_their_keypoint(tmp_path: Path) -> None:
    """An annotation's "keypoint_weights" are loss weights: an error on a keypoint at 0.25 costs
    a quarter of the same error on a plain one, and a mirrored crop takes the weight with the
    keypoint to its partner's channel. Broken weights are named before training."""
    from greitpose.train.data import Augment, TopDownDataset, coco_samples
    from greitpose.train.losses import per_sample_mse

    ann = make_dataset(tmp_path / "data", n=1)
    data = json.loads(ann.read_text())
    data["annotations"][0]["keypoint_weights"] = [1.0] * 5 + [0.25] + [1.0] * 11  # the left shoulder
    ann.write_text(json.dumps(data))
    samples, kset = coco_samples(ann, ann.parent, (128, 96))
    _, target, weight = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1))[0]
    assert target[5].max() > 0.9 and target[6].max() > 0.9  # a full target, a lower weight
    losses = []
    for k in (5, 6):
        pred = target.clone()[None]
        pred[0, k] += 0.1
        losses.append(float(per_sample_mse(pred, target[None], weight[None])))
    assert losses[0] == pytest.approx(0.25 * losses[1], rel=1e-5)
    flipping = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1),
                              augment=Augment(rotation=0.0, scale=0.0, half_body_prob=0.0))
    seen = set()
    for epoch in range(8):
        flipping.set_epoch(epoch)
        w = flipping[0][2].numpy()
        assert sorted(w[[5, 6]].tolist()) == pytest.approx([0.5, 1.0])
        seen.add(int(np.argmin(w)))
    assert seen == {5, 6}
    data["annotations"][0]["keypoint_weights"] = [1.0] * 16
    ann.write_text(json.dumps(data))
    with pytest.raises(GreitposeError, match="'keypoint_weights' that are not 17 numbers from 0 to 1"):
        coco_samples(ann, ann.parent, (128, 96))


def test_warm_start_loads_weights_of_the_same_model_at_any_size(tmp_path: Path) -> None:
    from greitpose.models import get_config
    from greitpose.train.loop import warm_start

    source = checkpoint.new_model(get_config("greit-hrnet-18", 17, (64, 64)))
    for p in source.network.parameters():
        p.detach().uniform_(-1, 1)
    path = checkpoint.save(source, tmp_path / "low.pt")
    target = checkpoint.new_model(get_config("greit-hrnet-18", 17, (128, 96)))
    warm_start(target, path)
    for a, b in zip(source.network.state_dict().values(), target.network.state_dict().values()):
        assert (a == b).all()
    other = checkpoint.new_model(get_config("lite-hrnet-18", 17, (64, 64)))
    with pytest.raises(GreitposeError, match="holds 'greit-hrnet-18'"):
        warm_start(other, path)
    ann = make_dataset(tmp_path / "data")
    result = run_cli("train", "--train-ann", str(ann), "--input-size", "64x64", "--batch-size", "2",
                     "--max-steps", "1", "--workers", "0", "--device", "cpu", "--out", str(tmp_path / "run"),
                     "--init", str(tmp_path / "missing.pt"))
    assert result.returncode == 1 and "missing.pt does not exist" in result.stderr


def test_a_run_never_writes_over_another(tmp_path: Path) -> None:
    ann = make_dataset(tmp_path / "data")
    run = tmp_path / "run"
    args = ["train", "--train-ann", str(ann), "--input-size", "64x64", "--batch-size", "2", "--epochs", "2",
            "--workers", "0", "--device", "cpu", "--save-every-steps", "1", "--out", str(run)]
    first = run_cli(*args, "--max-steps", "1")
    assert first.returncode == 0, first.stderr
    weights = (run / "last.pt").read_bytes()
    again = run_cli(*args, "--max-steps", "1")
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert f"run folder {run} already holds a run (config.yaml" in again.stderr, again.stderr
    assert (run / "last.pt").read_bytes() == weights
    resumed = run_cli(*args, "--max-steps", "2", "--resume", str(run / "state-step1.pt"))
    assert resumed.returncode == 0, resumed.stderr
    assert checkpoint.load(run / "last.pt").extra["step"] == 2


def test_source_weights_steer_sampling(tmp_path: Path) -> None:
    from greitpose.train.config import parse_source_weights
    from greitpose.train.data import Sample
    from greitpose.train.distributed import World
    from greitpose.train.loop import epoch_order, sample_weights

    assert parse_source_weights("a=1, b-c=2.5") == {"a": 1.0, "b-c": 2.5}
    for bad in ("a", "a=-1", "=2", "a=x"):
        with pytest.raises(GreitposeError, match="NAME=WEIGHT"):
            parse_source_weights(bad)
    samples = [Sample(Path("x"), np.zeros((17, 2)), np.ones(17), np.zeros(2), np.ones(2), src)
               for src in ["a"] * 50 + ["b"] * 50]
    weights = sample_weights(samples, {"a": 0.0, "b": 3.0})
    order = epoch_order(100, 0, 0, World(0, 1), 10, weights)
    assert len(order) == 100 and min(order) >= 50  # source a never drawn
    assert order == epoch_order(100, 0, 0, World(0, 1), 10, weights)  # reproducible
    assert sample_weights(samples, {}) is None
    with pytest.raises(GreitposeError, match="no annotation has: c"):
        sample_weights(samples, {"c": 2.0})


def _assert_same_targets_other_crop(tmp_path: Path, **augment: float) -> None:
    """The same sample with and without the given augmentation: other pixels, the same targets."""
    from greitpose.train.data import Augment, TopDownDataset, coco_samples

    ann = make_dataset(tmp_path / "data", n=3)
    samples, kset = coco_samples(ann, ann.parent, (128, 96))
    plain = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1), augment=Augment(half_body_prob=0.0))
    changed = TopDownDataset(samples, kset, (128, 96), (0, 0, 0), (1, 1, 1),
                             augment=Augment(half_body_prob=0.0, **augment))
    a, b = plain[0], changed[0]
    assert (a[1] == b[1]).all() and (a[2] == b[2]).all() and not (a[0] == b[0]).all()


def test_occlusion_covers_one_block_and_keeps_targets(tmp_path: Path) -> None:
    from greitpose.train.data import occlude

    crop = np.zeros((3, 64, 48), np.float32)
    occlude(crop, np.random.default_rng(0))
    ys, xs = np.nonzero(np.abs(crop).sum(0))
    covered = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert 0.015 * 64 * 48 <= covered <= 0.25 * 64 * 48 and covered == len(ys)  # one solid block
    _assert_same_targets_other_crop(tmp_path, occlusion=1.0)


def test_photometric_jitter_keeps_pixel_range_and_targets(tmp_path: Path) -> None:
    from greitpose.checkpoint import IMAGENET_MEAN, IMAGENET_STD
    from greitpose.train.photometric import jitter

    rng = np.random.default_rng(0)
    mean, std = np.array(IMAGENET_MEAN)[:, None, None], np.array(IMAGENET_STD)[:, None, None]
    rgb = rng.uniform(0, 255, (3, 64, 48)).astype(np.float32)
    changes = []
    for _ in range(20):
        crop = ((rgb - mean) / std).astype(np.float32)
        jitter(crop, IMAGENET_MEAN, IMAGENET_STD, rng)
        back = crop * std + mean
        assert crop.dtype == np.float32 and -1e-3 <= back.min() and back.max() <= 255 + 1e-3  # still a picture
        changes.append(np.abs(back - rgb).mean())
    assert min(changes) > 0.5  # every call changes the picture
    _assert_same_targets_other_crop(tmp_path, photometric=1.0)


def test_pasted_distractor_keeps_targets_and_stays_inside_its_ellipse(tmp_path: Path) -> None:
    from greitpose.train import distractors

    mask = distractors.soft_ellipse(40, 30)
    assert mask[20, 15] == 1.0 and mask[0, 0] == 0.0 and mask[-1, -1] == 0.0 and 0 <= mask.min() <= mask.max() <= 1
    rng = np.random.default_rng(0)
    person = np.full((3, 40, 30), 5.0, np.float32)
    crop = np.zeros((3, 64, 48), np.float32)
    distractors.paste(crop, person, np.zeros((40, 30), np.float32), rng)
    assert not crop.any()  # nothing of what lay outside the person's photo is pasted
    distractors.paste(crop, person, np.ones((40, 30), np.float32), rng)
    ys, xs = np.nonzero(crop[0])
    assert len(ys) and crop.max() <= 5.0
    assert ys.max() - ys.min() < 40 and xs.max() - xs.min() < 30  # within the pasted box
    assert abs(xs.mean() - 24) > 6  # beside the crop's centre (24), not on it
    _assert_same_targets_other_crop(tmp_path, paste=1.0)


def test_batchnorm_recalibration_takes_the_crops_statistics_and_keeps_the_weights(tmp_path: Path) -> None:
    from greitpose.models import get_config
    from greitpose.train.batchnorm import recalibrate_batchnorm
    from greitpose.train.data import configured_dataset, configured_samples

    ann = make_dataset(tmp_path / "data")
    cfg = resolve(None, dict(train_ann=str(ann), batch_size=4, augment=False, workers=0, device="cpu"))
    model = checkpoint.new_model(get_config("greit-hrnet-18", 17, (64, 64)))
    norms = [m for m in model.network.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in norms:
        bn.running_mean.fill_(100.0)  # statistics no input has, as an average of two runs may carry
    weights = {k: v.clone() for k, v in model.network.state_dict().items() if "running" not in k}
    seen: dict[torch.nn.Module, torch.Tensor] = {}
    hooks = [bn.register_forward_hook(lambda m, x, _y: seen.__setitem__(m, x[0].mean((0, 2, 3)))) for bn in norms]
    samples, keypoints = configured_samples(cfg, (64, 64))
    crops = torch.stack([configured_dataset(cfg, samples, keypoints, (64, 64), model.mean, model.std)[i][0]
                         for i in range(4)])
    with torch.no_grad():
        model.network.train()(crops)  # batch statistics of the four crops, layer by layer
    for h in hooks:
        h.remove()
    expected = {bn: seen[bn].clone() for bn in norms}

    assert recalibrate_batchnorm(model, cfg, samples=4) == 4
    assert not model.network.training
    for bn in norms:
        assert torch.allclose(bn.running_mean, expected[bn], atol=1e-4)
    state = model.network.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items() if "num_batches" not in k)
