"""Output files that appear only when complete: everything is written to a temporary name
and renamed at the end; a failed or interrupted run removes its temporary files."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from greitpose.errors import GreitposeError


def partial_path(path: Path) -> Path:
    """Temporary sibling of `path` that keeps its suffix (OpenCV picks formats by suffix)."""
    return path.with_name(f".{path.stem}.partial{path.suffix}")


def refuse_overwrite(out: Path, inputs: Iterable[Path], what: str, option: str = "--out") -> None:
    """An output that is one of the command's own inputs would replace the original with what
    was made from it: refused, whatever the spelling of the path."""
    target = out.resolve()
    if any(target == Path(p).resolve() for p in inputs):
        raise GreitposeError(f"{option} {out} would overwrite {what} it reads; give a new file")


def ensure_writable(path: Path, is_dir: bool = False) -> None:
    """Fail early, with the path in the message, when an output cannot be written."""
    folder = path if is_dir else path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GreitposeError(f"cannot write to {path}: {err.strerror or err}") from None
    if not os.access(folder, os.W_OK) or (path.exists() and not is_dir and not os.access(path, os.W_OK)):
        raise GreitposeError(f"cannot write to {path}: permission denied")
    if path.is_dir() and not is_dir:
        raise GreitposeError(f"cannot write to {path}: it is a folder")


def write_image(path: Path, image: np.ndarray, params: Sequence[int] = ()) -> None:
    """Encode by suffix (with OpenCV's `params`, e.g. a quality) and write atomically."""
    ok, data = cv2.imencode(path.suffix or ".jpg", image, list(params))
    if not ok:
        raise GreitposeError(f"cannot encode an image as '{path.suffix}' for {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(path)
    tmp.write_bytes(data.tobytes())
    os.replace(tmp, path)


class AtomicText:
    """A text file written line by line under a temporary name, renamed on `commit`."""

    def __init__(self, path: Path) -> None:
        ensure_writable(path)
        self.path, self.tmp = path, partial_path(path)
        self.file: TextIO = self.tmp.open("w", encoding="utf-8")

    def write(self, text: str) -> None:
        self.file.write(text)

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Write `data` as JSON, atomically: indented, or compact and gzip-compressed for a `.gz` path."""
    if path.suffix == ".gz":
        ensure_writable(path)
        tmp = partial_path(path)
        tmp.write_bytes(gzip.compress(json.dumps(data, separators=(",", ":")).encode("utf-8")))
        os.replace(tmp, path)
        return
    writer = AtomicText(path)
    writer.write(json.dumps(data, indent=2))
    writer.commit()


class JsonLines(AtomicText):
    """One JSON object per line (per video frame)."""

    def add(self, record: dict[str, Any]) -> None:
        self.write(json.dumps(record, separators=(",", ":")) + "\n")


class JsonArray(AtomicText):
    """A JSON list streamed entry by entry (COCO results for images)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.write("[")
        self.count = 0

    def add(self, record: dict[str, Any]) -> None:
        self.write(("," if self.count else "") + "\n" + json.dumps(record, separators=(",", ":")))
        self.count += 1

    def commit(self) -> None:
        self.write("\n]\n")
        super().commit()


def ffmpeg_exe() -> str | None:
    """An ffmpeg binary: the imageio-ffmpeg wheel's, else one on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except Exception:  # the wheel is optional and raises when its binary is missing
        return shutil.which("ffmpeg")


class VideoFile:
    """A video written under a temporary name.

    OpenCV writes MPEG-4 Part 2; on `commit`, when an ffmpeg binary is available, an mp4 is
    re-encoded to H.264 (plays in browsers) and the source's audio, if any, is copied in. The
    note `commit` returns says what could not be done.
    """

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        ensure_writable(path)
        self.path, self.tmp = path, partial_path(path)
        self.mp4 = path.suffix.lower() in (".mp4", ".m4v", ".mov")
        fourcc = cv2.VideoWriter_fourcc(*("mp4v" if self.mp4 else "MJPG"))
        self.writer = cv2.VideoWriter(str(self.tmp), fourcc, fps, size)
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise GreitposeError(f"cannot write video {path} (unsupported container '{path.suffix}'?)")
        self.size = size
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if (frame.shape[1], frame.shape[0]) != self.size:
            frame = cv2.resize(frame, self.size)
        self.writer.write(frame)
        self.frames += 1

    def _finish_with_ffmpeg(self, audio_from: str | None) -> str:
        exe = ffmpeg_exe()
        if exe is None:
            return "no ffmpeg binary (pip install imageio-ffmpeg): video left as MPEG-4 Part 2" + (
                ", audio not kept" if audio_from else "")
        final = self.tmp.with_name(self.tmp.stem + ".h264" + self.tmp.suffix)
        cmd = [exe, "-y", "-loglevel", "error", "-i", str(self.tmp)]
        if audio_from:
            cmd += ["-i", audio_from, "-map", "0:v:0", "-map", "1:a:0?", "-c:a", "aac"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p", str(final)]
        try:  # stdin closed: ffmpeg would otherwise eat the caller's input (shell read loops)
            done = subprocess.run(cmd, capture_output=True, stdin=subprocess.DEVNULL, timeout=3600)
        except BaseException:  # interrupted or timed out: leave no half-encoded file behind
            final.unlink(missing_ok=True)
            raise
        if done.returncode != 0 or not final.is_file():
            final.unlink(missing_ok=True)
            return "ffmpeg could not re-encode the video: left as MPEG-4 Part 2" + (
                ", audio not kept" if audio_from else "")
        os.replace(final, self.tmp)
        return ""

    def commit(self, audio_from: str | None = None) -> str:
        self.writer.release()
        note = self._finish_with_ffmpeg(audio_from) if self.mp4 else ""
        os.replace(self.tmp, self.path)
        return note

    def discard(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)
