"""The `infer` job: read a source, estimate poses, stream annotated media and JSON to disk."""

from __future__ import annotations

import os
import re
import sys
import time
from contextlib import closing
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from greitpose import limits
from greitpose.batch import ResumableLines, coco_entries, file_sizes, image_record
from greitpose.draw import DrawStyle, draw_poses
from greitpose.errors import GreitposeError
from greitpose.estimator import PoseEstimator
from greitpose.outputs import (
    check_outputs,
    holds_only_drawings,
    is_lines,
    mark_drawings,
    note_left_out,
    out_is_image_file,
)
from greitpose.overlap import WriteBehind
from greitpose.parallel import stream_parallel
from greitpose.progress import progress_bar
from greitpose.results import Poses
from greitpose.sources import (
    Frame,
    ImageSource,
    Source,
    VideoSource,
    open_source,
)
from greitpose.writers import (
    JsonArray,
    JsonLines,
    VideoFile,
    ensure_writable,
    write_image,
)


@dataclass
class Summary:
    frames: int = 0
    people: int = 0
    seconds: float = 0.0
    skipped: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        per = self.people / self.frames if self.frames else 0.0
        text = (f"{self.frames} frame(s), {self.people} people ({per:.1f}/frame), "
                f"{fps:.1f} frames/s")
        if self.skipped:
            text += f", {len(self.skipped)} unreadable skipped"
        if self.outputs:
            text += " -> " + ", ".join(self.outputs)
        return text


def _chunks(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    chunk: list[Frame] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def warner(console: Console) -> Callable[[str], None]:
    """One yellow 'warning:' line per message, never wrapped (paths stay copyable)."""
    return lambda msg: console.print(f"[yellow]warning:[/yellow] {msg}", highlight=False, soft_wrap=True)


def run(source: str | Sequence[str] | Source, estimator: PoseEstimator, out: Path | None = None, json_path: Path | None = None,
        recursive: bool = False, style: DrawStyle = DrawStyle(), batch_frames: int = 4,
        max_frames: int | None = None, show: bool = False, console: Console | None = None,
        warn: Callable[[str], None] | None = None, workers: int = 1) -> Summary:
    """Run pose estimation over `source` (a path, glob or webcam index, several images, folders
    and globs together, or an opened source);
    outputs appear only when complete. Folders may go through `workers` processes."""
    limits.check(batch_frames=batch_frames, max_frames=max_frames, infer_workers=workers)
    if show:
        check_show()
    console = console or Console(stderr=True)
    warn = warn or warner(console)
    summary = Summary()

    def skip(path: Path) -> None:
        summary.skipped.append(str(path))
        warn(f"skipped {path}: not a readable image")

    src = source if isinstance(source, (ImageSource, VideoSource)) else open_source(source, recursive)
    if not src.is_video:
        src.on_skip = skip
    note_left_out(src, console)
    check_outputs(src, out, json_path)
    video_out = json_out = None
    out_is_file = out_is_image_file(src, out)
    if out is not None:
        if src.is_video:
            video_out = VideoFile(out, src.fps, src.size)
        else:
            marks = not out_is_file and holds_only_drawings(out)
            ensure_writable(out, is_dir=not out_is_file)
            if marks:
                mark_drawings(out)
    # folders to JSON Lines: one line per image, resumable after an interruption
    resumable = is_lines(json_path) and not src.is_video
    try:
        if resumable:
            json_out = ResumableLines(json_path, file_sizes(src.paths, src.relative))
            src.paths = [p for p in src.paths if src.relative(p) not in json_out.done]
            if json_out.resumed:
                console.print(json_out.resume_note(len(src.paths)), highlight=False)
        elif json_path is not None:
            json_out = JsonLines(json_path) if is_lines(json_path) else JsonArray(json_path)
        total = len(src) or None
        if max_frames:
            total = min(total or max_frames, max_frames)
        started = time.perf_counter()
        quit_requested: list[bool] = []

        def write(item: tuple[Frame, Poses]) -> None:
            """JSON, drawing and encoding of one frame: behind the networks, in another thread."""
            frame, p = item
            if json_out is not None:
                if resumable:
                    json_out.add(image_record(frame.name, frame.image.shape, p.people()))
                elif src.is_video:
                    json_out.add({"frame": frame.index, "time": round(frame.time, 4), "people": p.people()})
                else:
                    for entry in coco_entries(frame.name, p.people()):
                        json_out.add(entry)
            if out is not None or show:
                drawn = draw_poses(frame.image, p, estimator.keypoints, style)
                if video_out is not None:
                    video_out.write(drawn)
                elif out is not None:
                    write_image(out if out_is_file else out / frame.name, drawn)
                if show and _show(drawn):
                    quit_requested.append(True)

        with progress_bar(console) as progress, WriteBehind(write, threaded=not show) as writer:
            task = progress.add_task(f"pose {src.label}", total=total, info="")
            if workers > 1 and not src.is_video:
                src.paths = src.paths[:max_frames]
                results = stream_parallel(src, estimator.settings, workers, batch_frames)
            else:
                frames = (f for f in src if max_frames is None or f.index < max_frames)
                results = estimator.stream(_chunks(frames, 1 if show else batch_frames))
            with closing(results):  # an early stop ends its threads and processes at once
                for chunk, poses in results:
                    for frame, p in zip(chunk, poses):
                        summary.frames += 1
                        summary.people += len(p)
                        writer.put((frame, p))
                    elapsed = time.perf_counter() - started
                    progress.update(task, advance=len(chunk),
                                    info=f"{summary.frames / max(elapsed, 1e-9):.1f} fps, "
                                         f"{summary.people / max(summary.frames, 1):.1f} people/frame")
                    if quit_requested or (max_frames is not None and summary.frames >= max_frames):
                        break
        summary.seconds = time.perf_counter() - started
        if isinstance(src, VideoSource) and not (quit_requested or src.stopped.is_set()):
            _warn_if_cut_short(src, summary.frames, max_frames, warn)
        if summary.frames == 0 and not (resumable and json_out.resumed):
            raise GreitposeError(f"no readable images in {src.label}")
        if video_out is not None:
            note = video_out.commit(audio_from=src.file if isinstance(src, VideoSource) else None)
            if note:
                summary.notes.append(note)
            summary.outputs.append(str(out))
            video_out = None
        elif out is not None:
            summary.outputs.append(str(out))
        if json_out is not None:
            json_out.commit()
            summary.outputs.append(str(json_path))
            json_out = None
    finally:
        for pending in (video_out, json_out):
            if pending is not None:
                pending.discard()
        if resumable and json_out is not None and json_out.done:
            warn(json_out.kept_note())
    return summary


def _warn_if_cut_short(src: VideoSource, frames: int, max_frames: int | None,
                       warn: Callable[[str], None]) -> None:
    """A video file that stops decoding well before the frame count its header gives is cut
    short or damaged: the outputs hold what was read, and the user hears of the rest. (Counts
    from a header can be a frame or two off, hence the margin.)"""
    if not src.count:
        return
    expected = min(src.count, max_frames or src.count)
    if frames < expected - max(2, expected // 100):
        warn(f"{src.label} ended after {frames} of the {src.count} frames its header gives (cut short "
             f"or damaged?); the outputs hold those {frames}")


def check_show() -> None:
    """`--show` needs a window: an OpenCV built with a GUI and, on Linux, a display. Without them
    OpenCV's Qt aborts the whole process, after everything has loaded, with none of our words."""
    import cv2

    if re.search(r"^\s*GUI:\s*NONE", cv2.getBuildInformation(), re.M):
        raise GreitposeError("--show needs OpenCV with window support; this one has none (a headless "
                             "build): write the result with --out instead")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise GreitposeError("--show needs a display, and this session has none (DISPLAY is not set): "
                             "write the result with --out instead")


def _show(image) -> bool:
    """Display a frame; True when the user pressed q or Esc."""
    import cv2

    cv2.imshow("greitpose", image)
    return (cv2.waitKey(1) & 0xFF) in (ord("q"), 27)
