"""Speed and memory: per-crop latency and crops/s per backend and batch, end-to-end frames/s,
training images/s, peak memory. Weights are random but realistic (BatchNorm statistics
calibrated on crops), which is what speed depends on."""

from __future__ import annotations

import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greitpose import checkpoint
from greitpose.backends import Backend, OnnxBackend, TorchBackend, resolve_device
from greitpose.checkpoint import PoseModel
from greitpose.detect import GivenBoxes
from greitpose.estimator import PoseEstimator
from greitpose.export import export_onnx, sample_crops
from greitpose.models import ModelConfig, get_config
from greitpose.models.layers import LKA
from greitpose.results import Detections
from greitpose.sources import open_source


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def realistic_model(config: ModelConfig, seed: int = 0) -> PoseModel:
    """A model with default-initialised convs, BatchNorm statistics from synthetic crops and
    heatmaps peaking near 1, so activations have the magnitudes of a trained model (tiny ones
    turn into slow denormals on CPUs; huge ones make fp32 comparisons meaningless)."""
    torch.manual_seed(seed)
    model = checkpoint.new_model(config)
    for m in model.network.modules():
        if isinstance(m, torch.nn.Conv2d):
            m.reset_parameters()
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration passes
    for m in model.network.modules():
        if isinstance(m, LKA):  # attention near 1, as trained: x * attn must not square x
            torch.nn.init.normal_(m.pw.weight, std=0.02)
            torch.nn.init.ones_(m.pw.bias)
    crops = torch.from_numpy(sample_crops(model, None, count=16, seed=seed))
    model.network.train()
    with torch.no_grad():
        for _ in range(2):
            model.network(crops)
        for m in model.network.modules():
            if isinstance(m, torch.nn.BatchNorm2d):  # slightly contractive, as trained
                m.running_var.clamp_(min=0.1 * float(m.running_var.median()))
                m.weight.fill_(0.85)
        model.network.eval()
        peak = model.network(crops).abs().amax().item()
        model.network.final.weight /= peak
        model.network.final.bias /= peak
    return model


def time_call(fn: Callable[[], Any], min_seconds: float, min_iters: int = 3, warmup: int = 2) -> float:
    """Median seconds of one call, repeated for at least `min_seconds` and `min_iters` runs."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_iters or time.perf_counter() - start < min_seconds:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


@dataclass
class LatencyRow:
    model: str
    backend: str
    batch: int
    ms_per_crop: float
    crops_per_s: float


@dataclass
class Report:
    device: str
    threads: int
    input_size: tuple[int, int]
    latency: list[LatencyRow] = field(default_factory=list)
    end_to_end: list[dict[str, Any]] = field(default_factory=list)
    training: list[dict[str, Any]] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _backends(model: PoseModel, names: list[str], device: torch.device, workdir: Path,
              threads: int) -> dict[str, Backend]:
    out: dict[str, Backend] = {}
    for name in names:
        if name == "torch":
            out[name] = TorchBackend(model, str(device), half=False)
        elif name == "onnx":
            path = export_onnx(model, workdir / f"{model.config.name}.onnx")
            out[name] = OnnxBackend(path, str(device), threads=threads)
    return out


def end_to_end(backend: Backend, frames: list[np.ndarray], people: int, flip: bool) -> dict[str, Any]:
    """Frames/s of the whole top-down path (crop, forward, flip, decode) with `people` boxes."""
    h, w = frames[0].shape[:2]
    cols = max(1, int(np.ceil(np.sqrt(people))))
    bw, bh = w / cols, h / int(np.ceil(people / cols))
    boxes = np.array([[(i % cols) * bw, (i // cols) * bh, (i % cols + 1) * bw, (i // cols + 1) * bh]
                      for i in range(people)], np.float32)
    est = PoseEstimator(backend=backend, flip=flip,
                        detector=GivenBoxes(lambda i: Detections(boxes, np.ones(people, np.float32))))
    start = time.perf_counter()
    for frame in frames:
        est(frame)
    seconds = time.perf_counter() - start
    return {"frames": len(frames), "people": people, "flip": flip, "frames_per_s": len(frames) / seconds}


def train_throughput(model: PoseModel, device: torch.device, batch: int, seconds: float) -> dict[str, Any]:
    """Images/s of forward + MSE backward + Adam step at `batch` crops."""
    network = model.network.to(device).train().to(memory_format=torch.channels_last)  # as train does
    opt = torch.optim.Adam(network.parameters(), lr=1e-3)
    h, w = model.config.input_size
    x = torch.randn(batch, 3, h, w, device=device).contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, model.config.num_keypoints, h // 4, w // 4, device=device)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(network(x), target).backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    per_step = time_call(step, seconds, min_iters=2, warmup=1)
    network.eval().to(memory_format=torch.contiguous_format)
    return {"model": model.config.name, "batch": batch, "images_per_s": batch / per_step}


def run(models: list[str], batches: list[int], backends: list[str], device: str | None = "cpu",
        threads: int | None = None, seconds: float = 2.0, video: str | None = None, frames: int = 20,
        people: int = 4, train_batch: int = 0, input_size: tuple[int, int] = (256, 192),
        progress: Callable[[str], None] | None = None) -> Report:
    """Measure every (model, backend, batch); end-to-end on `video` (or synthetic frames)."""
    dev = resolve_device(device)
    threads = threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    report = Report(str(dev), threads, input_size)
    say = progress or (lambda msg: None)
    if video:
        src = open_source(video)
        clip = [f.image for f, _ in zip(src, range(frames))]
    else:
        rng = np.random.default_rng(0)
        clip = [rng.integers(0, 255, (480, 640, 3), dtype=np.uint8) for _ in range(frames)]
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            model = realistic_model(get_config(name, input_size=input_size))
            crops = sample_crops(model, None, count=max(batches), seed=1)
            for bname, backend in _backends(model, backends, dev, Path(tmp), threads).items():
                for batch in batches:
                    say(f"{name} {bname} batch {batch}")
                    x = np.ascontiguousarray(crops[:batch])
                    sec = time_call(lambda: backend(x), seconds)
                    report.latency.append(LatencyRow(name, bname, batch, 1000 * sec / batch, batch / sec))
                say(f"{name} {bname} end-to-end")
                report.end_to_end.append({"model": name, "backend": bname, **end_to_end(backend, clip, people, True)})
            if train_batch:
                say(f"{name} training")
                report.training.append(train_throughput(model, dev, train_batch, seconds))
    report.peak_rss_mb = peak_rss_mb()
    if dev.type == "cuda":
        report.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
    return report
