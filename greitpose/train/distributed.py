"""torchrun / DistributedDataParallel set-up: NCCL on GPUs, gloo on CPUs, nothing when alone."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from greitpose.errors import GreitposeError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def launched() -> bool:
    """Whether this process is one rank of several (torchrun or `train --procs`)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def set_env(rank: int, size: int, port: int) -> None:
    """The environment torchrun gives a rank on this machine, for `setup` to join by."""
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))


def setup(device: torch.device) -> World:
    """Join the process group torchrun (or `train --procs`) describes in the environment (if any)."""
    if not launched():
        return World()
    size, rank = int(os.environ["WORLD_SIZE"]), int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        gpus = torch.cuda.device_count()
        if local >= gpus:
            raise GreitposeError(f"{int(os.environ.get('LOCAL_WORLD_SIZE', size))} training processes on this "
                                 f"machine, but it has {gpus} GPU{'s' * (gpus != 1)}: one process per GPU "
                                 f"(--procs {gpus} or torchrun --nproc_per_node {gpus}), or --device cpu")
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(rank, size, local)


def teardown(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.barrier()  # no rank tears down gloo while another still talks to it
        dist.destroy_process_group()


def gather_floats(world: World, values: list[float]) -> list[list[float]]:
    """Every rank's `values`, on every rank."""
    if not world.distributed:
        return [values]
    out: list[list[float]] = [[] for _ in range(world.size)]
    dist.all_gather_object(out, values)
    return out


def agree(world: World, steps: int, stop: bool) -> tuple[int, bool]:
    """The fewest `steps` and whether any rank says `stop`, on every rank: ranks that judge by
    their own clocks must still end on the same step."""
    if not world.distributed:
        return steps, stop
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    values = torch.tensor([-steps, int(stop)], dtype=torch.int64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return -int(values[0]), bool(values[1])
