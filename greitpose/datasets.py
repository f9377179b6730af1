"""Keypoint datasets on disk: COCO-format sets (COCO itself or users' own) and MPII json.

Everything is validated when loaded, before any inference or training starts, and errors name
the file and the entry that is broken.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from greitpose.errors import GreitposeError
from greitpose.keypoints import COCO, MPII, KeypointSet, generic


def read_json(path: Path) -> Any:
    """A JSON file, plain or gzip-compressed (`.gz`, as training packs write theirs)."""
    if not path.is_file():
        raise GreitposeError(f"annotation file {path} does not exist")
    try:
        data = path.read_bytes()
        return json.loads(gzip.decompress(data) if path.suffix == ".gz" else data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise GreitposeError(f"{path} is not valid JSON ({err})") from None
    except (OSError, EOFError) as err:
        raise GreitposeError(f"{path} is not readable gzip ({err})") from None


def flip_pairs_from_names(names: list[str]) -> tuple[tuple[int, int], ...]:
    """Pairs of keypoints whose names differ only by left/right (left_eye/right_eye, l_knee/r_knee)."""
    pairs = []
    for i, name in enumerate(names):
        for left, right in (("left", "right"), ("l_", "r_"), ("Left", "Right")):
            if left in name:
                partner = name.replace(left, right)
                if partner in names:
                    pairs.append((i, names.index(partner)))
    return tuple(pairs)


def parse_flip_pairs(text: str) -> tuple[tuple[int, int], ...]:
    """'1,2;3,4' -> ((1, 2), (3, 4)) (0-based keypoint indices)."""
    try:
        return tuple((int(a), int(b)) for a, b in (p.split(",") for p in text.split(";") if p.strip()))
    except ValueError:
        raise GreitposeError(f"flip pairs '{text}' are not 'a,b;c,d' index pairs") from None


def parse_sigmas(text: str) -> tuple[float, ...]:
    """'0.026,0.025,...' -> OKS sigmas, each a positive number."""
    try:
        sigmas = tuple(float(s) for s in text.split(","))
    except ValueError:
        sigmas = ()
    if not sigmas or not all(0 < s < float("inf") for s in sigmas):
        raise GreitposeError(f"sigmas '{text}' are not comma-separated positive numbers")
    return sigmas


@dataclass
class CocoImage:
    id: int
    path: Path
    width: int
    height: int


@dataclass
class CocoKeypoints:
    """A COCO-format keypoint annotation file with its image folder, checked entry by entry."""

    ann_file: Path
    image_dir: Path
    images: dict[int, CocoImage]
    annotations: list[dict[str, Any]]
    keypoints: KeypointSet
    category_id: int = 1
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    def persons(self, image_id: int, min_keypoints: int = 1) -> list[dict[str, Any]]:
        """Non-crowd annotations of one image with at least `min_keypoints` labelled keypoints."""
        return [a for a in self.by_image.get(image_id, []) if not a.get("iscrowd", 0)
                and int(np.count_nonzero(np.asarray(a["keypoints"])[2::3])) >= min_keypoints]

    def __post_init__(self) -> None:
        self.by_image: dict[int, list[dict[str, Any]]] = {}
        for a in self.annotations:
            self.by_image.setdefault(a["image_id"], []).append(a)


def _need(entry: Any, keys: tuple[str, ...], what: str, path: Path) -> None:
    if not isinstance(entry, dict):
        raise GreitposeError(f"{path}: {what} is not an object")
    missing = [k for k in keys if k not in entry]
    if missing:
        raise GreitposeError(f"{path}: {what} has no '{missing[0]}'")


def check_image_files(dataset: CocoKeypoints, image_ids: list[int]) -> None:
    """Every image about to be read must exist; the error names the first that does not."""
    for image_id in image_ids:
        im = dataset.images[image_id]
        if not im.path.is_file():
            raise GreitposeError(f"image {im.path.name} (id {im.id}) listed in {dataset.ann_file.name} "
                                 f"is missing from {dataset.image_dir}")


def load_coco(ann_file: Path, image_dir: Path, flip_pairs: tuple[tuple[int, int], ...] | None = None,
              sigmas: tuple[float, ...] | None = None, check_images: bool = True) -> CocoKeypoints:
    """Load and validate a COCO-format keypoint file; keypoints and flip pairs come from its
    category entry (or the arguments); with `check_images`, every image file must exist."""
    data = read_json(ann_file)
    if not isinstance(data, dict):
        raise GreitposeError(f"{ann_file}: not a COCO annotation file (top level is not an object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise GreitposeError(f"{ann_file}: not a COCO keypoint file (no '{key}' list)")
    cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("keypoints")]
    if not cats:
        raise GreitposeError(f"{ann_file}: no category with a 'keypoints' list")
    cat = cats[0]
    names = [str(n) for n in cat["keypoints"]]
    k = len(names)
    if names == list(COCO.names):
        kset = COCO
    else:
        skeleton = tuple((a - 1, b - 1) for a, b in cat.get("skeleton", []))
        kset = generic(k, flip_pairs if flip_pairs is not None else flip_pairs_from_names(names),
                       tuple(names), skeleton, tuple(sigmas or ()))
    if sigmas is not None and len(sigmas) != k:
        raise GreitposeError(f"{len(sigmas)} sigmas given for {k} keypoints")
    images: dict[int, CocoImage] = {}
    for i, im in enumerate(data["images"]):
        _need(im, ("id", "file_name"), f"image #{i}", ann_file)
        images[im["id"]] = CocoImage(im["id"], image_dir / im["file_name"], int(im.get("width", 0)),
                                     int(im.get("height", 0)))
    annotations = []
    for i, a in enumerate(data["annotations"]):
        what = f"annotation #{i} (id {a.get('id', '?')})" if isinstance(a, dict) else f"annotation #{i}"
        _need(a, ("image_id", "bbox", "keypoints"), what, ann_file)
        if a.get("category_id", cat["id"]) != cat["id"]:
            continue
        if len(a["keypoints"]) != 3 * k:
            raise GreitposeError(f"{ann_file}: {what} has {len(a['keypoints'])} keypoint values, "
                                 f"expected {3 * k}")
        if len(a["bbox"]) != 4:
            raise GreitposeError(f"{ann_file}: {what} has a bbox of {len(a['bbox'])} values")
        weights = a.get("keypoint_weights")
        if weights is not None and (not isinstance(weights, list) or len(weights) != k or not all(
                isinstance(v, (int, float)) and 0 <= v <= 1 for v in weights)):
            raise GreitposeError(f"{ann_file}: {what} has 'keypoint_weights' that are not {k} numbers from 0 to 1")
        if a["image_id"] not in images:
            raise GreitposeError(f"{ann_file}: {what} refers to image id {a['image_id']}, not listed")
        annotations.append(a)
    dataset = CocoKeypoints(ann_file, image_dir, images, annotations, kset, cat["id"], data)
    if check_images:
        check_image_files(dataset, list(images))
    return dataset


def find_coco_files(data_root: Path | None, images: Path | None, ann: Path | None,
                    split: str = "val2017") -> tuple[Path, Path]:
    """(annotation file, image folder) from explicit paths or a data root's usual layout."""
    if ann is None:
        if data_root is None:
            raise GreitposeError("give --data-root, or --ann and --images")
        if not data_root.is_dir():
            raise GreitposeError(f"data root {data_root} is not a folder")
        found = [data_root / "annotations" / f"person_keypoints_{split}.json"]
        found = [p for p in found if p.is_file()] or sorted(
            [*data_root.glob("person_keypoints_*.json"), *data_root.glob("annotations/person_keypoints_*.json")])
        if not found:
            found = [p for p in sorted(data_root.glob("*.json")) if _looks_like_coco(p)]
        if len(found) != 1:
            listed = ", ".join(p.name for p in found) or "none"
            raise GreitposeError(f"cannot tell the keypoint annotation file in {data_root} "
                                 f"(found: {listed}); pass --ann")
        ann = found[0]
    if images is None:
        root = data_root or ann.parent
        images = next((p for p in (root / split, root / "images") if p.is_dir()), root)
    if not images.is_dir():
        raise GreitposeError(f"image folder {images} does not exist")
    return ann, images


def _looks_like_coco(path: Path) -> bool:
    try:
        head = path.read_text(encoding="utf-8", errors="ignore")[:4096].lstrip()
    except OSError:
        return False
    return head.startswith("{") and ('"images"' in head or '"categories"' in head)


def load_detections(path: Path, min_score: float = 0.0, category_id: int = 1) -> dict[int, list[tuple]]:
    """COCO results-format person boxes -> {image_id: [(x1, y1, x2, y2, score), ...]}."""
    data = read_json(path)
    if not isinstance(data, list):
        raise GreitposeError(f"{path}: detection results must be a JSON list")
    boxes: dict[int, list[tuple]] = {}
    for i, d in enumerate(data):
        _need(d, ("image_id", "bbox", "score"), f"detection #{i}", path)
        bbox = d["bbox"]
        if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
            raise GreitposeError(f"{path}: detection #{i} has a bbox of {bbox!r}; COCO results need "
                                 "[x, y, width, height]")
        if not isinstance(d["score"], (int, float)):
            raise GreitposeError(f"{path}: detection #{i} has a score of {d['score']!r}, not a number")
        x, y, w, h = bbox
        if d.get("category_id", category_id) != category_id or d["score"] < min_score or w <= 0 or h <= 0:
            continue
        boxes.setdefault(d["image_id"], []).append((x, y, x + w, y + h, float(d["score"])))
    return boxes


@dataclass
class MpiiPerson:
    image: Path
    joints: np.ndarray  # (16, 2), 0-based pixels
    visible: np.ndarray  # (16,)
    center: np.ndarray  # (2,)
    scale: float  # person height / 200, as MPII writes it
    head_box: np.ndarray | None = None  # (x1, y1, x2, y2) when the file has one


def load_mpii(ann_file: Path, image_dir: Path, check_images: bool = True) -> list[MpiiPerson]:
    """MPII json (joints, joints_vis, center, scale, image; optional head_box), 1-based joints
    as the MATLAB annotations are converted to 0-based."""
    data = read_json(ann_file)
    if not isinstance(data, list):
        raise GreitposeError(f"{ann_file}: MPII annotations must be a JSON list")
    people = []
    for i, a in enumerate(data):
        _need(a, ("joints", "joints_vis", "center", "scale", "image"), f"entry #{i}", ann_file)
        joints = np.asarray(a["joints"], np.float64)
        if joints.shape != (MPII.num_keypoints, 2) or len(a["joints_vis"]) != MPII.num_keypoints:
            raise GreitposeError(f"{ann_file}: entry #{i} ({a['image']}) needs 16 joints and 16 visibilities")
        path = image_dir / a["image"]
        if check_images and not path.is_file():
            raise GreitposeError(f"image {a['image']} (entry #{i}) listed in {ann_file.name} is missing "
                                 f"from {image_dir}")
        head = np.asarray(a["head_box"], np.float64) - 1 if "head_box" in a else None
        people.append(MpiiPerson(path, joints - 1, np.asarray(a["joints_vis"], np.float64),
                                 np.asarray(a["center"], np.float64) - 1, float(a["scale"]), head))
    return people


def mpii_box(person: MpiiPerson, aspect_ratio: float = 1.0) -> np.ndarray:
    """The standard MPII crop as a box: center moved 15 x scale px down, side 1.25 x scale x 200,
    narrowed (or flattened) to a model's `aspect_ratio` (w/h). MPII's scale is the person's
    height / 200, so a 3:4 model keeps the crop's height and the person their usual size in it;
    widening the square instead would shrink them by a quarter (PCKh 82 against 88 for the
    shipped 256x192 model on mpii-tiny)."""
    cx, cy = person.center
    cy = cy + 15 * person.scale
    side = person.scale * 1.25 * 200
    half_w, half_h = side * min(aspect_ratio, 1.0) / 2, side / max(aspect_ratio, 1.0) / 2
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])
