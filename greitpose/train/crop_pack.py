"""Training packs: every labelled person of a COCO keypoint set cut out of its photo, with room
around it for the training augmentation, shrunk to a bounded size and written as one small
image, plus a COCO file in crop coordinates. A pack trains with `greitpose train` like any COCO
set (the same crops, targets and sampling weights: the box maps to the same training crop), and
is a fraction of the photos' size, so that it travels where they cannot: a GPU machine that
receives only files of a checkout, 64 MiB at a time (docs/training.md)."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console

from greitpose import codec, limits
from greitpose.datasets import CocoKeypoints, load_coco
from greitpose.errors import GreitposeError
from greitpose.progress import progress_bar
from greitpose.sources import read_image
from greitpose.train.data import clipped_box
from greitpose.writers import ensure_writable, write_image, write_json

#: Image encodings a pack can use (OpenCV's wheels write and read them all) and the OpenCV
#: flag of their quality setting (png: lossless, no quality).
ENCODER_QUALITY = {"webp": cv2.IMWRITE_WEBP_QUALITY, "jpg": cv2.IMWRITE_JPEG_QUALITY, "png": 0}
FORMATS = tuple(ENCODER_QUALITY)
#: The pack's COCO file, beside its images/ folder (gzip: a third of the pack's size otherwise).
PACK_FILE = "train.json.gz"


@dataclass(frozen=True)
class PackSettings:
    aspect: float = 0.75  # the model input's w/h (256x192 and 128x96 alike)
    margin: float = 1.5  # region kept around the training crop's box (4:3, x1.25): scale, shift, rotation
    max_height: int = 192  # that box's height in the pack at most (px); larger people are shrunk
    quality: int = 80  # webp/jpg encoder quality, 1-100
    format: str = "webp"

    def check(self) -> None:
        if self.format not in FORMATS:
            raise GreitposeError(f"unknown pack format '{self.format}' ({' or '.join(FORMATS)})")
        limits.check(margin=self.margin, max_height=self.max_height, quality=self.quality)


def cut_person(photo: np.ndarray, box: np.ndarray, settings: PackSettings) -> tuple[np.ndarray, np.ndarray]:
    """One person's pack crop and the affine (2, 3) from photo to crop pixels. The region is
    the training crop's box (x1.25, the model's aspect) of `box` (x1, y1, x2, y2) times
    `margin`; a box taller than `max_height` px is first shrunk by averaging pixels (INTER_AREA,
    no aliasing). The crop is then a whole-pixel shift of that image, so that it holds its
    pixels as they are rather than resampled. Outside the photo: 0, as the training warp fills."""
    center, scale = codec.boxes_to_center_scale(box[None], settings.aspect)
    factor = min(1.0, settings.max_height / float(scale[0, 1]))
    width, height = (int(np.ceil(v * factor)) for v in scale[0] * settings.margin)
    image, offset = photo, 0.0
    if factor < 1.0:
        image = cv2.resize(photo, (0, 0), fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        offset = 0.5 * factor - 0.5  # shrunk pixel = factor * (photo pixel + 0.5) - 0.5
    shift = np.round(np.array([width, height]) / 2 - (factor * center[0] + offset))
    crop = cv2.warpAffine(image, np.array([[1.0, 0, shift[0]], [0, 1.0, shift[1]]]), (width, height),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT)
    matrix = np.array([[factor, 0, offset + shift[0]], [0, factor, offset + shift[1]]])
    return crop, matrix


def _crop_annotation(a: dict[str, Any], box: np.ndarray, matrix: np.ndarray, crop_id: int,
                     scale: float) -> dict[str, Any]:
    """`a` in crop coordinates: labelled keypoints and the box mapped; of the rest, what training
    reads (category, the "source" and "label" that sampling weights and the model card use, and
    per-keypoint training weights)."""
    k = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
    labelled = k[:, 2] > 0
    k[labelled, :2] = codec.apply_affine(k[None, labelled, :2], matrix[None])[0]
    k[~labelled] = 0
    (x1, y1), (x2, y2) = codec.apply_affine(box.reshape(1, 2, 2), matrix[None])[0]
    # width = x2 - x1 + 1: the trainer's clipping (x2 = x1 + w - 1) gives back the same box
    kept = {key: a[key] for key in ("category_id", "source", "label", "keypoint_weights") if key in a}
    return {**kept, "id": crop_id, "image_id": crop_id,
            "keypoints": [round(float(v), 2) if i % 3 < 2 else int(v) for i, v in enumerate(k.ravel())],
            "num_keypoints": int(labelled.sum()),
            "bbox": [round(float(v), 3) for v in (x1, y1, x2 - x1 + 1, y2 - y1 + 1)],
            "area": round(float(a.get("area", 0.0)) * scale * scale, 2), "iscrowd": 0}


def _write_crops(dataset: CocoKeypoints, chosen: list[tuple[int, dict[str, Any]]], out: Path,
                 settings: PackSettings, console: Console) -> tuple[list[dict], list[dict], int]:
    """Cut and write every chosen person (photos read once each, in order); their image and
    annotation entries, and the bytes written."""
    entries: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    total_bytes = 0
    quality_flag = ENCODER_QUALITY[settings.format]
    params = [quality_flag, settings.quality] if quality_flag else []
    photo_id, photo = None, np.zeros((0, 0, 3), np.uint8)
    with progress_bar(console) as progress:
        task = progress.add_task("pack", total=len(chosen), info="")
        for new_id, (image_id, a) in enumerate(chosen, start=1):
            progress.advance(task)
            if image_id != photo_id:
                photo_id, image = image_id, read_image(dataset.images[image_id].path)
                if image is None:
                    raise GreitposeError(f"cannot read training image {dataset.images[image_id].path}")
                photo = image
            box = clipped_box(a, photo.shape[1], photo.shape[0])
            if box is None:
                continue
            crop, matrix = cut_person(photo, box, settings)
            name = f"images/{new_id}.{settings.format}"
            write_image(out / name, crop, params)
            total_bytes += (out / name).stat().st_size
            entries.append({"id": new_id, "file_name": name, "width": crop.shape[1], "height": crop.shape[0]})
            annotations.append(_crop_annotation(a, box, matrix, new_id, float(matrix[0, 0])))
    return entries, annotations, total_bytes


def pack_crops(ann: Path, images: Path, out: Path, settings: PackSettings | None = None,
               sources: set[str] | None = None, console: Console | None = None) -> dict[str, int]:
    """Write the pack of `ann`'s persons with a labelled keypoint (of `sources` only, when
    given) to the empty or new folder `out`: `out/train.json.gz`, crops under `out/images/`.
    The file list is written last: a pack without it is an unfinished one."""
    settings = settings or PackSettings()
    settings.check()
    console = console or Console(stderr=True)
    dataset = load_coco(ann, images)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise GreitposeError(f"pack folder {out} is not empty: give a new or empty folder")
    ensure_writable(out / "images", is_dir=True)
    chosen = [(image_id, a) for image_id in dataset.images
              for a in dataset.persons(image_id, min_keypoints=1)
              if sources is None or str(a.get("source", "")) in sources]
    if not chosen:
        raise GreitposeError(f"{ann} has no person with a labelled keypoint"
                             + (f" in sources {', '.join(sorted(sources))}" if sources else ""))
    try:
        entries, annotations, total_bytes = _write_crops(dataset, chosen, out, settings, console)
    except BaseException:  # an interrupted pack leaves nothing behind that looks like one
        shutil.rmtree(out / "images", ignore_errors=True)
        raise
    categories = [c for c in dataset.raw["categories"] if c.get("id") == dataset.category_id]
    write_json(out / PACK_FILE, {
        "info": {"description": f"training pack of {ann.name}", "pack": asdict(settings)},
        "images": entries, "annotations": annotations, "categories": categories})
    return {"persons": len(annotations), "photos": len({i for i, _ in chosen}), "bytes": total_bytes}
