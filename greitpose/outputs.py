"""Where `infer` results go: which names fit which source, checked before anything runs;
outputs that never replace the inputs; folders of drawings marked, so that later scans of
a folder above them leave them out."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from greitpose.errors import GreitposeError
from greitpose.sources import DRAWINGS_MARK, IMAGE_SUFFIXES, Source
from greitpose.writers import refuse_overwrite

#: Containers the video writer produces (MPEG-4/H.264 in mp4-like ones, Motion JPEG otherwise).
VIDEO_OUT_SUFFIXES = {".mp4", ".m4v", ".mov", ".avi", ".mkv"}
#: video results under these names are JSON Lines (one frame per line); under any other name
#: (`.json`), one JSON array of the same frame records, so that the file is what its name says
LINES_SUFFIXES = (".jsonl", ".ndjson")


def is_lines(path: Path | None) -> bool:
    """Results to be written as JSON Lines (per image: resumable; per frame: streamed)."""
    return path is not None and path.suffix.lower() in LINES_SUFFIXES


def note_left_out(src: Source, console: Console) -> None:
    """Say which sub-folders of drawings a scan left out, and how to take them after all."""
    for folder in getattr(src, "left_out", []):
        console.print(f"note: left out {folder}: drawings made by greitpose (delete its {DRAWINGS_MARK} "
                      "file to take them as images)", highlight=False, soft_wrap=True)


def holds_only_drawings(folder: Path) -> bool:
    """A folder that is new, empty of images or already marked holds nothing but drawings; one
    with images of its own is not marked (that would hide those images from later scans)."""
    if not folder.is_dir() or (folder / DRAWINGS_MARK).is_file():
        return True
    return next((p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES), None) is None


def mark_drawings(folder: Path) -> None:
    """Tag a folder of drawings, so that a later scan of a folder above it leaves it out."""
    (folder / DRAWINGS_MARK).write_text("Drawings made by greitpose infer. A scan of a folder above this "
                                        "one leaves it out; delete this file to take them as images.\n")


def out_is_image_file(src: Source, out: Path | None) -> bool:
    """A single image may go to a file path; otherwise images mirror their names under a folder."""
    return out is not None and not src.is_video and len(src) == 1 and out.suffix.lower() in IMAGE_SUFFIXES


def check_inputs_kept(src: Source, out: Path | None, json_path: Path | None) -> None:
    """Refuse outputs that would replace the inputs: a drawing written over the photo or video it
    was drawn from loses the original."""
    for option, path in (("--out", out), ("--json", json_path)):
        if path is None:
            continue
        if src.is_video:
            refuse_overwrite(path, [Path(src.file)] if src.file else [], "the video", option)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            refuse_overwrite(path, src.paths, "an image", option)
    if out is None or src.is_video or out_is_image_file(src, out):
        return
    target, root = out.resolve(), src.root.resolve()
    if target == root:
        raise GreitposeError(f"--out {out} is the source folder: the drawings would replace the images; "
                             "give another folder")
    if target.is_relative_to(root):  # a sub-folder of the source: its own images may be among the names
        inputs = {p.resolve() for p in src.paths}
        hit = next((p for p in src.paths if (target / src.relative(p)).resolve() in inputs), None)
        if hit is not None:
            raise GreitposeError(f"--out {out}: the drawing of {hit} would replace the image "
                                 f"{out / src.relative(hit)}; give another folder")


def check_outputs(src: Source, out: Path | None, json_path: Path | None) -> None:
    """Refuse output paths that do not fit the source, before anything is computed."""
    if json_path is not None and json_path.is_dir():
        raise GreitposeError(f"cannot write to {json_path}: it is a folder")
    check_inputs_kept(src, out, json_path)
    if json_path is not None and not is_lines(json_path) and json_path.suffix.lower() != ".json":
        raise GreitposeError(f"--json {json_path}: give a .json name (one JSON document) or .jsonl (JSON Lines)")
    if out is None:
        return
    suffix = out.suffix.lower()
    if src.is_video:
        if suffix not in VIDEO_OUT_SUFFIXES:
            raise GreitposeError(f"--out {out}: a video needs a video file name "
                                 f"({' '.join(sorted(VIDEO_OUT_SUFFIXES))})")
    elif suffix and not out.is_dir():
        if suffix not in IMAGE_SUFFIXES:
            raise GreitposeError(f"--out {out}: '{suffix}' is not an image type "
                                 f"({' '.join(sorted(IMAGE_SUFFIXES))}); or give a folder")
        if len(src) != 1:
            raise GreitposeError(f"--out {out} is one image file, but {src.label} has {len(src)} images: "
                                 "give a folder")
