"""The training loop: Adam with warm-up and cosine/step decay, MSE with target weights, AMP,
EMA, clipping, periodic COCO validation, best/last checkpoints and exact resumption."""

from __future__ import annotations

import copy
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from rich.console import Console
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from greitpose import checkpoint
from greitpose.backends import TorchBackend, resolve_device
from greitpose.checkpoint import PoseModel
from greitpose.errors import GreitposeError
from greitpose.models import get_config, parse_input_size
from greitpose.progress import progress_bar
from greitpose.train import distributed
from greitpose.train.config import TrainConfig, parse_source_weights, save_config
from greitpose.train.data import Sample, configured_dataset, configured_samples
from greitpose.train.joint_weights import joint_loss_scale
from greitpose.train.losses import weighted_mse
from greitpose.train.side_free import free_side_samples, side_free_mse
from greitpose.train.time_budget import TimeBudget
from greitpose.writers import ensure_writable

STATE_FILE = "state.pt"
#: epoch ends rewrite last.pt and state.pt at most this often: a state takes about 0.3 s to write,
#: which dominates runs whose epochs last a step or two (small sets); the run's end and
#: --save-every-steps always write
EPOCH_SAVE_INTERVAL_S = 60.0


def lr_factor(step: int, total: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """Multiplier of the base lr at `step`: linear warm-up, then cosine to min_lr or x0.1 steps."""
    if config.warmup_steps and step < config.warmup_steps:
        return 0.001 + (1 - 0.001) * step / config.warmup_steps
    floor = config.min_lr / config.lr
    if config.schedule == "cosine":
        progress = min(1.0, (step - config.warmup_steps) / max(1, total - config.warmup_steps))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    epoch = step // max(1, steps_per_epoch)
    drops = sum(epoch >= int(m) for m in config.lr_steps.split(",") if m.strip())
    return max(floor, 0.1**drops)


def steps_per_epoch(n: int, world: distributed.World, batch: int) -> int:
    """Whole batches each rank gets from `n` samples per epoch."""
    steps = (n // world.size) // batch
    if steps == 0:
        raise GreitposeError(f"{n} training samples are too few for batch {batch} x {world.size} processes")
    return steps


def epoch_order(n: int, seed: int, epoch: int, world: distributed.World, batch: int,
                weights: torch.Tensor | None = None) -> list[int]:
    """This rank's sample indices for `epoch`: one shuffle shared by all ranks, dealt round-robin,
    trimmed to whole batches on every rank. With per-sample `weights`, an epoch is n draws with
    replacement in proportion to them instead."""
    g = torch.Generator().manual_seed(seed * 100003 + epoch)
    if weights is None:
        order = torch.randperm(n, generator=g).tolist()
    else:
        order = torch.multinomial(weights, n, replacement=True, generator=g).tolist()
    return order[world.rank::world.size][: steps_per_epoch(n, world, batch) * batch]


def sample_weights(samples: list[Sample], by_source: dict[str, float]) -> torch.Tensor | None:
    """Per-sample sampling weights from per-source ones (unnamed sources weigh 1); None if none set."""
    if not by_source:
        return None
    unknown = sorted(set(by_source) - {s.source for s in samples})
    if unknown:
        raise GreitposeError(f"source weights name sources no annotation has: {', '.join(unknown)}")
    weights = torch.tensor([by_source.get(s.source, 1.0) for s in samples], dtype=torch.float64)
    if not weights.sum() > 0:
        raise GreitposeError("source weights leave no sample to train on")
    return weights


def warm_start(model: PoseModel, path: Path) -> int:
    """Load the weights of `path` into `model`: the same architecture and keypoints; the input
    size may differ (the network is fully convolutional), so a low-resolution run can seed a
    full-resolution one. Returns the samples the file had already been trained on."""
    source = checkpoint.load(path)
    if source.config.name != model.config.name or source.keypoints.names != model.keypoints.names:
        raise GreitposeError(f"{path} holds '{source.config.name}' with {source.keypoints.num_keypoints} "
                             f"keypoints; this run trains '{model.config.name}' with "
                             f"{model.keypoints.num_keypoints}")
    model.network.load_state_dict(source.network.state_dict())
    return int(source.extra.get("samples_seen", 0))


class EpochKeys:
    """The loader's sampler: the current epoch's sample keys (epoch * samples + index, see
    `TopDownDataset.__getitem__`), replaced at each epoch."""

    def __init__(self) -> None:
        self.order: list[int] = []

    def __iter__(self) -> Iterator[int]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.order)


@dataclass
class State:
    epoch: int = 0
    step: int = 0  # optimizer steps done
    best_ap: float = -1.0


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Trainer:
    """Runs one training job as configured; rank 0 writes the run folder."""

    def __init__(self, config: TrainConfig, console: Console | None = None) -> None:
        self.cfg = config
        self.console = console or Console(stderr=True)
        self.device = resolve_device(config.device)
        self.world = distributed.setup(self.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        size = parse_input_size(config.input_size)
        samples, keypoints = configured_samples(config, size)
        if config.hard_keypoints > keypoints.num_keypoints:
            raise GreitposeError(f"--hard-keypoints {config.hard_keypoints} is more than the "
                                 f"{keypoints.num_keypoints} keypoints of '{keypoints.name}'")
        self.model: PoseModel = checkpoint.new_model(get_config(config.model, keypoints.num_keypoints, size),
                                                     keypoints)
        self.data = configured_dataset(config, samples, keypoints, size, self.model.mean, self.model.std)
        self.sample_weights = sample_weights(samples, parse_source_weights(config.source_weights))
        self.free_sides, perms = free_side_samples(samples, keypoints, config.free_sides)
        self.side_perms = None if perms is None else perms.to(self.device)  # once, not every step
        scale = joint_loss_scale(config.joint_weights, keypoints)
        self.joint_scale = None if scale is None else scale.to(self.device)
        self.steps_per_epoch = steps_per_epoch(len(samples), self.world, config.batch_size)
        self.planned_steps = self.steps_per_epoch * config.epochs
        self.total_steps = self.planned_steps  # the schedule's end; --minutes may bring it forward
        self.budget = TimeBudget(config.minutes) if config.minutes else None
        self.prior_samples = warm_start(self.model, Path(config.init)) if config.init else 0
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # one input size throughout: tuned kernels pay
        net = self.model.network.to(self.device)
        if config.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = DistributedDataParallel(net, device_ids=[self.device.index] if self.device.type == "cuda" else None) \
            if self.world.distributed else net
        self.opt = torch.optim.Adam(self.net.parameters(), lr=config.lr)
        self.sched = torch.optim.lr_scheduler.LambdaLR(
            self.opt, lambda s: lr_factor(s, self.total_steps, config, self.steps_per_epoch))
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.ema = copy.deepcopy(self.model.network).eval() if config.ema else None
        self.state = State()
        self.saved_at = time.monotonic()
        self.out = Path(config.out)
        if self.world.main:
            ensure_writable(self.out, is_dir=True)
            save_config(config, self.out / "config.yaml")
        if config.resume:
            self._load_state(Path(config.resume))

    def _amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.cfg.amp == "off":
            return None
        if self.cfg.amp == "fp16" or (self.cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    # --- checkpoints -----------------------------------------------------------------------
    def _provenance(self) -> dict[str, Any]:
        """What a weights file records of its training: steps, epochs and samples seen in all
        (including the runs it was warm-started from), and where it started."""
        seen = self.state.step * self.cfg.batch_size * self.world.size
        return {"step": self.state.step, "epoch": self.state.epoch, "samples_seen": self.prior_samples + seen,
                "input_size": self.cfg.input_size, "init": self.cfg.init or None}

    def _weights(self) -> PoseModel:
        net = self.ema if self.ema is not None else self.model.network
        return PoseModel(net, self.model.config, self.model.keypoints, self.model.mean, self.model.std)

    def _save_state(self, path: Path) -> None:
        if not self.world.main:
            return
        record = {"model": self.model.network.state_dict(), "optimizer": self.opt.state_dict(),
                  "scheduler": self.sched.state_dict(), "scaler": self.scaler.state_dict(),
                  "ema": self.ema.state_dict() if self.ema is not None else None,
                  "state": self.state.__dict__, "rng": _rng_state(), "config": self.cfg.to_dict()}
        tmp = path.with_name(path.name + ".partial")
        torch.save(record, tmp)
        tmp.replace(path)

    def _load_state(self, path: Path) -> None:
        if not path.is_file():
            raise GreitposeError(f"resume state {path} does not exist")
        try:
            record = torch.load(path, map_location="cpu", weights_only=False)
            self.model.network.load_state_dict(record["model"])
            self.opt.load_state_dict(record["optimizer"])
            self.sched.load_state_dict(record["scheduler"])
            self.scaler.load_state_dict(record["scaler"])
        except (KeyError, RuntimeError, ValueError, EOFError) as err:
            raise GreitposeError(f"{path} is not a resumable state of this run ({type(err).__name__})") from None
        if self.ema is not None and record.get("ema"):
            self.ema.load_state_dict(record["ema"])
        self.state = State(**record["state"])
        _set_rng_state(record["rng"])

    # --- validation ------------------------------------------------------------------------
    def validate(self) -> dict[str, float] | None:
        if not self.cfg.val_ann or not self.world.main:
            return None
        from greitpose.evaluation.runner import CocoOptions, evaluate_coco

        backend = TorchBackend(copy.deepcopy(self._weights()), str(self.device), half=False)
        options = CocoOptions(images=Path(self.cfg.val_images) if self.cfg.val_images else None,
                              ann=Path(self.cfg.val_ann),
                              boxes=Path(self.cfg.val_boxes) if self.cfg.val_boxes else None)
        threads = torch.get_num_threads()
        if self.device.type == "cpu":  # the other ranks wait meanwhile: rank 0 may use their cores
            torch.set_num_threads(threads * self.world.size)
        try:
            return evaluate_coco(backend, options, console=self.console).metrics
        finally:
            torch.set_num_threads(threads)

    # --- the loop ----------------------------------------------------------------------------
    def _log(self, record: dict[str, Any]) -> None:
        if self.world.main:
            with (self.out / "metrics.jsonl").open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _step(self, crops: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
              free: torch.Tensor | None) -> float:
        crops = crops.to(self.device, non_blocking=True)
        if self.cfg.channels_last:
            crops = crops.contiguous(memory_format=torch.channels_last)
        target, weight = target.to(self.device, non_blocking=True), weight.to(self.device, non_blocking=True)
        if self.joint_scale is not None:
            weight = weight * self.joint_scale
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            pred = self.net(crops)
            loss = weighted_mse(pred, target, weight, self.cfg.hard_keypoints) if free is None else \
                side_free_mse(pred, target, weight, free.to(self.device), self.side_perms, self.cfg.hard_keypoints)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.clip_grad:
            self.scaler.unscale_(self.opt)
            torch.nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.clip_grad)
        self.scaler.step(self.opt)
        self.scaler.update()
        self.sched.step()
        if self.ema is not None:
            with torch.no_grad():
                for e, p in zip(self.ema.state_dict().values(), self.model.network.state_dict().values()):
                    e.copy_(e * self.cfg.ema + p.detach() * (1 - self.cfg.ema) if e.is_floating_point() else p)
        return float(loss.detach())

    def _limit(self) -> int:
        return min(self.cfg.max_steps or self.total_steps, self.total_steps)

    def _fit_budget(self) -> bool:
        """Fit the schedule's end to the time left (every rank the same); False once it is spent."""
        assert self.budget is not None
        total = self.budget.total_steps(self.state.step, self.planned_steps)
        self.total_steps, expired = distributed.agree(self.world, total, self.budget.expired())
        return not expired

    def run(self) -> Path:
        cfg, world = self.cfg, self.world
        keys = EpochKeys()
        # one loader for the whole run: its workers start once, not at every epoch (the keys
        # carry the epoch), which counts where epochs take seconds (GPUs, small sets)
        loader = DataLoader(self.data, batch_size=cfg.batch_size, sampler=keys, num_workers=cfg.workers,
                            pin_memory=self.device.type == "cuda", drop_last=True,
                            persistent_workers=cfg.workers > 0)
        with progress_bar(self.console, enabled=world.main) as progress:
            task = progress.add_task("train", total=self._limit(), completed=self.state.step, info="")
            while self.state.epoch < cfg.epochs and self.state.step < self._limit():
                epoch = self.state.epoch
                done = self.state.step - epoch * self.steps_per_epoch
                order = epoch_order(len(self.data), cfg.seed, epoch, world, cfg.batch_size,
                                    self.sample_weights)[done * cfg.batch_size:]
                keys.order = [epoch * len(self.data) + i for i in order]
                self.net.train()
                started, seen = time.perf_counter(), 0
                for batch, (crops, target, weight) in enumerate(loader):
                    free = None if self.free_sides is None else \
                        self.free_sides[order[batch * cfg.batch_size:(batch + 1) * cfg.batch_size]]
                    loss = self._step(crops, target, weight, free)
                    self.state.step += 1
                    seen += len(crops) * world.size
                    if self.state.step % cfg.log_every == 0 or self.state.step == self._limit():
                        rate = seen / max(time.perf_counter() - started, 1e-9)
                        self._log({"step": self.state.step, "epoch": epoch, "loss": loss,
                                   "lr": self.opt.param_groups[0]["lr"], "images_per_s": round(rate, 2)})
                        progress.update(task, info=f"epoch {epoch} loss {loss:.3g} {rate:.0f} img/s")
                    if self.budget is not None and not self._fit_budget():
                        self.total_steps = self.state.step
                    progress.update(task, completed=self.state.step, total=self._limit())
                    if cfg.save_every_steps and self.state.step % cfg.save_every_steps == 0:
                        self._save_state(self.out / f"state-step{self.state.step}.pt")
                    if self.state.step >= self._limit():
                        break
                if self.state.step - epoch * self.steps_per_epoch >= self.steps_per_epoch:
                    self.state.epoch += 1
                    self._end_epoch()
        self._finish()
        return self.out

    def _end_epoch(self) -> None:
        epoch = self.state.epoch
        if self.cfg.val_ann and (epoch % self.cfg.val_every == 0 or epoch == self.cfg.epochs):
            metrics = self.validate()
            if metrics is not None:
                self._log({"step": self.state.step, "epoch": epoch - 1, "val": metrics})
                if metrics["AP"] > self.state.best_ap:
                    self.state.best_ap = metrics["AP"]
                    if self.world.main:
                        checkpoint.save(self._weights(), self.out / "best.pt",
                                        extra={**self._provenance(), "val": metrics})
        if time.monotonic() - self.saved_at >= EPOCH_SAVE_INTERVAL_S:
            self._save_last()

    def _save_last(self) -> None:
        if self.world.main:
            checkpoint.save(self._weights(), self.out / "last.pt", extra=self._provenance())
        self._save_state(self.out / STATE_FILE)
        self.saved_at = time.monotonic()

    def _finish(self) -> None:
        self._save_last()
        params = [p.detach().double().cpu() for p in self.model.network.parameters()]
        fingerprint = [float(sum(p.sum() for p in params)), float(sum((p * p).sum() for p in params))]
        self._log({"event": "end", "step": self.state.step,
                   "rank_fingerprints": distributed.gather_floats(self.world, fingerprint)})
        distributed.teardown(self.world)
