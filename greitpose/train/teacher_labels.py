"""Teacher labels for the people an annotation file leaves out.

Photos cut around one labelled person (Leeds Sports Pose Extended) often show others beside
them: team-mates, opponents, referees, small and cut off, the kind of person COCO scenes are
full of. Unlabelled, they teach nothing (and sit unmarked in the background of crops). A one-
stage pose model (the teacher) reads every image; the people it is sure of and that are none of
the labelled ones become extra annotations of a source of their own, so that training can weight
them apart from human labels. Each person is read twice, on the whole image and on a zoomed
square around it, keeping per keypoint the more confident reading (small people gain most).
Optionally each teacher-labelled person is read a third time, mirrored, to take back the
keypoints that reading does not confirm (mirror_check.py).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console

from greitpose.datasets import load_coco
from greitpose.errors import GreitposeError
from greitpose.evaluation.oks import oks
from greitpose.keypoints import COCO
from greitpose.progress import progress_bar
from greitpose.results import Poses
from greitpose.sources import must_read_image
from greitpose.tracking import box_iou
from greitpose.train.mirror_check import checked, teacher_keypoints
from greitpose.writers import ensure_writable, refuse_overwrite, write_json

Reader = Callable[[np.ndarray], Poses]


@dataclass(frozen=True)
class TeacherSettings:
    size: int = 640  # whole-image reading
    zoom_size: int = 384  # the square around each person, read again at this size (0: off)
    zoom_pad: float = 1.25  # that square's side, times the box's longer side
    box_conf: float = 0.5  # people the teacher is less sure of are left out
    kpt_conf: float = 0.5  # keypoints under this stay unlabelled (v=0)
    min_keypoints: int = 6
    min_area: float = 32.0 ** 2  # COCO's keypoint AP leaves smaller people out too
    same_iou: float = 0.5  # a teacher person is a labelled one when box IoU or OKS reaches these,
    same_oks: float = 0.3
    same_inside: float = 0.6  # or when this share of the labelled joints lies in its box
    suffix: str = "-others"  # new annotations' source: the image's source + this
    mirror_agree: float = 0.0  # > 0: teacher keypoints the mirrored reading does not confirm are unlabelled
    disputed_weight: float = 0.0  # > 0: ... or kept at this training weight instead
    add: bool = True  # False: only the check above, no new people


def xywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def is_labelled(box: np.ndarray, keypoints: np.ndarray, labelled: list[dict[str, Any]],
                settings: TeacherSettings) -> bool:
    """Whether a teacher person (xyxy box, (K, 2) keypoints) is one of the labelled people:
    boxes overlap enough, the keypoints agree (OKS over the labelled person's joints), or its
    box holds most of the labelled joints (the teacher misreading an upside-down athlete gives
    keypoints and a box that match neither way). Doubtful people are left out, never doubled."""
    sigmas = np.asarray(COCO.sigmas)
    for a in labelled:
        if box_iou(box[None], xywh_to_xyxy(a["bbox"]))[0, 0] >= settings.same_iou:
            return True
        joints = np.asarray(a["keypoints"], np.float64).reshape(-1, 3)
        seen = joints[joints[:, 2] > 0, :2]
        if len(seen) == 0:
            continue
        area = float(a.get("area") or a["bbox"][2] * a["bbox"][3])
        if oks(joints[:, :2], keypoints[None], area, sigmas, joints[:, 2])[0] >= settings.same_oks:
            return True
        inside = ((seen >= box[:2]) & (seen <= box[2:])).all(axis=1)
        if inside.mean() >= settings.same_inside:
            return True
    return False


def zoom_square(box: np.ndarray, pad: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the square around a box, `pad` times its longer side."""
    side = pad * float(max(box[2] - box[0], box[3] - box[1]))
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return float(cx - side / 2), float(cy - side / 2), side


def unmirror(poses: Poses, width: float) -> Poses:
    """A reading of a mirrored image in the plain image's terms: x back across the width
    (the teacher's coordinates run 0..width over width pixels) and left and right exchanged."""
    swap = COCO.flip_index()
    boxes = np.stack([width - poses.boxes[:, 2], poses.boxes[:, 1], width - poses.boxes[:, 0], poses.boxes[:, 3]], 1)
    keypoints = poses.keypoints[:, swap].copy()
    keypoints[..., 0] = width - keypoints[..., 0]
    return Poses(boxes, poses.box_scores, keypoints, poses.keypoint_scores[:, swap], poses.scores)


def zoom_read(read: Reader, image: np.ndarray, box: np.ndarray, settings: TeacherSettings,
              mirrored: bool = False) -> tuple[np.ndarray, np.ndarray] | None:
    """The teacher's keypoints and confidences for the person in `box`, read on a square
    around it warped to zoom_size px (grey beyond the image), mirrored first when asked (and
    mapped back); None when it finds no person there matching the box."""
    x0, y0, side = zoom_square(box, settings.zoom_pad)
    k = settings.zoom_size / side
    warp = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
    crop = cv2.warpAffine(image, warp, (settings.zoom_size, settings.zoom_size), flags=cv2.INTER_LINEAR,
                          borderValue=(114, 114, 114))
    poses = unmirror(read(cv2.flip(crop, 1)), settings.zoom_size) if mirrored else read(crop)
    if len(poses) == 0:
        return None
    boxes = poses.boxes / k + np.array([x0, y0, x0, y0])
    iou = box_iou(box[None], boxes)[0]
    best = int(np.argmax(iou))
    if iou[best] < 0.5:
        return None
    return poses.keypoints[best] / k + np.array([x0, y0]), poses.keypoint_scores[best]


def annotation(box: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, settings: TeacherSettings
               ) -> dict[str, Any] | None:
    """A COCO keypoint annotation (no ids yet) from a teacher reading, or None when too few
    keypoints are confident or the person is too small."""
    seen = scores >= settings.kpt_conf
    x, y = float(box[0]), float(box[1])
    w, h = float(box[2] - box[0]), float(box[3] - box[1])
    if int(seen.sum()) < settings.min_keypoints or w * h < settings.min_area:
        return None
    flat = np.zeros((len(scores), 3))
    flat[seen, :2] = keypoints[seen]
    flat[seen, 2] = 2
    return {"category_id": 1, "keypoints": [round(float(v), 2) for v in flat.ravel()],
            "num_keypoints": int(seen.sum()), "bbox": [round(v, 2) for v in (x, y, w, h)],
            "area": round(w * h, 2), "iscrowd": 0, "label": "teacher"}


def new_people(image: np.ndarray, labelled: list[dict[str, Any]], whole: Reader, zoom: Reader | None,
               settings: TeacherSettings) -> list[dict[str, Any]]:
    """Annotations for the people in `image` the teacher is sure of and no label covers."""
    poses = whole(image)
    found = []
    for i in np.flatnonzero(poses.box_scores >= settings.box_conf):
        box = np.clip(poses.boxes[i], 0, [image.shape[1], image.shape[0]] * 2)
        keypoints, scores = poses.keypoints[i], poses.keypoint_scores[i]
        if is_labelled(box, keypoints, labelled, settings):
            continue
        again = zoom_read(zoom, image, box, settings) if zoom is not None else None
        if again is not None:
            better = again[1] > scores
            keypoints = np.where(better[:, None], again[0], keypoints)
            scores = np.maximum(scores, again[1])
        person = annotation(box, keypoints, scores, settings)
        if person is not None:
            found.append(person)
    return found


def mirror_checked(image: np.ndarray, people: list[dict[str, Any]], zoom: Reader, settings: TeacherSettings
                   ) -> tuple[list[dict[str, Any]], int]:
    """The people with teacher keypoints among `people`, each checked against the teacher's
    reading of its square mirrored (greitpose/train/mirror_check.py), and the number of
    keypoints disputed (unlabelled, or down-weighted with settings.disputed_weight)."""
    out, disputed = [], 0
    for person in people:
        if teacher_keypoints(person).any():
            mirrored = zoom_read(zoom, image, xywh_to_xyxy(person["bbox"])[0], settings, mirrored=True)
            person, n = checked(person, mirrored, settings.mirror_agree, settings.kpt_conf, settings.disputed_weight)
            out.append(person)
            disputed += n
    return out, disputed


def disputed_fate(settings: TeacherSettings) -> str:
    """What the mirror check does to a disputed keypoint, for progress and summary lines."""
    return f"down-weighted to {settings.disputed_weight:g}" if settings.disputed_weight else "unlabelled"


def load_teacher(teacher: Path) -> tuple[Any, int]:
    """The teacher model, checked to be a pose model with COCO's 17 keypoints."""
    from greitpose.peer import load_peer_pose_model

    model, count = load_peer_pose_model(teacher)
    if count != COCO.num_keypoints:
        raise GreitposeError(f"teacher {teacher} gives {count} keypoints; COCO's 17 are needed")
    return model, count


def teacher_readers(teacher: Path, settings: TeacherSettings) -> tuple[Reader, Reader | None]:
    """The whole-image reader and the zoomed one (None when zoom_size is 0), both on one loaded
    model. Low confidence cut-offs here: the settings' own thresholds decide afterwards."""
    from greitpose.peer import pose_reader

    model, count = load_teacher(teacher)
    whole = pose_reader(model, count, settings.size, conf=0.25)
    zoom = pose_reader(model, count, settings.zoom_size, conf=0.25) if settings.zoom_size else None
    return whole, zoom


Item = tuple[int, str, list[dict[str, Any]]]  # image id, image path, its labelled people
_worker: dict[str, Any] = {}  # a process's own readers and settings


def _start(teacher: str, settings: TeacherSettings, threads: int, child: bool) -> None:
    import torch

    if child:  # Ctrl-C is the parent's to handle (it stops the pool)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _worker["readers"] = teacher_readers(Path(teacher), settings)
    _worker["settings"] = settings


Read = tuple[int, list[dict[str, Any]], list[dict[str, Any]], int]  # image id, new people, checked ones, keypoints disputed


def _read(item: Item) -> Read:
    image_id, path, labelled = item
    image = must_read_image(Path(path))
    whole, zoom = _worker["readers"]
    settings: TeacherSettings = _worker["settings"]
    found = new_people(image, labelled, whole, zoom, settings) if settings.add else []
    if not settings.mirror_agree:
        return image_id, found, [], 0
    found, _ = mirror_checked(image, found, zoom, settings)
    found = [a for a in found if a["num_keypoints"] >= settings.min_keypoints]
    known, disputed = mirror_checked(image, [a for a in labelled if "id" in a], zoom, settings)
    return image_id, found, known, disputed


def read_images(items: list[Item], teacher: Path, settings: TeacherSettings, workers: int) -> Iterator[Read]:
    """New people and checked ones per image, in order, from `workers` processes sharing the
    cores (the teacher's small layers use one core each better than two cores share one model)."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers <= 1:
        _start(str(teacher), settings, threads, child=False)
        yield from map(_read, items)
        return
    load_teacher(teacher)  # a bad teacher file fails here, once, with its own message
    context = multiprocessing.get_context("spawn")  # workers must not inherit the parent's threads
    with context.Pool(workers, initializer=_start, initargs=(str(teacher), settings, threads, True)) as pool:
        try:
            yield from pool.imap(_read, items, chunksize=4)
        finally:
            pool.terminate()


def add_teacher_labels(ann_file: Path, image_dir: Path, teacher: Path, out: Path, sources: set[str] | None,
                       settings: TeacherSettings, console: Console, workers: int = 1) -> dict[str, int]:
    """Write `out`: the whole of `ann_file` (images, every annotation as it was) plus teacher
    annotations for unlabelled people in the images of `sources` (every image when None); with
    settings.mirror_agree, the teacher keypoints of those images' annotations checked against
    mirrored readings. Written atomically, only when every image is read. Returns counts for the
    summary."""
    refuse_overwrite(out, [ann_file], "the annotations")
    if not teacher.is_file():
        raise GreitposeError(f"teacher model {teacher} does not exist")
    if settings.mirror_agree and not settings.zoom_size:
        raise GreitposeError("--mirror-agree reads each person's square mirrored: it needs --zoom-size above 0")
    if not settings.add and not settings.mirror_agree:
        raise GreitposeError("--no-add without --mirror-agree leaves nothing to do")
    if settings.disputed_weight and not settings.mirror_agree:
        raise GreitposeError("--disputed-weight weighs the keypoints --mirror-agree disputes: give --mirror-agree too")
    ensure_writable(out)
    dataset = load_coco(ann_file, image_dir)
    if dataset.keypoints is not COCO:
        raise GreitposeError(f"{ann_file} does not use COCO's 17 keypoints, the teacher's")
    # an image's source is its first annotation's: a second pass keeps '<source>-others', not '-others-others'
    image_source = {i: str(people[0].get("source", "")) for i, people in dataset.by_image.items()}
    chosen = [i for i in dataset.images if sources is None or image_source.get(i) in sources]
    if not chosen:
        raise GreitposeError(f"no image in {ann_file} has an annotation of source {', '.join(sorted(sources or []))}")
    items = [(i, str(dataset.images[i].path), dataset.by_image.get(i, [])) for i in chosen]
    next_id = max((int(a["id"]) for a in dataset.annotations if "id" in a), default=0) + 1
    added: list[dict[str, Any]] = []
    changed: dict[Any, dict[str, Any]] = {}
    checked_people = disputed = 0
    with progress_bar(console) as bar:
        task = bar.add_task("teacher", total=len(items), info="")
        for image_id, people, known, n_disputed in read_images(items, teacher, settings, workers):
            for person in people:
                person.update(id=next_id, image_id=image_id, source=image_source.get(image_id, "") + settings.suffix)
                added.append(person)
                next_id += 1
            changed.update((a["id"], a) for a in known)
            checked_people += len(known)
            disputed += n_disputed
            bar.update(task, advance=1, info=f"{len(added)} people" + (
                f", {disputed} keypoints {disputed_fate(settings)}" if settings.mirror_agree else ""))
    raw = dict(dataset.raw)
    raw["annotations"] = [changed.get(a.get("id"), a) for a in raw["annotations"]] + added
    counts = {"images": len(chosen), "added": len(added), "annotations": len(raw["annotations"]),
              "checked": checked_people, "disputed": disputed}
    raw["info"] = {**(raw.get("info") or {}), "greitpose_teacher_labels": {
        "from": str(ann_file), "teacher": teacher.name, "images_read": len(chosen), "added": len(added),
        "checked": checked_people, "keypoints_disputed": disputed, **asdict(settings)}}
    write_json(out, raw)
    return counts
