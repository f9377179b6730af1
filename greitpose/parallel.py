"""Folders of images on several processes (`infer --workers N`).

Each worker process builds its own estimator from the same settings and reads, detects and
estimates its share of the images; the calling process gets the frames and poses back in the
source's order and writes them (JSON, annotated images) as for one process, so the results
stream and resume the same way. The networks' threads are divided between the workers: small
models use one core each better than two cores share one model.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from greitpose.errors import GreitposeError
from greitpose.results import Poses
from greitpose.sources import Frame, ImageSource, read_image

_estimator: Any = None  # the worker process's own PoseEstimator
_failure: str | None = None  # why it could not be built (raised by the first task)


def _start_worker(settings: dict[str, Any]) -> None:
    """Runs once in each worker: Ctrl-C is the parent's to handle (it stops the pool)."""
    import torch

    from greitpose.estimator import PoseEstimator

    global _estimator, _failure
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(settings["threads"])
    try:
        _estimator = PoseEstimator(**settings)
    except Exception as err:  # an initializer that raises makes the pool restart it forever
        _failure = f"a worker could not load its models: {str(err).splitlines()[0]}"


def _work(chunk: list[tuple[int, str, str]]) -> list[tuple[Frame, Poses] | str]:
    """Poses for (index, path, relative name) items; an unreadable image comes back as its path."""
    if _failure is not None:
        raise GreitposeError(_failure)
    frames, unreadable = [], []
    for index, path, name in chunk:
        image = read_image(Path(path))
        if image is None:
            unreadable.append(path)
        else:
            frames.append(Frame(index, image, name, float(index)))
    poses = _estimator.process([f.image for f in frames]) if frames else []
    return [*zip(frames, poses), *unreadable]


def stream_parallel(src: ImageSource, settings: dict[str, Any] | None, workers: int,
                    chunk: int = 4) -> Iterator[tuple[list[Frame], list[Poses]]]:
    """(frames, poses) for `src`'s images, `chunk` at a time, from `workers` processes, in order.
    Unreadable images go to `src.on_skip`, as when one process reads them."""
    if settings is None:
        raise GreitposeError("--workers needs an estimator built from names (weights and detector "
                             "files), so that each worker can build its own")
    settings = {**settings, "threads": max(1, (os.cpu_count() or 1) // workers)}
    items = [(i, str(p), src.relative(p)) for i, p in enumerate(src.paths)]
    chunks = [items[i:i + chunk] for i in range(0, len(items), chunk)]
    # spawn: workers must not inherit the parent's threads (decoders, ONNX Runtime pools)
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, initializer=_start_worker, initargs=(settings,)) as pool:
        try:
            for results in pool.imap(_work, chunks):
                done = [r for r in results if not isinstance(r, str)]
                for path in (r for r in results if isinstance(r, str)):
                    src.on_skip(Path(path))
                yield [f for f, _ in done], [p for _, p in done]
        finally:
            pool.terminate()

