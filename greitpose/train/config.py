"""Every training setting in one record: defaults < --config file < command-line flags.
The resolved record is saved in the run folder, so a run can be repeated exactly."""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from greitpose import limits
from greitpose.errors import GreitposeError


@dataclass
class TrainConfig:
    # data
    dataset: str = "coco"  # coco (any COCO-format keypoint set) or mpii
    train_ann: str = ""
    train_images: str = ""
    val_ann: str = ""  # COCO-format validation set for periodic AP (optional)
    val_images: str = ""
    val_boxes: str = ""  # detections for validation (COCO results); ground-truth boxes when empty
    flip_pairs: str = ""  # 'a,b;c,d' for own datasets whose names do not say left/right
    source_weights: str = ""  # 'name=w,...': sampling weight per annotation "source" (others 1)
    # model
    model: str = "greit-hrnet-18"
    input_size: str = "256x192"
    init: str = ""  # warm start: weights file (.pt) of the same model, any input size
    # recipe (paper, DESIGN.md section 4)
    epochs: int = 210
    batch_size: int = 32  # per process
    lr: float = 2e-3
    min_lr: float = 2e-5
    schedule: str = "cosine"  # cosine or step (x0.1 at lr_steps)
    lr_steps: str = "170,200"
    warmup_steps: int = 500
    sigma: float = 2.0
    augment: bool = True
    rotation: float = 30.0
    scale: float = 0.25
    flip: bool = True
    half_body: bool = True  # COCO-like sets only
    shift: float = 0.0  # crop centre jitter, fraction of the crop
    occlusion: float = 0.0  # probability of a random occluding block
    paste: float = 0.0  # probability of a distractor person pasted beside the crop's own
    photometric: float = 0.0  # probability of colour and sharpness changes
    truncate: float = 0.0  # probability of the person cut off by the photo's edge (train/truncation.py)
    free_sides: str = ""  # sources whose limbs' left/right labels are not trusted (train/side_free.py)
    hard_keypoints: int = 0  # loss over each sample's N hardest keypoints only (train/losses.py); 0: all
    joint_weights: str = ""  # 'name=w,...': loss weight per keypoint (train/joint_weights.py); others 1
    # machinery
    amp: str = "auto"  # auto (bf16 on CUDA when supported, else fp16), bf16, fp16, off
    channels_last: bool = True  # faster on CPUs here (docs/benchmarks.md)
    clip_grad: float = 0.0  # max gradient norm; 0: off
    ema: float = 0.0  # EMA decay (e.g. 0.9998); 0: off
    workers: int | None = None  # loader processes per training process; None: auto_workers(procs)
    procs: int = 1  # data-parallel training processes on this machine (docs/benchmarks.md)
    device: str = "auto"
    seed: int = 0
    val_every: int = 10  # epochs
    save_every_steps: int = 0  # also keep a resumable state every N steps; 0: only at epoch ends
    max_steps: int = 0  # stop after this many steps in all (quick runs, tests); 0: no limit
    minutes: float = 0.0  # wall-clock budget: the schedule ends when it runs out (time_budget.py); 0: off
    log_every: int = 20  # steps
    out: str = "runs/train"
    resume: str = ""

    def __post_init__(self) -> None:
        if self.workers is None:
            self.workers = auto_workers(self.procs)

    def validate(self) -> None:
        if self.dataset not in ("coco", "mpii"):
            raise GreitposeError(f"unknown dataset '{self.dataset}' (coco or mpii)")
        if not self.train_ann:
            raise GreitposeError("training needs --train-ann (and --train-images)")
        if self.schedule not in ("cosine", "step"):
            raise GreitposeError(f"unknown schedule '{self.schedule}' (cosine or step)")
        if self.amp not in ("auto", "bf16", "fp16", "off"):
            raise GreitposeError(f"unknown amp mode '{self.amp}' (auto, bf16, fp16, off)")
        limits.check(**{name: getattr(self, name) for name in (
            "epochs", "batch_size", "lr", "min_lr", "warmup_steps", "sigma", "rotation", "scale", "clip_grad",
            "ema", "workers", "procs", "val_every", "save_every_steps", "max_steps", "minutes", "log_every", "shift",
            "occlusion", "paste", "photometric", "truncate", "hard_keypoints")})
        parse_source_weights(self.source_weights)
        parse_source_weights(self.joint_weights, "joint weight")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def auto_workers(procs: int) -> int:
    """Loader processes per training process: this machine's cores shared among the training
    processes on it (`--procs`, or torchrun's local ranks), 1 to 8. More than that only makes the
    loaders and the network fight for the cores (docs/training.md)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    local = max(1, procs, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    return max(1, min(8, cores // local))


def parse_source_weights(text: str, what: str = "source weight") -> dict[str, float]:
    """'lspet=1,har=3' -> {'lspet': 1.0, 'har': 3.0}; weights must be >= 0."""
    weights: dict[str, float] = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, sep, value = item.rpartition("=")
        try:
            weight = float(value)
        except ValueError:
            weight = -1.0
        if not sep or not name or weight < 0:
            raise GreitposeError(f"{what} '{item}' is not NAME=WEIGHT with a weight >= 0")
        weights[name.strip()] = weight
    return weights


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a .yaml/.yml/.toml/.json file; unknown keys are an error naming them."""
    if not path.is_file():
        raise GreitposeError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except (tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise GreitposeError(f"{path} is not valid {path.suffix[1:] or 'yaml'}: {err}") from None
    if not isinstance(data, dict):
        raise GreitposeError(f"{path} must hold a mapping of settings")
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise GreitposeError(f"{path}: unknown settings {', '.join(unknown)}")
    return data


def resolve(file: Path | None, overrides: dict[str, Any]) -> TrainConfig:
    """Defaults, then the file's settings, then the flags the user gave (None = not given)."""
    values = read_config_file(file) if file else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    types = {f.name: f.type for f in fields(TrainConfig)}
    for key, value in values.items():
        if types[key] in ("int", "float", "int | None") and isinstance(value, str):
            raise GreitposeError(f"setting {key} must be a number, got '{value}'")
    config = TrainConfig(**values)
    config.validate()
    return config


def save_config(config: TrainConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")
