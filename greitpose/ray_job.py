"""Folders of images on a Ray cluster (`infer FOLDER --json X.jsonl --ray ADDRESS`).

Ray Data reads the files (`read_binary_files`), a pool of actors (each with its own detector
and pose model, built from the same settings as a local run) decodes them and estimates poses,
and the results come back to the calling process in the source's order, where they are written
as the same resumable JSON Lines as a local run. Needs `pip install "greitpose[ray]"`; the
image paths must be readable by every node (a shared file system).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

from greitpose.batch import ResumableLines, file_sizes
from greitpose.errors import GreitposeError
from greitpose.infer import Summary
from greitpose.progress import progress_bar
from greitpose.sources import ImageSource

#: `--ray local` starts a Ray instance on this machine for the job; anything else is an address
#: for ray.init ('auto': the running cluster, or ray://HEAD:10001).
LOCAL = "local"


class PoseActor:
    """One actor of the pool: its own estimator, fed batches of encoded image files."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from greitpose.estimator import PoseEstimator

        self.estimator = PoseEstimator(**settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[Any]]:
        import cv2

        images = [cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) for data in batch["bytes"]]
        readable = [im for im in images if im is not None]
        poses = iter(self.estimator.process(readable) if readable else [])
        out: dict[str, list[Any]] = {"path": list(batch["path"]), "width": [], "height": [], "people": []}
        for image in images:  # unreadable: width 0 and no people
            found = next(poses) if image is not None else None
            out["width"].append(image.shape[1] if image is not None else 0)
            out["height"].append(image.shape[0] if image is not None else 0)
            out["people"].append(json.dumps(found.people() if found is not None else []))
        return out


def connect(address: str) -> None:
    """Start (`local`) or join a Ray cluster; a one-line error when ray is absent or unreachable."""
    try:
        import ray
        import ray.data  # noqa: F401 - the data extra, not only ray's core
    except ImportError:
        raise GreitposeError('--ray needs Ray Data: pip install "greitpose[ray]"') from None
    try:
        ray.init(address=None if address == LOCAL else address, ignore_reinit_error=True,
                 include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    except Exception as err:  # ray raises ConnectionError, RuntimeError, ValueError ...
        raise GreitposeError(f"cannot reach the Ray cluster at '{address}': {str(err).splitlines()[0]}") from None


def stream_ray(paths: list[Path], settings: dict[str, Any], actors: int | None = None, batch: int = 4,
               relative: Callable[[Path], str] = str) -> Iterator[dict[str, Any]]:
    """One record per image (`file` named by `relative`, width, height, people), in the order
    of `paths`; an unreadable image has width 0. `actors` defaults to one per cluster CPU, each
    with one thread."""
    import ray
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # ours counts images
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)))
    names = {_key(p): relative(p) for p in paths}
    # reading is I/O: it takes no CPU slot, so a pool as large as the cluster cannot starve it
    data = ray.data.read_binary_files([str(p) for p in paths], include_paths=True, num_cpus=0)
    poses = data.map_batches(PoseActor, fn_constructor_kwargs={"settings": {**settings, "threads": 1}},
                             batch_size=batch, compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                             max_restarts=0)  # a failing actor fails the job (resumable), not retried blind
    for row in poses.iter_rows():
        yield {"file": names[_key(Path(row["path"]))], "width": int(row["width"]),
               "height": int(row["height"]), "people": json.loads(row["people"])}


def run_on_ray(src: ImageSource, settings: dict[str, Any], json_path: Path, address: str,
               actors: int | None, batch: int, console: Console, warn: Callable[[str], None]) -> Summary:
    """The folder job of `infer` on Ray: resumable JSON Lines at `json_path`, as a local run."""
    connect(address)
    import ray.exceptions

    lines: ResumableLines | None = ResumableLines(json_path, file_sizes(src.paths, src.relative))
    todo = [p for p in src.paths if src.relative(p) not in lines.done]
    if lines.resumed:
        console.print(lines.resume_note(len(todo)), highlight=False)
    summary = Summary()
    started = time.perf_counter()
    try:
        with progress_bar(console) as progress:
            task = progress.add_task(f"pose {src.label} on Ray", total=len(todo), info="")
            for record in stream_ray(todo, settings, actors, batch, src.relative):
                if record["width"] == 0:
                    summary.skipped.append(record["file"])
                    warn(f"skipped {record['file']}: not a readable image")
                else:
                    lines.add(record)
                    summary.frames += 1
                    summary.people += len(record["people"])
                progress.update(task, advance=1)
        summary.seconds = time.perf_counter() - started
        if summary.frames == 0 and not lines.resumed:
            raise GreitposeError(f"no readable images in {src.label}")
        lines.commit()
        lines = None
        summary.outputs.append(str(json_path))
    except ray.exceptions.RayError as err:
        cause = getattr(err, "cause", None) or err
        raise GreitposeError(f"the Ray job failed: {str(cause).strip().splitlines()[-1]}") from None
    finally:
        if lines is not None:
            lines.discard()
            if lines.done:
                warn(lines.kept_note())
    return summary


def _key(path: Path) -> str:
    """Ray reports local paths without their leading '/'; compare them without it."""
    return str(path).lstrip("/")
