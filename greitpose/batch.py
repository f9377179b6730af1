"""Resumable results for batch jobs over folders of images.

One JSON line per image (its path relative to the source, size, people), written under a
temporary name and flushed as results come. A run that stops part-way (reboot, SIGTERM, Ctrl-C)
leaves that file behind; the same command run again reads it back, skips the images already
done and appends the rest. The final name appears only when every image is done, and COCO
results can be made from it at any time (`coco_results_from_lines`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO, KeypointSet
from greitpose.writers import ensure_writable, partial_path, write_json

FSYNC_SECONDS = 5.0


def read_lines(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The complete records of a JSON Lines file and the byte length they take; a last line
    cut short by a crash is left out (and later overwritten)."""
    records, good = [], 0
    with path.open("rb") as f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                break
            if not isinstance(record, dict) or "file" not in record:
                raise GreitposeError(f"{path} is not a greitpose results file (line without 'file')")
            records.append(record)
            good += len(raw)
    return records, good


class ResumableLines:
    """Per-image JSON Lines that survive interruption and resume where they stopped."""

    def __init__(self, path: Path, files: Mapping[str, int | None] | None = None) -> None:
        """`files`: the source's images, relative name -> size in bytes (None: unknown). An
        earlier file with results for other names, or for same-named images of another size,
        is another source's: refused and left as it was. Each record keeps its image's size."""
        ensure_writable(path)
        self.path, self.tmp = path, partial_path(path)
        self.sizes = dict(files or {})
        earlier = self.tmp if self.tmp.is_file() else self.path if self.path.is_file() else None
        records, size = read_lines(earlier) if earlier is not None else ([], 0)
        self.done: set[str] = {r["file"] for r in records}
        if files is not None and earlier is not None:
            _check_same_source(earlier, records, self.sizes)
        if earlier == self.path:
            os.replace(self.path, self.tmp)  # a finished file: re-running adds only what is missing
        self.resumed = len(self.done)
        self.file = self.tmp.open("r+b" if self.tmp.exists() else "wb")
        self.file.truncate(size)
        self.file.seek(size)
        self.synced = time.monotonic()

    def resume_note(self, remaining: int) -> str:
        return f"resuming: {self.resumed} image(s) already in {self.tmp.name}, {remaining} to go"

    def kept_note(self) -> str:
        return f"kept {len(self.done)} image result(s) in {self.tmp}: run the same command again to resume"

    def add(self, record: dict[str, Any]) -> None:
        """Append one image's record; flushed at once, synced to disk every few seconds."""
        if self.sizes.get(record["file"]) is not None:
            record = {"file": record["file"], "bytes": self.sizes[record["file"]], **record}
        self.file.write((json.dumps(record, separators=(",", ":")) + "\n").encode())
        self.file.flush()
        self.done.add(record["file"])
        if time.monotonic() - self.synced > FSYNC_SECONDS:
            os.fsync(self.file.fileno())
            self.synced = time.monotonic()

    def commit(self) -> None:
        self.file.close()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        """On failure or interruption: keep what is done, for the next run to resume."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _check_same_source(earlier: Path, records: list[dict[str, Any]], sizes: Mapping[str, int | None]) -> None:
    """Results of another source under the same --json name: names this source lacks, or the
    same names for images of other sizes (two folders of IMG_0001.jpg ...)."""
    foreign = sorted({r["file"] for r in records} - set(sizes))
    if foreign:
        raise GreitposeError(f"{earlier} holds results for {len(foreign)} image(s) that are not in this "
                             f"source (e.g. {foreign[0]}): another run's file; give a new --json")
    changed = [r for r in records if "bytes" in r and sizes[r["file"]] not in (None, r["bytes"])]
    if changed:
        r = changed[0]
        raise GreitposeError(f"{earlier} holds results for {len(changed)} image(s) named as in this source but "
                             f"of other sizes (e.g. {r['file']}: {r['bytes']} bytes then, {sizes[r['file']]} "
                             "now): another source's file, or the images changed; give a new --json")


def file_sizes(paths: Iterable[Path], name: Callable[[Path], str]) -> dict[str, int | None]:
    """Relative name -> size in bytes of each image (None where it cannot be read)."""
    sizes: dict[str, int | None] = {}
    for path in paths:
        try:
            sizes[name(path)] = path.stat().st_size
        except OSError:
            sizes[name(path)] = None
    return sizes


def image_id(name: str) -> int | str:
    """COCO-style numeric id from a file name like 000000397133.jpg, else the relative name."""
    stem = Path(name).stem
    return int(stem) if stem.isdigit() else name


def image_record(name: str, image_shape: tuple[int, ...], people: list[dict[str, Any]]) -> dict[str, Any]:
    return {"file": name, "width": int(image_shape[1]), "height": int(image_shape[0]), "people": people}


def coco_entries(name: str, people: list[dict[str, Any]], category_id: int = 1) -> list[dict[str, Any]]:
    """COCO keypoint results entries of one image (`file_name` added); image ids are numeric
    file stems (COCO's names) or the relative path."""
    return [{"image_id": image_id(name), "category_id": category_id, **person, "file_name": name}
            for person in people]


def coco_results_from_lines(lines: Path, out: Path, category_id: int = 1) -> int:
    """COCO keypoint results (one entry per person) from a results JSON Lines file."""
    records, _ = read_lines(lines)
    entries = [e for r in records for e in coco_entries(r["file"], r["people"], category_id)]
    write_json(out, entries)
    return len(entries)


def coco_dataset_from_lines(lines: Path, out: Path, keypoints: KeypointSet = COCO,
                            kpt_thr: float = 0.3) -> tuple[int, int]:
    """A COCO keypoint dataset (images, annotations, categories) from a folder run's results,
    to correct in an annotation tool (CVAT, Label Studio) and train on (`greitpose train
    --train-ann OUT --train-images SOURCE`). Keypoints scoring under `kpt_thr` are unlabelled
    (v=0); the rest are labelled visible (v=2). Returns (images, people)."""
    records, _ = read_lines(lines)
    images, annotations = [], []
    for i, r in enumerate(records, start=1):
        images.append({"id": i, "file_name": r["file"], "width": r["width"], "height": r["height"]})
        for person in r["people"]:
            k = [float(v) for v in person["keypoints"]]
            labelled = []
            for j in range(0, len(k), 3):
                seen = k[j + 2] >= kpt_thr
                labelled += [round(k[j], 2), round(k[j + 1], 2), 2] if seen else [0, 0, 0]
            x, y, w, h = person["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1,
                                "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0,
                                "keypoints": labelled, "num_keypoints": sum(v > 0 for v in labelled[2::3]),
                                "score": person["score"]})
    category = {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(keypoints.names),
                "skeleton": [[a + 1, b + 1] for a, b in keypoints.skeleton]}
    write_json(out, {"images": images, "annotations": annotations, "categories": [category]})
    return len(images), len(annotations)
