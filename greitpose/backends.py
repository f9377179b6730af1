"""Inference backends: run a batch of normalised crops, return heatmaps as numpy."""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from greitpose import checkpoint
from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.models import ModelConfig

if TYPE_CHECKING:
    import torch

    from greitpose.checkpoint import PoseModel

METADATA_KEY = "greitpose"


class Backend(Protocol):
    """What top-down inference needs from a backend."""

    config: ModelConfig
    keypoints: KeypointSet
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, H, W) float32 normalised RGB -> (B, K, H/4, W/4) float32 heatmaps."""
        ...


def resolve_device(device: str | None) -> torch.device:
    """'auto'/None -> cuda when present, else cpu; a CUDA device that is absent is an error."""
    import torch

    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise GreitposeError(f"unknown device '{device}' (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GreitposeError(f"device '{device}' asked for, but CUDA is not available here")
    if dev.type == "cuda" and dev.index is not None and dev.index >= (count := torch.cuda.device_count()):
        raise GreitposeError(f"device '{device}' asked for, but this machine has {count} "
                             f"CUDA device(s), cuda:0 to cuda:{count - 1}")
    return dev


def check_half(half: bool | None, device: str | None) -> None:
    """fp16 is a CUDA feature here: asked for on a CPU, it is refused rather than quietly dropped."""
    if half and resolve_device(device).type != "cuda":
        raise GreitposeError("--half (fp16) runs on CUDA only, and this run is on the CPU: drop --half "
                             "(or give --device cuda on a machine with a GPU)")


class TorchBackend:
    """PyTorch eager inference; fp16 on CUDA unless told otherwise."""

    def __init__(self, model: PoseModel, device: str | None = None, half: bool | None = None) -> None:
        check_half(half, device)
        self.device = resolve_device(device)
        self.half = self.device.type == "cuda" if half is None else half
        self.network = model.network.eval().to(self.device)
        if self.half:
            self.network = self.network.half()
        self.config, self.keypoints, self.mean, self.std = model.config, model.keypoints, model.mean, model.std

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self.device, non_blocking=True)
            x = x.half() if self.half else x
            return self.network(x).float().cpu().numpy()


def onnx_session(path: Path, device: str | None = None, threads: int | None = None):  # noqa: ANN201
    """An ONNX Runtime session tuned for small models: full graph optimisation, `threads`
    threads inside each op (default: all cores), CUDA when present unless `device` is 'cpu'."""
    import onnxruntime as ort

    threads = threads or os.cpu_count() or 1
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if threads == 1:  # sessions that run side by side must not spin on each other's cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device != "cpu" and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as err:  # onnxruntime raises its own untyped errors for bad files
        raise GreitposeError(f"{path} is not a loadable ONNX model: {str(err).splitlines()[0]}") from None


class OnnxBackend:
    """ONNX Runtime inference of an exported model; metadata comes from the file itself.

    On the CPU, a batch of several crops is cut into parts that run side by side, each
    single-threaded: the network is made of many small ops that gain little from sharing one
    op between threads, so whole runs in parallel are faster (about 10% at batch 8 on two
    cores). Parts hold at most SHARD crops, whose activations stay in cache. A single crop
    runs on all threads at once.
    """

    SHARD = 4

    def __init__(self, path: str | os.PathLike[str], device: str | None = None,
                 threads: int | None = None) -> None:
        path = Path(path)
        self.threads = threads or os.cpu_count() or 1
        self.session = onnx_session(path, device, self.threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise GreitposeError(f"{path} has no greitpose metadata; export it with 'greitpose export --onnx'")
        self.metadata = json.loads(meta[METADATA_KEY])
        self.config, self.keypoints, self.mean, self.std = checkpoint.from_metadata(self.metadata)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_batch = self.session.get_inputs()[0].shape[0]
        self.dtype = np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32
        self.shard_session = None
        if self.threads > 1 and not isinstance(self.fixed_batch, int) and \
                self.session.get_providers()[0] == "CPUExecutionProvider":
            self.shard_session = onnx_session(path, "cpu", 1)
            self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="greitpose-onnx")

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=self.dtype)
        if len(batch) == 0:
            return np.zeros((0, self.config.num_keypoints, *self.config.heatmap_size), np.float32)
        if self.shard_session is not None and len(batch) > 1:
            parts = np.array_split(batch, min(len(batch), max(self.threads, -(-len(batch) // self.SHARD))))
            runs = [self.pool.submit(self.shard_session.run, None, {self.input_name: part}) for part in parts]
            outputs = [run.result()[0] for run in runs]
        else:
            step = self.fixed_batch if isinstance(self.fixed_batch, int) else len(batch)
            outputs = []
            for i in range(0, len(batch), step):
                chunk = batch[i:i + step]
                padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
                outputs.append(self.session.run(None, {self.input_name: padded})[0][:len(chunk)])
        return np.concatenate(outputs).astype(np.float32, copy=False)


BACKENDS = ("auto", "torch", "onnx")


def load_backend(weights: str | os.PathLike[str], backend: str = "auto", device: str | None = None,
                 half: bool | None = None, expect_model: str | None = None, threads: int | None = None) -> Backend:
    """A backend for a weights file: .onnx -> ONNX Runtime, else a greitpose checkpoint.

    `auto` runs a checkpoint on PyTorch on a GPU and through its cached ONNX export on a CPU
    (greitpose.onnx_cache), falling back to PyTorch when the export does not match it.
    """
    path = Path(weights)
    if backend not in BACKENDS:
        raise GreitposeError(f"unknown backend '{backend}' ({', '.join(BACKENDS)})")
    if backend == "onnx" and path.suffix != ".onnx":
        raise GreitposeError(f"--backend onnx needs an .onnx file (greitpose export --onnx), got {path}")
    if backend == "auto" and path.suffix != ".onnx" and resolve_device(device).type == "cpu":
        from greitpose.onnx_cache import onnx_for

        path = onnx_for(path) or path
    if path.suffix == ".onnx":
        result: Backend = OnnxBackend(path, device, threads)
    else:
        result = TorchBackend(checkpoint.load(path, device="cpu"), device, half)
    if expect_model is not None and result.config.name != expect_model:
        raise GreitposeError(f"{path} holds weights for '{result.config.name}', not '{expect_model}'")
    return result
