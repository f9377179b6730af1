"""The `greitpose` command: a thin layer of options over the library API."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from greitpose import limits, presets
from greitpose.downloads import OFFLINE_VAR, set_offline
from greitpose.errors import GreitposeError
from greitpose.limits import helps

if TYPE_CHECKING:
    from greitpose.infer import Summary
    from greitpose.keypoints import KeypointSet
    from greitpose.sources import Source, VideoSource

app = typer.Typer(help="2D multi-person pose estimation with Greit-HRNet.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False)
console = Console(stderr=True)
out = Console()


def _version(value: bool) -> None:
    if value:
        from greitpose import __version__

        out.print(f"greitpose {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Keep OpenCV/FFmpeg/Ultralytics log lines.")] = False,
) -> None:
    """2D multi-person pose estimation with Greit-HRNet."""
    del verbose  # read from the command line before anything imports OpenCV (quiet_third_party)


@app.command()
def info(
    model: Annotated[Optional[str], typer.Argument(help="Model name; all registered models when omitted.")] = None,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH of the input crop.")] = "256x192",
    keypoints: Annotated[int, typer.Option(help="Number of keypoint heatmaps (17 COCO, 16 MPII).")] = 17,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """This installation (versions, devices, weights found or missing), then the parameters and
    GMACs of every registered model; with MODEL, that model's only."""
    from greitpose.models import get_config, model_names, parse_input_size
    from greitpose.models.complexity import measure
    from greitpose.progress import progress_bar
    from greitpose.setup_report import as_dict, report

    size = parse_input_size(input_size)
    names = [model] if model else model_names()
    rows = []
    with progress_bar(console, enabled=len(names) > 1) as progress:  # about a second a model
        task = progress.add_task("counting parameters and MACs", total=len(names), info="")
        for name in names:
            rows.append(measure(get_config(name, keypoints, size)).to_dict())
            progress.advance(task)
    items = [] if model else report()
    if as_json:
        out.print_json(json.dumps(rows[0] if model else {"installation": as_dict(items), "models": rows}))
        return
    if items:
        setup = Table(title="this installation", show_header=False)
        setup.add_column(style="bold")
        setup.add_column(overflow="fold")
        for item in items:
            setup.add_row(item.name, item.value if item.ok else f"[yellow]{item.value}[/yellow]")
        out.print(setup)
    table = Table(title=f"models at {size[0]}x{size[1]}, {keypoints} keypoints")
    for col in ("model", "params (M)", "GMACs", "heatmap"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for r in rows:
        table.add_row(r["model"], f"{r['params_m']:.3f}", f"{r['gmacs']:.3f}",
                      "x".join(map(str, r["heatmap_size"])))
    out.print(table)


Device = Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")]
PRESET_HELP = "; ".join(f"{p.name} ({p.summary})" for p in presets.PRESETS.values())
DetSize = Annotated[int, typer.Option(help=helps("det_size", "Detector input size in px; smaller is faster and finds fewer small people"))]
DecodeOpt = Annotated[str, typer.Option(help="Heatmap decoding: quarter (the paper's quarter offset) or dark (DARK: a Taylor step on the smoothed log heatmap; val.json AP +0.007, docs/benchmarks.md).")]
AnnImages = Annotated[Path, typer.Option(help="Their image folder (file_name is relative to it).")]
BackendOpt = Annotated[str, typer.Option(help="auto (CPU: ONNX Runtime on an export cached once per checkpoint; GPU: PyTorch), torch or onnx (an .onnx file).")]


@app.command()
def infer(
    source: Annotated[list[str], typer.Argument(help="Image, folder, glob ('imgs/*.jpg'), video file or webcam index; or several images, folders and globs (e.g. imgs/*.jpg unquoted), taken as one set.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Annotated image, folder or video (.mp4).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Images: COCO results JSON, or with .jsonl one resumable line per image; video: one record per frame, JSON Lines for .jsonl, a JSON array for .json.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Pose model name (see 'greitpose info'); checked against --weights. Default greit-hrnet-18.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Pose weights (.pt checkpoint or .onnx); default <model>-coco-HxW.")] = None,
    preset: Annotated[Optional[str], typer.Option(help=f"Speed/accuracy settings: {PRESET_HELP}. Default: {presets.IMAGE_DEFAULT} for images, {presets.VIDEO_DEFAULT} for video and webcam. The options below override it.")] = None,
    input_size: Annotated[Optional[str], typer.Option(help="HEIGHTxWIDTH, for the default weights name (default: the preset's).")] = None,
    detector: Annotated[str, typer.Option(help="YOLO weights (.pt/.onnx path or name), or 'none' for whole-image boxes.")] = "yolo11n.pt",
    det_conf: Annotated[float, typer.Option(help=helps("det_conf", "Detector confidence threshold"))] = 0.25,
    det_iou: Annotated[float, typer.Option(help=helps("det_iou", "Detector NMS IoU threshold"))] = 0.7,
    max_people: Annotated[int, typer.Option(help=helps("max_people", "At most this many people per frame"))] = 100,
    det_every: Annotated[Optional[int], typer.Option(help=helps("det_every", "Video: run the detector every N frames and follow people by their keypoints in between (at once again when someone is lost); IDs as with --track; default: the preset's"))] = None,
    det_size: Annotated[Optional[int], typer.Option(help=helps("det_size", "Detector input size in px; smaller is faster and finds fewer small people (default: the preset's)"))] = None,
    offline: Annotated[bool, typer.Option("--offline", help=f"Never fetch a missing detector (also ${OFFLINE_VAR}=1).")] = False,
    backend: BackendOpt = "auto",
    device: Device = "auto",
    half: Annotated[Optional[bool], typer.Option("--half/--no-half", help="fp16 (default: on for CUDA).")] = None,
    flip: Annotated[Optional[bool], typer.Option("--flip/--no-flip", help="Flip-test averaging (default: the preset's).")] = None,
    decode: DecodeOpt = "quarter",
    recursive: Annotated[bool, typer.Option("--recursive", "-r", help="Look into sub-folders.")] = False,
    track: Annotated[bool, typer.Option(help="Person IDs across video frames (ByteTrack).")] = False,
    smooth: Annotated[bool, typer.Option(help="One-Euro smoothing of keypoints per track (implies --track).")] = False,
    kpt_thr: Annotated[float, typer.Option(help=helps("kpt_thr", "Draw keypoints scoring above this"))] = 0.3,
    radius: Annotated[int, typer.Option(help=helps("radius", "Keypoint radius in px"))] = 4,
    thickness: Annotated[int, typer.Option(help=helps("thickness", "Line thickness in px"))] = 2,
    no_boxes: Annotated[bool, typer.Option("--no-boxes", help="Do not draw person boxes.")] = False,
    batch_frames: Annotated[int, typer.Option(help=helps("batch_frames", "Frames batched into one pose forward pass"))] = 4,
    max_frames: Annotated[Optional[int], typer.Option(help=helps("max_frames", "Stop after this many frames"))] = None,
    show: Annotated[bool, typer.Option(help="Show frames in a window (q to quit).")] = False,
    workers: Annotated[Optional[int], typer.Option(help=helps("infer_workers", "Images: processes sharing the folder, each with its own models and a share of the cores (default 1); with --ray, actors (default: one per cluster CPU)"))] = None,
    ray: Annotated[Optional[str], typer.Option(help="Images with --json X.jsonl: run on Ray Data, 'local' (a Ray instance on this machine), 'auto' (the running cluster) or ray://HEAD:10001; needs greitpose[ray].")] = None,
    coco_dataset: Annotated[Optional[Path], typer.Option(help="Images: also write a COCO keypoint dataset (needs --json X.jsonl), to correct in CVAT/Label Studio and train on.")] = None,
) -> None:
    """Detect people and estimate their poses in images, folders, videos or a webcam."""
    from greitpose.draw import DrawStyle
    from greitpose.estimator import PoseEstimator, check_settings
    from greitpose.infer import check_show, run
    from greitpose.models import parse_input_size
    from greitpose.outputs import check_outputs, is_lines
    from greitpose.sources import VideoSource, open_source

    if out is None and json_out is None and not show:
        raise GreitposeError("nothing to write: give --out, --json or --show")
    if show:
        check_show()
    # everything the user typed is checked before any model loads (that takes seconds)
    set_offline(offline)
    limits.check(det_every=det_every, det_size=det_size, batch_frames=batch_frames, max_frames=max_frames,
                 infer_workers=workers)
    style = DrawStyle(kpt_thr, radius, thickness, not no_boxes)
    size = parse_input_size(input_size) if input_size else None
    if preset is not None:
        presets.get(preset, False)  # an unknown name is refused before the source is opened
    src = open_source(source, recursive)
    chosen = presets.resolve(preset, src.is_video, detector != "none", size, flip, det_size, det_every)
    check_settings(detector, det_conf, det_iou, max_people, track or smooth, chosen["det_every"], chosen["det_size"],
                   decode)
    check_outputs(src, out, json_out)
    if coco_dataset is not None and (src.is_video or not is_lines(json_out)):
        raise GreitposeError("--coco-dataset labels images: give an image source and --json RESULTS.jsonl "
                             "(the per-image results it is made from)")
    if coco_dataset is not None:
        from greitpose.writers import refuse_overwrite

        refuse_overwrite(coco_dataset, [json_out], "the results", "--coco-dataset")
    settings = dict(model=model, weights=weights, detector=detector, backend=backend, device=device, half=half,
                    det_conf=det_conf, det_iou=det_iou, max_people=max_people, track=track, smooth=smooth, decode=decode,
                    **chosen)
    if ray is not None:
        summary, keypoints = _infer_on_ray(src, settings, out, json_out, show, ray, workers, batch_frames)
    else:
        estimator = PoseEstimator(**settings)
        if isinstance(src, VideoSource) and src.live:
            _first_signal_ends(src)
        summary = run(src, estimator, out, json_out, recursive, style, batch_frames, max_frames, show, console,
                      workers=workers or 1)
        keypoints = estimator.keypoints
    for note in summary.notes:
        console.print(f"note: {note}", highlight=False)
    console.print(summary.line(), highlight=False, soft_wrap=True)
    if coco_dataset is not None and json_out is not None:
        from greitpose.batch import coco_dataset_from_lines

        images, people = coco_dataset_from_lines(json_out, coco_dataset, keypoints, kpt_thr)
        console.print(f"COCO dataset: {images} images, {people} people -> {coco_dataset}", highlight=False)


def _infer_on_ray(src: Source, settings: dict[str, Any], out: Path | None, json_out: Path | None, show: bool,
                  address: str, workers: int | None, batch_frames: int) -> tuple[Summary, KeypointSet]:
    """`infer --ray`: the folder job on Ray Data; the weights are resolved here, so that every
    actor loads the same file."""
    from greitpose.backends import load_backend
    from greitpose.estimator import pose_weights
    from greitpose.infer import warner
    from greitpose.outputs import is_lines, note_left_out
    from greitpose.ray_job import run_on_ray

    if src.is_video or out is not None or show or not is_lines(json_out):
        raise GreitposeError("--ray runs folders of images into --json RESULTS.jsonl (no --out, --show or video)")
    note_left_out(src, console)
    path, expect = pose_weights(settings["model"], settings["weights"], settings["input_size"], settings["backend"])
    keypoints = load_backend(path, "onnx" if path.suffix == ".onnx" else "torch", "cpu", expect_model=expect).keypoints
    settings = {**settings, "weights": str(path.resolve())}
    if settings["detector"] not in (None, "none"):
        from greitpose.weights import find_weights

        try:
            settings["detector"] = str(find_weights(settings["detector"]).resolve())
        except GreitposeError:
            pass  # a bare name each actor fetches (or reports missing) itself
    return run_on_ray(src, settings, json_out, address, workers, batch_frames, console, warner(console)), keypoints


@app.command()
def convert(
    lines: Annotated[Path, typer.Argument(help="Results JSON Lines written by 'infer FOLDER --json X.jsonl' (or its .partial file mid-run).")],
    coco: Annotated[Optional[Path], typer.Option("--coco", help="COCO keypoint results JSON to write.")] = None,
    coco_dataset: Annotated[Optional[Path], typer.Option(help="COCO keypoint dataset (images, annotations, categories) to write, for annotation tools and 'greitpose train'.")] = None,
    kpt_thr: Annotated[float, typer.Option(help=helps("kpt_thr", "Dataset: keypoints scoring under this are unlabelled"))] = 0.3,
) -> None:
    """COCO keypoint results or a COCO keypoint dataset from a folder run's JSON Lines, at any time."""
    from greitpose.batch import coco_dataset_from_lines, coco_results_from_lines
    from greitpose.writers import refuse_overwrite

    limits.check(kpt_thr=kpt_thr)
    if coco is None and coco_dataset is None:
        raise GreitposeError("nothing to write: give --coco and/or --coco-dataset")
    if not lines.is_file():
        raise GreitposeError(f"{lines} does not exist")
    for option, path in (("--coco", coco), ("--coco-dataset", coco_dataset)):
        if path is not None:
            refuse_overwrite(path, [lines], "the results", option)
    if coco is not None:
        console.print(f"{coco_results_from_lines(lines, coco)} people -> {coco}", highlight=False)
    if coco_dataset is not None:
        images, people = coco_dataset_from_lines(lines, coco_dataset, kpt_thr=kpt_thr)
        console.print(f"{images} images, {people} people -> {coco_dataset}", highlight=False)


@app.command()
def label(
    ann: Annotated[Path, typer.Argument(help="COCO keypoint annotations (17 COCO keypoints) to add to.")],
    images: AnnImages,
    teacher: Annotated[Path, typer.Option(help="YOLO pose model (.pt) that reads the unlabelled people.")],
    out: Annotated[Path, typer.Option("--out", help="New annotation file: all of ANN plus the teacher's people.")],
    sources: Annotated[Optional[str], typer.Option(help="Only images of these annotation sources, 'a,b' (default: all).")] = None,
    size: Annotated[int, typer.Option(help=helps("teacher_size", "Whole-image reading size"))] = 640,
    zoom_size: Annotated[int, typer.Option(help=helps("zoom_size", "Second reading of a square around each person at this size, 0: off"))] = 384,
    box_conf: Annotated[float, typer.Option(help=helps("box_conf", "People the teacher is less sure of are left out"))] = 0.5,
    kpt_conf: Annotated[float, typer.Option(help=helps("kpt_conf", "Keypoints under this stay unlabelled"))] = 0.5,
    min_keypoints: Annotated[int, typer.Option(help=helps("min_keypoints", "Fewer confident keypoints: person left out"))] = 6,
    workers: Annotated[int, typer.Option(help=helps("label_workers", "Processes reading images"))] = 1,
    mirror_agree: Annotated[float, typer.Option(help=helps("mirror_agree", "Teacher keypoints (new and already in ANN) whose reading of the mirrored person agrees less (OKS term) become unlabelled; 0: off, 0.7 measured"))] = 0.0,
    disputed_weight: Annotated[float, typer.Option(help=helps("disputed_weight", "With --mirror-agree: disputed teacher keypoints keep their label at this training weight ('keypoint_weights') instead of losing it; 0: they lose it"))] = 0.0,
    add: Annotated[bool, typer.Option("--add/--no-add", help="Add the people ANN leaves out (--no-add: only the --mirror-agree check).")] = True,
) -> None:
    """Teacher labels for the people an annotation file leaves unlabelled, as a new source
    ('<source>-others', label 'teacher') in a new file for 'greitpose train'; with
    --mirror-agree, teacher keypoints that the teacher does not confirm on the mirrored
    person lose their label (or, with --disputed-weight, keep it at a lower training weight)."""
    from greitpose.train.teacher_labels import TeacherSettings, add_teacher_labels, disputed_fate

    limits.check(teacher_size=size, zoom_size=zoom_size, box_conf=box_conf, kpt_conf=kpt_conf,
                 min_keypoints=min_keypoints, label_workers=workers, mirror_agree=mirror_agree,
                 disputed_weight=disputed_weight)
    settings = TeacherSettings(size=size, zoom_size=zoom_size, box_conf=box_conf, kpt_conf=kpt_conf,
                               min_keypoints=min_keypoints, mirror_agree=mirror_agree,
                               disputed_weight=disputed_weight, add=add)
    chosen = set(_csv(sources)) if sources else None
    counts = add_teacher_labels(ann, images, teacher, out, chosen, settings, console, workers)
    checked = (f", {counts['disputed']} teacher keypoints of {counts['checked']} people {disputed_fate(settings)}"
               if mirror_agree else "")
    console.print(f"{counts['images']} images read, {counts['added']} people added{checked}, "
                  f"{counts['annotations']} annotations -> {out}", highlight=False)


@app.command()
def fill(
    ann: Annotated[Path, typer.Argument(help="COCO keypoint annotations with unlabelled (v=0) keypoints, e.g. a 'label' output.")],
    images: AnnImages,
    out: Annotated[Path, typer.Option("--out", help="New annotation file: all of ANN with the confident readings filled in.")],
    min_score: Annotated[float, typer.Option(help=helps("min_score", "Keypoint score (flip-averaged heatmap peak) a reading needs to become a label"))] = 0.5,
    labels: Annotated[str, typer.Option(help="Annotation kinds (their 'label') to fill, 'a,b'.")] = "teacher,human+teacher",
    weights: Annotated[Optional[str], typer.Option(help="Pose weights that read each person from their box (default: the shipped 256x192 file).")] = None,
    backend: BackendOpt = "auto",
    device: Device = "auto",
) -> None:
    """Fill the unlabelled keypoints of teacher-labelled people with a trained pose model's
    confident readings (inside the photo only; labels already there stay), for 'greitpose train'."""
    from greitpose.backends import load_backend
    from greitpose.estimator import pose_weights
    from greitpose.train.keypoint_fill import FillSettings, fill_labels

    limits.check(min_score=min_score)
    settings = FillSettings(min_score, tuple(_csv(labels)))
    path, expect = pose_weights(None, weights, (256, 192), backend)
    counts = fill_labels(ann, images, lambda: load_backend(path, backend, device, expect_model=expect), out,
                         settings, console)
    console.print(f"{counts['people']} people in {counts['images']} images: {counts['filled']} of "
                  f"{counts['unlabelled']} unlabelled keypoints filled -> {out}", highlight=False)


@app.command()
def pack(
    ann: Annotated[Path, typer.Argument(help="COCO keypoint annotations to pack (e.g. a 'label' output).")],
    images: AnnImages,
    out: Annotated[Path, typer.Option("--out", help="New (or empty) pack folder: train.json.gz and images/.")],
    sources: Annotated[Optional[str], typer.Option(help="Only persons of these annotation sources, 'a,b' (default: all).")] = None,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH of the model the pack is for: its aspect shapes the crops.")] = "256x192",
    margin: Annotated[float, typer.Option(help=helps("margin", "Region kept around each training crop's box, for scale, shift and rotation augmentation"))] = 1.5,
    max_height: Annotated[int, typer.Option(help=helps("max_height", "That box's height in the pack at most, px; larger people are shrunk"))] = 192,
    quality: Annotated[int, typer.Option(help=helps("quality", "Encoder quality"))] = 80,
    image_format: Annotated[str, typer.Option("--format", help="webp (smallest), jpg or png (lossless).")] = "webp",
) -> None:
    """Cut every labelled person out of its photo into a small training pack ('train --train-ann
    OUT/train.json.gz'), to train where the photos cannot go (docs/training.md)."""
    from greitpose.models import parse_input_size
    from greitpose.train.crop_pack import PACK_FILE, PackSettings, pack_crops

    height, width = parse_input_size(input_size)
    settings = PackSettings(width / height, margin, max_height, quality, image_format)
    counts = pack_crops(ann, images, out, settings, set(_csv(sources)) if sources else None, console)
    console.print(f"{counts['persons']} persons from {counts['photos']} photos, "
                  f"{counts['bytes'] / 2**20:.1f} MiB of images -> {out / PACK_FILE}", highlight=False)


def _stats_table(title: str, columns: dict[str, dict[str, float | None]], digits: int = 3,
                 rows: str = "metric") -> Table:
    """One row per metric, one column per model scored ("-" where a model has no value)."""
    table = Table(title=title, min_width=len(title) + 4)
    table.add_column(rows)
    for name in columns:
        table.add_column(name, justify="right")
    first = next(iter(columns.values()))
    for metric in first:
        table.add_row(metric, *("-" if c.get(metric) is None else f"{c[metric]:.{digits}f}"
                                for c in columns.values()))
    return table


@app.command("eval")
def evaluate(
    dataset: Annotated[str, typer.Option(help="coco (any COCO-format keypoint set) or mpii.")] = "coco",
    data_root: Annotated[Optional[Path], typer.Option(help="Folder with the annotation json and images; default: $GREITPOSE_DATA/NAME, ./NAME or ~/datasets/NAME (COCO val2017 is fetched there once when absent).")] = None,
    images: Annotated[Optional[Path], typer.Option(help="Image folder (overrides the data root layout).")] = None,
    ann: Annotated[Optional[Path], typer.Option(help="Annotation json (overrides the data root layout).")] = None,
    gt_boxes: Annotated[bool, typer.Option("--gt-boxes", help="Person boxes from the ground truth (default).")] = False,
    boxes: Annotated[Optional[Path], typer.Option(help="Person detections, COCO results format.")] = None,
    detector: Annotated[Optional[str], typer.Option(help="Detect people with this YOLO model instead.")] = None,
    det_size: DetSize = 640,
    model: Annotated[Optional[str], typer.Option(help="Pose model name; checked against --weights. Default greit-hrnet-18.")] = None,
    weights: Annotated[Optional[str], typer.Option(help="Pose weights (.pt or .onnx).")] = None,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH, for the default weights name.")] = "256x192",
    backend: BackendOpt = "auto",
    device: Device = "auto",
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Flip-test averaging.")] = True,
    decode: DecodeOpt = "quarter",
    limit: Annotated[Optional[int], typer.Option(help=helps("limit", "Evaluate the first N images (COCO) or people (MPII)"))] = None,
    flip_pairs: Annotated[Optional[str], typer.Option(help="Left/right pairs 'a,b;c,d' for own datasets.")] = None,
    sigmas: Annotated[Optional[str], typer.Option(help="Comma-separated OKS sigmas for own datasets.")] = None,
    threshold: Annotated[float, typer.Option(help=helps("threshold", "MPII: PCKh threshold"))] = 0.5,
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the metrics as JSON.")] = None,
    save_predictions: Annotated[Optional[Path], typer.Option(help="Write the predictions (COCO results / MPII json).")] = None,
    offline: Annotated[bool, typer.Option("--offline", help=f"Never fetch COCO or a detector (also ${OFFLINE_VAR}=1).")] = False,
    peer: Annotated[Optional[Path], typer.Option(help="Also score this one-stage YOLO pose model (whole images, its own boxes, at --det-size) on the same images, side by side.")] = None,
    per_keypoint: Annotated[bool, typer.Option("--per-keypoint", help="COCO: also print each keypoint's mean OKS term over the people matched (1 = exact; always in --json).")] = False,
) -> None:
    """COCO keypoint AP/AR (pycocotools) or MPII PCKh of a pose model."""
    from greitpose.evaluation.job import EvalJob, run_eval

    set_offline(offline)
    report = run_eval(EvalJob(
        dataset=dataset, data_root=data_root, images=images, ann=ann, gt_boxes=gt_boxes, boxes=boxes,
        detector=detector, det_size=det_size, model=model, weights=weights, input_size=input_size,
        backend=backend, device=device, flip=flip, decode=decode, limit=limit, flip_pairs=flip_pairs,
        sigmas=sigmas, threshold=threshold, json_path=json_path, save_predictions=save_predictions,
        peer=peer), console)
    out.print(_stats_table(report.title, report.columns, report.digits))
    if per_keypoint and report.per_keypoint:
        people = " / ".join(str(n) for n in report.matched.values())
        out.print(_stats_table(f"each keypoint's mean OKS term over the people matched ({people})",
                               report.per_keypoint, rows="keypoint"))


@app.command()
def export(
    onnx: Annotated[bool, typer.Option("--onnx", help="Export the pose model to ONNX.")] = False,
    weights: Annotated[Optional[str], typer.Option(help="Pose weights (.pt); default <model>-coco-HxW.pt.")] = None,
    model: Annotated[Optional[str], typer.Option(help="Pose model name; checked against --weights. Default greit-hrnet-18.")] = None,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH, for the default weights name.")] = "256x192",
    output: Annotated[Optional[Path], typer.Option("--out", "-o", help="ONNX file; default beside the weights.")] = None,
    dynamic_batch: Annotated[bool, typer.Option("--dynamic-batch/--fixed-batch", help="Any batch size (fastest on CPUs: batches are split across cores), or a fixed one.")] = True,
    batch: Annotated[Optional[int], typer.Option(help="Fix the graph's batch size to this (implies --fixed-batch).")] = None,
    fp16: Annotated[bool, typer.Option(help="Half-precision weights and activations (for GPUs).")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset.")] = 17,
    int8: Annotated[bool, typer.Option(help="Also write an int8-quantized model (calibrated on crops).")] = False,
    images: Annotated[Optional[Path], typer.Option(help="Image or folder for parity crops and int8 calibration.")] = None,
    tolerance: Annotated[Optional[float], typer.Option(help="Max |heatmap diff| allowed (default 1e-4 fp32, 1e-2 fp16).")] = None,
    detector: Annotated[Optional[str], typer.Option(help="Also export this YOLO .pt to ONNX (Ultralytics).")] = None,
) -> None:
    """Export to ONNX with metadata, then check parity with PyTorch."""
    from greitpose import checkpoint
    from greitpose.estimator import pose_weights
    from greitpose.export import (
        export_detector,
        export_onnx,
        parity_check,
        quantize_int8,
        sample_crops,
    )
    from greitpose.models import parse_input_size
    from greitpose.weights import find_weights

    if not onnx and detector is None:
        raise GreitposeError("nothing to export: give --onnx and/or --detector")
    limits.check(batch=batch, opset=opset, tolerance=tolerance)
    if images is not None and not images.exists():
        raise GreitposeError(f"{images} does not exist")
    if output is not None and output.suffix.lower() != ".onnx":
        # an ONNX file under another name would be taken for a checkpoint, or replace one
        raise GreitposeError(f"--out {output}: an ONNX export needs a .onnx file name")
    if onnx:
        path, expect = pose_weights(model, weights, parse_input_size(input_size))
        if path.suffix == ".onnx":
            raise GreitposeError(f"{path} is already ONNX; export takes a .pt checkpoint")
        pose = checkpoint.load(path, expect_model=expect)
        target = output or path.with_suffix(".onnx")
        fixed = batch or (None if dynamic_batch else 1)
        export_onnx(pose, target, fixed, fp16, opset)
        crops = sample_crops(pose, images, count=fixed or 8)
        parity = parity_check(pose, target, crops)
        limit = tolerance if tolerance is not None else (1e-2 if fp16 else 1e-4)
        console.print(f"parity on {parity.describe()}", highlight=False)
        if parity.max_heatmap_diff > limit:
            target.unlink(missing_ok=True)
            raise GreitposeError(f"ONNX output differs from PyTorch by {parity.max_heatmap_diff:.2e} "
                                 f"(> {limit:.0e}); {target} removed")
        out.print(str(target))
        if int8:
            q_path = target.with_name(target.stem + "-int8.onnx")
            calibration = sample_crops(pose, images, count=32, seed=1)
            console.print(f"int8: calibrating on {len(calibration)} crops and quantizing (a minute or more on a CPU)")
            with console.status("quantizing"):
                quantize_int8(target, q_path, calibration)
            q = parity_check(pose, q_path, crops)
            console.print(f"int8 accuracy change on {q.describe()}", highlight=False)
            out.print(str(q_path))
    if detector is not None:
        out.print(str(export_detector(find_weights(detector, "detector weights"))))


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@app.command()
def benchmark(
    models: Annotated[str, typer.Option(help="Comma-separated model names.")] = "greit-hrnet-18,greit-hrnet-30,lite-hrnet-18,lite-hrnet-30",
    batches: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,32",
    backends: Annotated[str, typer.Option(help="torch and/or onnx.")] = "torch,onnx",
    device: Device = "cpu",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (default: all cores).")] = None,
    seconds: Annotated[float, typer.Option(help=helps("seconds", "Time spent per measurement"))] = 2.0,
    video: Annotated[Optional[str], typer.Option(help="Video for the end-to-end figure (default: synthetic frames).")] = None,
    frames: Annotated[int, typer.Option(help=helps("frames", "Frames in the end-to-end run"))] = 20,
    people: Annotated[int, typer.Option(help=helps("people", "People (boxes) per frame in the end-to-end run"))] = 4,
    train_batch: Annotated[int, typer.Option(help="Also measure training images/s at this batch (0: skip).")] = 0,
    input_size: Annotated[str, typer.Option(help="HEIGHTxWIDTH.")] = "256x192",
    json_path: Annotated[Optional[Path], typer.Option("--json", help="Write the report as JSON.")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="A short run: greit-hrnet-18, batches 1 and 8, 0.5 s per figure, 5 frames.")] = False,
    peer: Annotated[Optional[Path], typer.Option(help="Instead: frames/s of greitpose against this YOLO pose model's own predictor on --video.")] = None,
    detector: Annotated[Optional[str], typer.Option(help="With --peer: greitpose's detector; default the peer file.")] = None,
    det_every: Annotated[int, typer.Option(help=helps("det_every", "With --peer: detector every N frames"))] = 1,
    det_size: DetSize = 640,
    flip: Annotated[bool, typer.Option("--flip/--no-flip", help="With --peer: flip test.")] = True,
) -> None:
    """Per-crop latency, crops/s, end-to-end frames/s and peak memory, per model and backend."""
    from greitpose import benchmark as bench
    from greitpose.models import get_config, parse_input_size

    if peer is not None:
        _benchmark_peer(peer, video, detector, det_every, det_size, flip, frames, parse_input_size(input_size),
                        json_path)
        return

    if quick:
        models, batches, seconds, frames = "greit-hrnet-18", "1,8", 0.5, min(frames, 5)
    limits.check(threads=threads, seconds=seconds, frames=frames, people=people, train_batch=train_batch)

    names = [get_config(m).name for m in _csv(models)]
    sizes = [int(b) for b in _csv(batches)]
    wanted = _csv(backends)
    if not names or not sizes or any(b < 1 for b in sizes) or not set(wanted) <= {"torch", "onnx"}:
        raise GreitposeError("benchmark needs models, batch sizes >= 1 and backends among torch,onnx")
    if json_path is not None:
        from greitpose.writers import ensure_writable

        ensure_writable(json_path)
    # one line per measurement as it starts: a full run takes minutes
    report = bench.run(names, sizes, wanted, device, threads, seconds, video, frames, people,
                       train_batch, parse_input_size(input_size),
                       progress=lambda msg: console.print(f"measuring {msg}", highlight=False))
    table = Table(title=f"pose latency on {report.device}, {report.threads} threads, "
                        f"{report.input_size[0]}x{report.input_size[1]}, no flip")
    for col in ("model", "backend", "batch", "ms/crop", "crops/s"):
        table.add_column(col, justify="left" if col in ("model", "backend") else "right")
    for r in report.latency:
        table.add_row(r.model, r.backend, str(r.batch), f"{r.ms_per_crop:.2f}", f"{r.crops_per_s:.1f}")
    out.print(table)
    e2e = Table(title=f"end to end (crop + forward + flip test + decode), {people} people/frame")
    for col in ("model", "backend", "frames/s"):
        e2e.add_column(col)
    for r in report.end_to_end:
        e2e.add_row(r["model"], r["backend"], f"{r['frames_per_s']:.1f}")
    out.print(e2e)
    for r in report.training:
        out.print(f"training {r['model']}: {r['images_per_s']:.1f} images/s at batch {r['batch']}")
    memory = f"peak memory: {report.peak_rss_mb:.0f} MB RSS"
    if report.peak_cuda_mb is not None:
        memory += f", {report.peak_cuda_mb:.0f} MB CUDA"
    out.print(memory)
    if json_path is not None:
        from greitpose.writers import write_json

        write_json(json_path, report.to_dict())


def _benchmark_peer(peer: Path, video: str | None, detector: str | None, det_every: int, det_size: int,
                    flip: bool, frames: int, input_size: tuple[int, int], json_path: Path | None) -> None:
    """greitpose (default backend: ONNX Runtime on a CPU) against a one-stage peer on the same
    clip (`benchmark --peer`)."""
    from greitpose.estimator import PoseEstimator
    from greitpose.peer import check_peer_file, compare
    from greitpose.sources import open_source

    limits.check(frames=frames, det_every=det_every, det_size=det_size)
    if video is None:
        raise GreitposeError("--peer needs --video: both are measured on the same clip")
    check_peer_file(peer)
    if json_path is not None:
        from greitpose.writers import ensure_writable

        ensure_writable(json_path)
    src = open_source(video)
    clip = [f.image for f, _ in zip(src, range(max(frames, 3)))]
    estimator = PoseEstimator(detector=detector or str(peer), flip=flip, det_every=det_every, det_size=det_size,
                              input_size=input_size)
    settings = (f"{type(estimator.backend).__name__}, {input_size[0]}x{input_size[1]}, "
                f"detector {type(estimator.detector).__name__} at {det_size}, det-every {det_every}, "
                f"flip {'on' if flip else 'off'}")
    console.print(f"measuring greitpose ({settings}) and {peer.name} on {len(clip)} frames of {video}",
                  highlight=False, soft_wrap=True)
    result = compare(peer, estimator, clip)
    result.update(settings=settings, det_every=det_every, det_size=det_size, flip=flip)
    out.print(f"{peer.name}: {result['peer_fps']:.2f} frames/s; greitpose: {result['greitpose_fps']:.2f} "
              f"frames/s; ratio {result['ratio']:.2f}x")
    if json_path is not None:
        from greitpose.writers import write_json

        write_json(json_path, result)


def _opt(help_text: str):  # noqa: ANN202 - a typer Option whose "not given" is None
    return typer.Option(help=help_text)


@app.command()
def train(
    config: Annotated[Optional[Path], typer.Option("--config", help="YAML/TOML/JSON file of settings (flags override it).")] = None,
    dataset: Annotated[Optional[str], _opt("coco (any COCO-format keypoint set) or mpii.")] = None,
    train_ann: Annotated[Optional[str], _opt("Training annotations (COCO json or MPII json).")] = None,
    train_images: Annotated[Optional[str], _opt("Training image folder (default: beside the annotations).")] = None,
    val_ann: Annotated[Optional[str], _opt("COCO-format validation annotations for periodic AP.")] = None,
    val_images: Annotated[Optional[str], _opt("Validation image folder.")] = None,
    val_boxes: Annotated[Optional[str], _opt("Validation person detections (COCO results); default GT boxes.")] = None,
    flip_pairs: Annotated[Optional[str], _opt("Left/right keypoint pairs 'a,b;c,d' for own datasets.")] = None,
    source_weights: Annotated[Optional[str], _opt("Sampling weight per annotation 'source': 'name=w,...' (others 1).")] = None,
    model: Annotated[Optional[str], _opt("Model name (default greit-hrnet-18).")] = None,
    input_size: Annotated[Optional[str], _opt("HEIGHTxWIDTH (default 256x192).")] = None,
    init: Annotated[Optional[str], _opt("Warm start from these weights (same model; any input size).")] = None,
    epochs: Annotated[Optional[int], _opt("Epochs (default 210).")] = None,
    batch_size: Annotated[Optional[int], _opt("Batch per process (default 32).")] = None,
    lr: Annotated[Optional[float], _opt("Peak learning rate (default 2e-3).")] = None,
    min_lr: Annotated[Optional[float], _opt("Final learning rate (default 2e-5).")] = None,
    schedule: Annotated[Optional[str], _opt("cosine or step (default cosine).")] = None,
    lr_steps: Annotated[Optional[str], _opt("Epochs of x0.1 drops for the step schedule.")] = None,
    warmup_steps: Annotated[Optional[int], _opt("Linear warm-up steps (default 500).")] = None,
    sigma: Annotated[Optional[float], _opt("Gaussian target sigma in heatmap px (default 2).")] = None,
    augment: Annotated[Optional[bool], typer.Option("--augment/--no-augment", help="Rotation, scale, flip, half-body.")] = None,
    shift: Annotated[Optional[float], _opt("Crop centre jitter, fraction of the crop, 0 to 0.45 (default 0).")] = None,
    occlusion: Annotated[Optional[float], _opt("Probability of a random occluding block, 0 to 1 (default 0).")] = None,
    paste: Annotated[Optional[float], _opt("Probability of another training person pasted beside and partly over the crop's own (crowds), 0 to 1 (default 0).")] = None,
    photometric: Annotated[Optional[float], _opt("Probability of random brightness, contrast and saturation (a quarter of those also slightly blurred), 0 to 1 (default 0).")] = None,
    truncate: Annotated[Optional[float], _opt("Probability of the person cut off by the photo's edge (the box shrunk to the part in view, the joints past the edge unlabelled, as COCO's people at the frame), 0 to 1 (default 0).")] = None,
    free_sides: Annotated[Optional[str], _opt("Annotation sources whose left/right limb labels are not trusted, 'a,b': the loss takes the label's best side assignment for them (COCO keypoints; docs/training.md).")] = None,
    hard_keypoints: Annotated[Optional[int], _opt("Online hard keypoint mining: each sample's loss over its N keypoints of largest loss only, e.g. 8 of COCO's 17 (default 0: all).")] = None,
    joint_weights: Annotated[Optional[str], _opt("Loss weight per keypoint, 'name=w,...' (others 1); a name without its side stands for both, e.g. 'nose=2,eye=2' (COCO's OKS forgives face points least).")] = None,
    amp: Annotated[Optional[str], _opt("auto, bf16, fp16 or off (CUDA only).")] = None,
    channels_last: Annotated[Optional[bool], typer.Option("--channels-last/--no-channels-last", help="channels_last memory format.")] = None,
    clip_grad: Annotated[Optional[float], _opt("Max gradient norm (0: off).")] = None,
    ema: Annotated[Optional[float], _opt("EMA decay, e.g. 0.9998 (0: off).")] = None,
    workers: Annotated[Optional[int], _opt("DataLoader workers per training process (default: the cores shared among the training processes, at most 8).")] = None,
    procs: Annotated[Optional[int], _opt("Data-parallel training processes on this machine, each with --batch-size (default 1; on a CPU, one per core is fastest).")] = None,
    device: Annotated[Optional[str], _opt("auto, cpu, cuda or cuda:N.")] = None,
    seed: Annotated[Optional[int], _opt("Random seed.")] = None,
    val_every: Annotated[Optional[int], _opt("Validate every N epochs.")] = None,
    save_every_steps: Annotated[Optional[int], _opt("Keep a resumable state every N steps.")] = None,
    max_steps: Annotated[Optional[int], _opt("Stop after N steps in all (0: no limit).")] = None,
    minutes: Annotated[Optional[float], _opt("Wall-clock budget: the schedule is fitted to end when it runs out, --epochs at most (0: off).")] = None,
    log_every: Annotated[Optional[int], _opt("Log every N steps.")] = None,
    out_dir: Annotated[Optional[str], typer.Option("--out", help="Run folder (default runs/train).")] = None,
    resume: Annotated[Optional[str], _opt("Resume from a state file (state.pt or state-stepN.pt).")] = None,
) -> None:
    """Train a pose model by the paper's recipe; --procs N (or torchrun) for several processes."""
    flags = {k: v for k, v in locals().items() if k not in ("config", "out_dir")}
    flags["out"] = out_dir
    from greitpose.train import distributed, launch
    from greitpose.train.config import resolve

    run_dir = launch.train(resolve(config, flags), console)
    if distributed.is_main_process():
        console.print(f"done: {run_dir / 'last.pt'}", highlight=False)


@app.command()
def average(
    weights: Annotated[list[Path], typer.Argument(help="Two or more weights files of the same model.")],
    out: Annotated[Path, typer.Option("--out", help="Weights file to write.")],
    shares: Annotated[Optional[str], typer.Option(help="Each file's share of the mean, e.g. 0.75,0.25 (default: even).")] = None,
    recalibrate: Annotated[Optional[Path], typer.Option(help="Re-estimate BatchNorm statistics on the training set this settings file names (a run's config.yaml, or any 'train --config' file).")] = None,
    recalibrate_samples: Annotated[int, typer.Option(help=helps("recalibrate_samples", "Training crops for --recalibrate"))] = 4800,
) -> None:
    """The mean of checkpoints of one model (e.g. two stages of a training lineage)."""
    from greitpose.train.averaging import average_weights, parse_shares
    from greitpose.train.config import resolve
    from greitpose.writers import ensure_writable, refuse_overwrite

    limits.check(recalibrate_samples=recalibrate_samples)
    refuse_overwrite(out, weights, "weights")
    ensure_writable(out)
    settings = resolve(recalibrate, {}) if recalibrate is not None else None
    written = average_weights(weights, out, parse_shares(shares, len(weights)) if shares else None, settings,
                              recalibrate_samples, console)
    console.print(f"{len(weights)} files averaged -> {written}", highlight=False)


class Interrupted(BaseException):
    """SIGINT or SIGTERM: unwinds every `finally` (partial outputs are removed) and is caught
    by nothing but `main`, so libraries cannot swallow it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, _frame: object) -> None:
    signal.signal(signum, signal.SIG_IGN)  # a second signal must not interrupt the clean-up
    raise Interrupted(signum)


def _first_signal_ends(src: VideoSource) -> None:
    """A webcam has no end but the user's: the first Ctrl-C (or SIGTERM) ends its stream and the
    outputs are finished as at a video's end; a second one abandons them, as for a file."""
    def first(signum: int, _frame: object) -> None:
        src.stop()
        console.print(f"{signal.Signals(signum).name}: finishing the outputs (again to abandon them)",
                      highlight=False)
        for again in (signal.SIGINT, signal.SIGTERM):
            signal.signal(again, _raise_interrupted)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, first)


def _one_line_summaries() -> None:
    """The command list shows each command's first docstring paragraph, and rich help keeps its
    line breaks there (mid-sentence); give it as one line instead."""
    import inspect

    for command in app.registered_commands:
        doc = inspect.getdoc(command.callback) or ""
        command.short_help = command.short_help or " ".join(doc.split("\n\n")[0].split())


_one_line_summaries()


def quiet_third_party() -> None:
    """Keep OpenCV's and FFmpeg's own log lines off the terminal (before cv2 is imported);
    `--verbose` or GREITPOSE_VERBOSE=1 keeps them."""
    if "--verbose" in sys.argv[1:] or os.environ.get("GREITPOSE_VERBOSE") == "1":
        return
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_VIDEOIO_DEBUG", "0")
    os.environ.setdefault("YOLO_VERBOSE", "False")


def main() -> None:
    """Entry point: user errors, bad options and interruptions become one line on stderr and a
    non-zero exit (1 errors, 2 usage, 130 Ctrl-C, 143 SIGTERM), never a traceback."""
    quiet_third_party()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _raise_interrupted)
    try:
        code = app(standalone_mode=False)
    except GreitposeError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.exceptions.TyperException as err:  # click's usage and parameter errors
        ctx = getattr(err, "ctx", None)
        if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
            out.print(ctx.get_help(), highlight=False)
        else:
            hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            console.print(f"[red]error:[/red] {err.format_message()}{hint}", highlight=False, soft_wrap=True)
        sys.exit(getattr(err, "exit_code", 2))
    except (Interrupted, typer.Abort, KeyboardInterrupt) as err:
        signum = err.signum if isinstance(err, Interrupted) else signal.SIGINT
        console.print(f"interrupted ({signal.Signals(signum).name})", highlight=False)
        sys.exit(128 + signum)
    sys.exit(code if isinstance(code, int) else 0)
