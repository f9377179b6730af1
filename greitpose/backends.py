"""Inference backends: run a batch of normalised crops, return heatmaps as numpy."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from greitpose import checkpoint
from greitpose.checkpoint import PoseModel
from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet
from greitpose.models import ModelConfig

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
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise GreitposeError(f"unknown device '{device}' (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise GreitposeError(f"device '{device}' asked for, but CUDA is not available here")
    return dev


class TorchBackend:
    """PyTorch eager inference; fp16 on CUDA unless told otherwise."""

    def __init__(self, model: PoseModel, device: str | None = None, half: bool | None = None) -> None:
        self.device = resolve_device(device)
        self.half = self.device.type == "cuda" if half is None else half and self.device.type == "cuda"
        self.network = model.network.eval().to(self.device)
        if self.half:
            self.network = self.network.half()
        self.config, self.keypoints, self.mean, self.std = model.config, model.keypoints, model.mean, model.std

    @torch.inference_mode()
    def __call__(self, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(batch).to(self.device, non_blocking=True)
        x = x.half() if self.half else x
        return self.network(x).float().cpu().numpy()


class OnnxBackend:
    """ONNX Runtime inference of an exported model; metadata comes from the file itself."""

    def __init__(self, path: str | os.PathLike[str], device: str | None = None,
                 threads: int | None = None) -> None:
        import onnxruntime as ort

        path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        providers = ["CPUExecutionProvider"]
        want_cuda = device not in ("cpu",) and "CUDAExecutionProvider" in ort.get_available_providers()
        if want_cuda:
            providers.insert(0, "CUDAExecutionProvider")
        try:
            self.session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as err:  # onnxruntime raises its own untyped errors for bad files
            raise GreitposeError(f"{path} is not a loadable ONNX model: {str(err).splitlines()[0]}") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise GreitposeError(f"{path} has no greitpose metadata; export it with 'greitpose export --onnx'")
        self.metadata = json.loads(meta[METADATA_KEY])
        self.config, self.keypoints, self.mean, self.std = checkpoint.from_metadata(self.metadata)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed_batch = self.session.get_inputs()[0].shape[0]
        self.dtype = np.float16 if "float16" in self.session.get_inputs()[0].type else np.float32

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = batch.astype(self.dtype, copy=False)
        step = self.fixed_batch if isinstance(self.fixed_batch, int) else max(len(batch), 1)
        outputs = []
        for i in range(0, len(batch), step):
            chunk = batch[i:i + step]
            padded = np.concatenate([chunk, np.zeros((step - len(chunk), *chunk.shape[1:]), chunk.dtype)])
            outputs.append(self.session.run(None, {self.input_name: padded})[0][:len(chunk)])
        if not outputs:
            return np.zeros((0, self.config.num_keypoints, *self.config.heatmap_size), np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)


def load_backend(weights: str | os.PathLike[str], backend: str = "torch", device: str | None = None,
                 half: bool | None = None, expect_model: str | None = None) -> Backend:
    """A backend for a weights file: .onnx -> ONNX Runtime, else a greitpose checkpoint."""
    path = Path(weights)
    if backend not in ("torch", "onnx"):
        raise GreitposeError(f"unknown backend '{backend}' (torch or onnx)")
    if backend == "onnx" or path.suffix == ".onnx":
        if path.suffix != ".onnx":
            raise GreitposeError(f"--backend onnx needs an .onnx file (greitpose export --onnx), got {path}")
        result: Backend = OnnxBackend(path, device)
    else:
        result = TorchBackend(checkpoint.load(path, device="cpu"), device, half)
    if expect_model is not None and result.config.name != expect_model:
        raise GreitposeError(f"{path} holds weights for '{result.config.name}', not '{expect_model}'")
    return result
