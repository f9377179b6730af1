"""Allowed ranges of numeric options, in one table for the command line and the library: the
CLI prints them in its help and checks them before loading any model; the library raises the
same errors for the same values."""

from __future__ import annotations

from dataclasses import dataclass

from greitpose.errors import GreitposeError


@dataclass(frozen=True)
class Range:
    lo: float | None = None
    hi: float | None = None
    multiple_of: int | None = None

    def text(self) -> str:
        text = f">= {self.lo:g}" if self.hi is None else f"{self.lo:g} to {self.hi:g}"
        return text + (f", a multiple of {self.multiple_of}" if self.multiple_of else "")

    def holds(self, value: float) -> bool:
        return ((self.lo is None or value >= self.lo) and (self.hi is None or value <= self.hi)
                and (not self.multiple_of or value % self.multiple_of == 0))


RANGES: dict[str, Range] = {
    "det_conf": Range(0.0, 1.0),
    "det_iou": Range(0.0, 1.0),
    "kpt_thr": Range(0.0, 1.0),
    "max_people": Range(1),
    "det_every": Range(1),
    "det_size": Range(64, 4096, 32),  # the YOLO models' stride
    "radius": Range(1),
    "thickness": Range(1),
    "batch_frames": Range(1),
    "max_frames": Range(1),
    "limit": Range(1),
    "threshold": Range(0.0, 1.0),
    "seconds": Range(0.01),
    "frames": Range(1),
    "people": Range(1),
    "threads": Range(1),
    "infer_workers": Range(1, 256),
    "train_batch": Range(0),
    "batch": Range(1),
    "opset": Range(11),
    "tolerance": Range(0.0),
    # training
    "epochs": Range(1),
    "batch_size": Range(1),
    "lr": Range(1e-9),
    "min_lr": Range(0.0),
    "warmup_steps": Range(0),
    "sigma": Range(0.1),
    "rotation": Range(0.0, 180.0),
    "scale": Range(0.0, 0.9),
    "clip_grad": Range(0.0),
    "ema": Range(0.0, 0.999999),
    "workers": Range(0),
    "procs": Range(1, 256),
    "val_every": Range(1),
    "save_every_steps": Range(0),
    "max_steps": Range(0),
    "minutes": Range(0.0),
    "log_every": Range(1),
    "shift": Range(0.0, 0.45),
    "occlusion": Range(0.0, 1.0),
    "paste": Range(0.0, 1.0),
    "photometric": Range(0.0, 1.0),
    "truncate": Range(0.0, 1.0),
    "hard_keypoints": Range(0),
    # teacher labels
    "teacher_size": Range(64, 4096, 32),
    "zoom_size": Range(0, 4096, 32),
    "box_conf": Range(0.0, 1.0),
    "kpt_conf": Range(0.0, 1.0),
    "mirror_agree": Range(0.0, 1.0),
    "disputed_weight": Range(0.0, 1.0),
    "min_keypoints": Range(1, 17),
    "label_workers": Range(1, 256),
    # keypoint fill
    "min_score": Range(0.0, 1.0),
    # averaging
    "recalibrate_samples": Range(1),
    # training packs
    "margin": Range(1.0, 3.0),
    "max_height": Range(32, 1024),
    "quality": Range(1, 100),
}


#: Options whose flag is not their key (the same flag means different things per command).
FLAGS = {"infer_workers": "--workers", "label_workers": "--workers", "teacher_size": "--size"}


def flag(name: str) -> str:
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def helps(name: str, text: str) -> str:
    """Option help with its allowed range appended, e.g. 'Detector confidence (0 to 1).'"""
    return f"{text.rstrip('.')} ({RANGES[name].text()})."


def check(**values: float | None) -> None:
    """Raise a one-line error for the first value outside its range (None: not given)."""
    for name, value in values.items():
        if value is not None and not RANGES[name].holds(value):
            raise GreitposeError(f"{flag(name)} must be {RANGES[name].text()}, got {value:g}")
