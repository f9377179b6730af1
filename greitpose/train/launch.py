"""`train --procs N`: N data-parallel training processes on this machine, started by greitpose
itself (torchrun does the same for clusters). On a CPU, N processes of one thread each beat one
process that spreads each of the network's ~1,800 small ops over N threads (docs/benchmarks.md)."""

from __future__ import annotations

import logging
import signal
import socket
import sys
import tempfile
from pathlib import Path

import torch
import torch.multiprocessing as mp
from rich.console import Console

from greitpose.errors import GreitposeError
from greitpose.train import distributed
from greitpose.train.config import TrainConfig
from greitpose.train.loop import Trainer
from greitpose.train.run_folder import check_run_folder


def train(config: TrainConfig, console: Console | None = None) -> Path:
    """Run `config` here, or on `config.procs` local processes (one optimizer step takes a batch
    from each; rank 0 writes the run folder). Returns the run folder."""
    if distributed.is_main_process():
        check_run_folder(config)
    if config.procs <= 1 or distributed.launched():
        return Trainer(config, console).run()
    threads = max(1, torch.get_num_threads() // config.procs)
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)  # its "terminating" notes
    with tempfile.TemporaryDirectory(prefix="greitpose-ranks-") as errors:
        context = mp.start_processes(_rank, args=(config, _free_port(), threads, errors), nprocs=config.procs,
                                     join=False, start_method="spawn")
        try:
            while not context.join():
                pass
        except mp.ProcessExitedException as err:
            reports = sorted(Path(errors).glob("rank*.txt"))
            raise GreitposeError(reports[0].read_text(encoding="utf-8") if reports
                                 else f"training process {err.error_index} stopped ({err})") from None
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                    process.join(10)
                if process.is_alive():  # stuck in a collective, where Python cannot act on SIGTERM
                    process.kill()
                    process.join()
    return Path(config.out)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # what torch's process wrapper takes as "stopped by the parent"


def _rank(index: int, config: TrainConfig, port: int, threads: int, errors: str) -> None:
    """One process of `train`: joins the group through the environment, as under torchrun. A user
    error goes to the parent as one line; Ctrl-C, SIGTERM or the parent's end stop it quietly,
    unwinding (so its loader processes are shut down too)."""
    signal.signal(signal.SIGTERM, _stop)
    distributed.set_env(rank=index, size=config.procs, port=port)
    torch.set_num_threads(threads)
    try:
        Trainer(config).run()
    except GreitposeError as err:
        Path(errors, f"rank{index}.txt").write_text(str(err), encoding="utf-8")
        sys.exit(1)
