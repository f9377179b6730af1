"""The weights file format: one file holds the network's config, keypoints, normalisation and
state dict, so `load(path)` needs no model name and cannot silently pair weights with the
wrong architecture."""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from greitpose.errors import GreitposeError
from greitpose.keypoints import KeypointSet, default_for
from greitpose.models import ModelConfig

if TYPE_CHECKING:
    import torch

    from greitpose.models import PoseHRNet

FORMAT = "greitpose-pose"
VERSION = 1
#: ImageNet statistics on 0-255 RGB, as the paper's HRNet-family training uses.
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass
class PoseModel:
    """A network with everything needed to feed it and read its output."""

    network: PoseHRNet
    config: ModelConfig
    keypoints: KeypointSet
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    #: the file's `extra` record when loaded (e.g. `samples_seen`); not part of the metadata
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """Everything but the weights, as plain values (also written into ONNX files)."""
        return {
            "format": FORMAT,
            "version": VERSION,
            "config": self.config.to_dict(),
            "keypoints": {
                "name": self.keypoints.name,
                "names": list(self.keypoints.names),
                "flip_pairs": [list(p) for p in self.keypoints.flip_pairs],
                "skeleton": [list(p) for p in self.keypoints.skeleton],
                "sigmas": list(self.keypoints.sigmas),
            },
            "normalization": {"mean": list(self.mean), "std": list(self.std), "color": "rgb"},
        }


def new_model(config: ModelConfig, keypoints: KeypointSet | None = None) -> PoseModel:
    """A randomly initialised model for `config` (keypoints default to COCO/MPII by count)."""
    keypoints = keypoints or default_for(config.num_keypoints)
    if keypoints.num_keypoints != config.num_keypoints:
        raise GreitposeError(
            f"keypoint set '{keypoints.name}' has {keypoints.num_keypoints} keypoints, "
            f"the model {config.num_keypoints}")
    from greitpose.models import build_model

    return PoseModel(build_model(config), config, keypoints)


def save(model: PoseModel, path: str | os.PathLike[str], extra: dict[str, Any] | None = None) -> Path:
    """Write `model` atomically (temporary file, then rename): no half-written checkpoints."""
    import torch

    path = Path(path)
    record = model.metadata()
    record["state_dict"] = {k: v.detach().cpu() for k, v in model.network.state_dict().items()}
    if extra:
        record["extra"] = extra
    tmp = path.with_name(path.name + ".partial")
    try:
        torch.save(record, tmp)
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise GreitposeError(f"cannot write weights file {path}: {err.strerror or err}") from None
    return path


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The raw checkpoint dict, checked to be ours; errors name the file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise GreitposeError(f"weights file {path} does not exist")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        if "ultralytics" in str(err):  # the classes its pickle names
            raise GreitposeError(f"{path} is an Ultralytics YOLO model, not greitpose pose weights; "
                                 "a YOLO model goes to --detector") from None
        raise GreitposeError(f"{path} is not a readable greitpose weights file ({type(err).__name__})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise GreitposeError(
            f"{path} is not a greitpose weights file (no '{FORMAT}' record; convert or re-export it)")
    if record.get("version", 0) > VERSION:
        raise GreitposeError(f"{path} was written by a newer greitpose (format {record['version']})")
    return record


def from_metadata(meta: dict[str, Any]) -> tuple[ModelConfig, KeypointSet, tuple, tuple]:
    """Config, keypoint set and normalisation from a metadata dict (checkpoint or ONNX)."""
    config = ModelConfig.from_dict(dict(meta["config"]))
    k = meta["keypoints"]
    keypoints = KeypointSet(k["name"], tuple(k["names"]), tuple(tuple(p) for p in k["flip_pairs"]),
                            tuple(tuple(p) for p in k["skeleton"]), tuple(k["sigmas"]))
    norm = meta["normalization"]
    return config, keypoints, tuple(norm["mean"]), tuple(norm["std"])


def load(path: str | os.PathLike[str], expect_model: str | None = None,
         device: str | torch.device = "cpu") -> PoseModel:
    """Rebuild the network a weights file describes and load its weights (eval mode).

    `expect_model` (a registry name) makes a file written for another architecture an error.
    """
    from greitpose.models import build_model

    record = read_record(path)
    config, keypoints, mean, std = from_metadata(record)
    if expect_model is not None and expect_model != config.name:
        raise GreitposeError(f"{path} holds weights for '{config.name}', not '{expect_model}'")
    network = build_model(config)
    state = record["state_dict"]
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or mismatched:
        first = (missing + unexpected + mismatched)[0]
        raise GreitposeError(
            f"{path} does not fit '{config.name}': {len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(mismatched)} mis-shaped tensors (first: {first})")
    network.load_state_dict(state)
    network.eval().to(device)
    return PoseModel(network, config, keypoints, mean, std, dict(record.get("extra") or {}))
