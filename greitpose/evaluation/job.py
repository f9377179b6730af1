"""What `greitpose eval` does, as one library call: check every input and output before a model
loads, score the pose model (and a one-stage peer on the same images) and write the results."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from greitpose import limits
from greitpose.errors import GreitposeError
from greitpose.evaluation.runner import (
    CocoOptions,
    EvalResult,
    evaluate_coco,
    evaluate_mpii,
    evaluate_peer_coco,
    evaluate_peer_mpii,
    find_eval_files,
)


@dataclass
class EvalJob:
    """One evaluation, as the `eval` command's options describe it."""

    dataset: str = "coco"  # coco (any COCO-format keypoint set) or mpii
    data_root: Path | None = None
    images: Path | None = None
    ann: Path | None = None
    gt_boxes: bool = False
    boxes: Path | None = None  # person detections, COCO results format
    detector: str | None = None  # a YOLO model finds the people instead
    det_size: int = 640
    model: str | None = None
    weights: str | None = None
    input_size: str = "256x192"
    backend: str = "auto"
    device: str = "auto"
    flip: bool = True
    decode: str = "quarter"
    limit: int | None = None
    flip_pairs: str | None = None  # 'a,b;c,d' for own datasets
    sigmas: str | None = None  # comma-separated OKS sigmas for own datasets
    threshold: float = 0.5  # MPII PCKh threshold
    json_path: Path | None = None  # the metrics as JSON
    save_predictions: Path | None = None
    peer: Path | None = None  # a one-stage YOLO pose model scored on the same images


@dataclass
class EvalReport:
    """The scores, and the tables they print as (one column per model scored)."""

    result: EvalResult
    title: str
    columns: dict[str, dict[str, float]]
    digits: int
    per_keypoint: dict[str, dict[str, float | None]] = field(default_factory=dict)  # COCO only
    matched: dict[str, int] = field(default_factory=dict)  # people matched, per model


def check(job: EvalJob) -> None:
    """Every option and path that can be wrong, before anything loads."""
    from greitpose.pose import check_decoder

    if job.dataset not in ("coco", "mpii"):
        raise GreitposeError(f"unknown dataset '{job.dataset}' (coco or mpii)")
    limits.check(limit=job.limit, threshold=job.threshold, det_size=job.det_size)
    check_decoder(job.decode)
    if sum([job.gt_boxes, job.boxes is not None, job.detector is not None]) > 1:
        raise GreitposeError("choose one of --gt-boxes, --boxes and --detector")
    if job.dataset == "mpii" and (job.boxes is not None or job.detector is not None):
        raise GreitposeError("--boxes and --detector are for COCO sets; MPII crops come from each "
                             "person's annotated center and scale")
    for given in (job.boxes, job.ann):
        if given is not None and not given.is_file():
            raise GreitposeError(f"{given} does not exist")
    if job.peer is not None:
        from greitpose.peer import check_peer_file

        check_peer_file(job.peer)


def run_eval(job: EvalJob, console: Console | None = None) -> EvalReport:
    """Score `job`'s model on its dataset; writes `json_path` and `save_predictions` when given."""
    from greitpose.backends import load_backend
    from greitpose.datasets import parse_flip_pairs, parse_sigmas
    from greitpose.estimator import pose_weights
    from greitpose.models import parse_input_size
    from greitpose.writers import ensure_writable, refuse_overwrite, write_json

    console = console or Console(stderr=True)
    check(job)
    flip_pairs = parse_flip_pairs(job.flip_pairs) if job.flip_pairs else None
    sigmas = parse_sigmas(job.sigmas) if job.sigmas else None
    if job.json_path is not None:
        ensure_writable(job.json_path)
    size = parse_input_size(job.input_size)
    data_root = job.data_root
    if data_root is None and job.ann is None:  # found (or fetched) before any model loads
        from greitpose.downloads import locate_dataset

        data_root = locate_dataset(job.dataset)
    ann, images = find_eval_files(job.dataset, data_root, job.ann, job.images)
    for option, written in (("--json", job.json_path), ("--save-predictions", job.save_predictions)):
        if written is not None:
            refuse_overwrite(written, [ann, *([job.boxes] if job.boxes else [])], "a file", option)
    path, expect = pose_weights(job.model, job.weights, size, job.backend)
    pose = load_backend(path, job.backend, job.device, expect_model=expect)
    if job.dataset == "mpii":
        report = _mpii(job, pose, path.name, data_root, ann, images, console)
    else:
        options = CocoOptions(data_root, images, ann, job.boxes, flip_pairs=flip_pairs, sigmas=sigmas,
                              limit=job.limit)
        report = _coco(job, pose, path.name, options, console)
    if job.json_path is not None:
        write_json(job.json_path, report.result.to_dict())
    return report


def _with_peer(result: EvalResult, peer: Path, theirs: EvalResult, det_size: int) -> str:
    """Record the peer's scores in `result`; its column name."""
    result.extra["peer"] = {"model": str(peer), "det_size": det_size, **theirs.to_dict()}
    return f"{peer.name} (own boxes)"


def _mpii(job: EvalJob, pose: Any, name: str, data_root: Path | None, ann: Path, images: Path,
          console: Console) -> EvalReport:
    result = evaluate_mpii(pose, data_root, ann, images, job.flip, job.limit, job.threshold,
                           job.save_predictions, console, job.decode)
    columns = {name: result.metrics}
    if job.peer is not None:
        theirs = evaluate_peer_mpii(job.peer, data_root, ann, images, job.limit, job.threshold, job.det_size,
                                    console)
        columns[_with_peer(result, job.peer, theirs, job.det_size)] = theirs.metrics
    shared = "" if "head_top" in result.extra["joints"] else "; COCO keypoints: no Head, Mean of 12 joints"
    return EvalReport(result, f"MPII PCKh@{job.threshold} ({result.count} people{shared})", columns, 2)


def _coco(job: EvalJob, pose: Any, name: str, options: CocoOptions, console: Console) -> EvalReport:
    if job.detector:
        from greitpose.detect import load_detector

        options.detector = load_detector(job.detector, device=job.device, backend=job.backend, size=job.det_size)
    result = evaluate_coco(pose, options, job.flip, job.save_predictions, console, job.decode)
    scored = {name: result}
    if job.peer is not None:
        theirs = evaluate_peer_coco(job.peer, options, job.det_size, console)
        scored[_with_peer(result, job.peer, theirs, job.det_size)] = theirs
    return EvalReport(result, f"COCO keypoints, {result.extra['boxes']} ({result.count} images)",
                      {column: r.metrics for column, r in scored.items()}, 3,
                      {column: r.extra["per_keypoint"]["similarity"] for column, r in scored.items()},
                      {column: r.extra["per_keypoint"]["matched"] for column, r in scored.items()})
