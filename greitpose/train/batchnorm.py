"""BatchNorm statistics re-estimated on training crops.

A weights average (or a mix of two runs) averages every layer's running mean and variance
along with its weights, but the averaged network's activations do not have those statistics.
Passing a few thousand training crops through it in training mode, without a gradient, gives
each BatchNorm the mean and variance its own activations have (as stochastic weight averaging
does); nothing else changes.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from rich.console import Console
from torch.utils.data import DataLoader

from greitpose.backends import resolve_device
from greitpose.checkpoint import PoseModel
from greitpose.errors import GreitposeError
from greitpose.progress import progress_bar
from greitpose.train.config import TrainConfig, parse_source_weights
from greitpose.train.data import configured_dataset, configured_samples
from greitpose.train.distributed import World
from greitpose.train.loop import epoch_order, sample_weights


def recalibrate_batchnorm(model: PoseModel, config: TrainConfig, samples: int,
                          console: Console | None = None) -> int:
    """Re-estimate `model`'s BatchNorm statistics in place from `samples` crops of the training
    set `config` names, drawn and augmented as its first epoch draws them (source weights, seed),
    at the model's own input size; one epoch's whole batches at most. Returns the crops used."""
    console = console or Console(stderr=True)
    size = tuple(model.config.input_size)
    data_samples, keypoints = configured_samples(config, size)
    if keypoints.names != model.keypoints.names:
        raise GreitposeError(f"{config.train_ann} has {keypoints.num_keypoints} keypoints of other names than "
                             f"the model's {model.keypoints.num_keypoints}")
    data = configured_dataset(config, data_samples, keypoints, size, model.mean, model.std)
    batch = min(config.batch_size, len(data))
    weights = sample_weights(data_samples, parse_source_weights(config.source_weights))
    order = epoch_order(len(data), config.seed, 0, World(), batch, weights)[:max(samples, batch)]
    order = order[:len(order) // batch * batch]
    loader = DataLoader(data, batch_size=batch, sampler=order, num_workers=config.workers, drop_last=True)
    device = resolve_device(config.device)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format  # as training ran
    network = model.network.to(device, memory_format=layout)

    def crops() -> Iterator[torch.Tensor]:
        with progress_bar(console) as progress:
            task = progress.add_task("batchnorm", total=len(order) // batch, info=f"{len(order)} crops")
            for images, _target, _weight in loader:
                yield images
                progress.advance(task)

    with torch.no_grad():
        torch.optim.swa_utils.update_bn(crops(), network, device)
    network.to("cpu", memory_format=torch.contiguous_format).eval()
    return len(order)
