"""Input sources: an image, a folder, a glob, a video file or a webcam, read as frames."""

from __future__ import annotations

import glob
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from greitpose.errors import GreitposeError
from greitpose.overlap import prefetch

#: left in a folder of drawings by `infer --out`; scans of a parent folder leave that folder out
DRAWINGS_MARK = ".greitpose-drawings"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}


@dataclass
class Frame:
    index: int
    image: np.ndarray
    name: str  # image path relative to the source root, or "frame-N"
    time: float  # seconds since the start (videos), or the index (images)


def read_image(path: Path) -> np.ndarray | None:
    """BGR image, or None when the file is not a readable image."""
    data = np.fromfile(path, np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    return cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None


def must_read_image(path: Path, label: str | None = None) -> np.ndarray:
    """BGR image, or an error naming the file (as `label`, e.g. the user's spelling)."""
    image = read_image(path)
    if image is None:
        raise GreitposeError(f"cannot read image {label or path} (missing, empty, corrupt or not an image)")
    return image


def as_bgr(image: object, what: str = "image") -> np.ndarray:
    """A library caller's image as the pipeline takes it (H x W x 3, uint8, BGR): a path is read,
    grey and BGRA arrays are converted; anything else is a clear error, never one from deep in
    the detector (cv2.imread gives None for a file it cannot read)."""
    if isinstance(image, (str, os.PathLike)):
        return must_read_image(Path(image))
    if image is None:
        raise GreitposeError(f"{what} is None (cv2.imread returns None for a file it cannot read)")
    if not isinstance(image, np.ndarray):
        raise GreitposeError(f"{what} is a {type(image).__name__}; expected a BGR array or an image path")
    if image.dtype != np.uint8:
        raise GreitposeError(f"{what} is a {image.dtype} array; expected uint8 (0-255), as cv2.imread gives")
    if image.size == 0:
        raise GreitposeError(f"{what} is empty (shape {image.shape})")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise GreitposeError(f"{what} has shape {image.shape}; expected H x W x 3 (BGR), H x W or H x W x 4")
    return image


class ImageSource:
    """Still images; unreadable ones are reported through `on_skip` and left out."""

    is_video = False

    def __init__(self, paths: list[Path], root: Path, on_skip: Callable[[Path], None] | None = None,
                 label: str = "") -> None:
        self.paths, self.root, self.label = paths, root, label or str(root)
        #: sub-folders of drawings (DRAWINGS_MARK) whose images were not taken
        self.left_out: list[Path] = []
        self.on_skip = on_skip or (lambda p: None)
        self.fps, self.size = 0.0, None

    def __len__(self) -> int:
        return len(self.paths)

    def relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return path.name

    def __iter__(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            image = read_image(path)
            if image is None:
                self.on_skip(path)
                continue
            yield Frame(i, image, self.relative(path), float(i))


class VideoSource:
    """A video file or a webcam through OpenCV, decoded a few frames ahead in a thread."""

    is_video = True

    def __init__(self, target: str | int, label: str) -> None:
        self.capture = cv2.VideoCapture(target)
        self.label = label
        self.file = target if isinstance(target, str) else None  # None: a webcam
        ok, first = self.capture.read() if self.capture.isOpened() else (False, None)
        if not ok or first is None:
            self.capture.release()
            if isinstance(target, int):
                raise GreitposeError(f"cannot open {label}: no camera at index {target} here, or it is in use "
                                     "(video devices: /dev/video* on Linux)")
            raise GreitposeError(f"cannot read video {label} (missing, empty, corrupt or unsupported)")
        self.first = first
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 and np.isfinite(fps) else 30.0
        self.size = (first.shape[1], first.shape[0])
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.count = count if count > 0 and isinstance(target, str) else None
        self.stopped = threading.Event()

    @property
    def live(self) -> bool:
        """A webcam: no last frame, so a stop ends it as its end would."""
        return self.file is None

    def stop(self) -> None:
        """End the stream after the frame being read (from any thread, or a signal handler)."""
        self.stopped.set()

    def __len__(self) -> int:
        return self.count or 0

    def __iter__(self) -> Iterator[Frame]:
        return prefetch(self._frames())

    def _frames(self) -> Iterator[Frame]:
        index, image = 0, self.first
        try:
            while image is not None and not self.stopped.is_set():
                yield Frame(index, image, f"frame-{index}", index / self.fps)
                ok, image = self.capture.read()
                image = image if ok else None
                index += 1
        finally:
            self.capture.release()


Source = ImageSource | VideoSource


def _images_in(paths: list[Path]) -> list[Path]:
    return sorted(p for p in paths if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _without_drawings(source: ImageSource) -> ImageSource:
    """Leave out the images in sub-folders of the source that hold greitpose's own drawings
    (an earlier `--out` inside the source), which a recursive scan would take for photos."""
    marked: dict[Path, bool] = {}

    def drawings_folder(path: Path) -> Path | None:
        try:
            parts = path.parent.relative_to(source.root).parts
        except ValueError:
            return None
        for depth in range(1, len(parts) + 1):
            folder = source.root.joinpath(*parts[:depth])
            if folder not in marked:
                marked[folder] = (folder / DRAWINGS_MARK).is_file()
            if marked[folder]:
                return folder
        return None

    kept = []
    for path in source.paths:
        folder = drawings_folder(path)
        if folder is None:
            kept.append(path)
        elif folder not in source.left_out:
            source.left_out.append(folder)
    source.paths = kept
    return source


def open_source(source: str | Sequence[str], recursive: bool = False,
                on_skip: Callable[[Path], None] | None = None) -> Source:
    """Open what the user named: webcam index, glob, folder, video or image; or several images,
    folders and globs (as a shell expands `photos/*.jpg`), taken as one set of images."""
    if not isinstance(source, str):
        if len(source) != 1:
            return _image_set(source, recursive, on_skip)
        source = source[0]
    if source.isdigit():
        return VideoSource(int(source), f"webcam {source}")
    if any(c in source for c in "*?["):
        paths = _images_in([Path(p) for p in glob.glob(source, recursive=True)])
        if not paths:
            raise GreitposeError(f"no images match '{source}'")
        root = Path(os.path.commonpath([str(p.parent) for p in paths]))
        return _with_images(_without_drawings(ImageSource(paths, root, on_skip, source)))
    path = Path(source).expanduser()
    if not path.exists():
        raise GreitposeError(f"{source} does not exist")
    if path.is_dir():
        paths = _images_in(list(path.rglob("*") if recursive else path.iterdir()))
        if not paths:
            hint = "" if recursive else " (add --recursive to look in sub-folders)"
            raise GreitposeError(f"no images in folder {source}{hint}")
        return _with_images(_without_drawings(ImageSource(paths, path, on_skip, source)))
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if path.stat().st_size == 0:
            raise GreitposeError(f"cannot read video {source}: the file is empty")
        return VideoSource(str(path), str(source))
    if suffix in IMAGE_SUFFIXES:
        must_read_image(path, source)  # a single image that cannot be read is the whole job's error
        return ImageSource([path], path.parent, on_skip, source)
    raise GreitposeError(f"{source}: unsupported file type '{suffix}' (images: "
                         f"{' '.join(sorted(IMAGE_SUFFIXES))}; videos: {' '.join(sorted(VIDEO_SUFFIXES))})")


def _with_images(source: ImageSource) -> ImageSource:
    """A source whose only images were drawings is an error that says so."""
    if not source.paths:
        raise GreitposeError(f"no images in {source.label} besides greitpose's own drawings in "
                             f"{', '.join(map(str, source.left_out))}")
    return source


def _image_set(sources: Sequence[str], recursive: bool, on_skip: Callable[[Path], None] | None) -> ImageSource:
    """The images of several sources in the order given, each once; their names relative to
    the folder all of them share. Listed image files are read when their turn comes (an
    unreadable one is skipped with a warning, as in a folder), not twice."""
    if not sources:
        raise GreitposeError("no source given")
    paths: dict[Path, None] = {}
    left_out: list[Path] = []
    for item in sources:
        path = Path(item).expanduser()
        if item.isdigit() or path.suffix.lower() in VIDEO_SUFFIXES:
            raise GreitposeError(f"{item}: a video or webcam is a source on its own, not one of several")
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            paths[path.absolute()] = None
            continue
        opened = open_source(item, recursive, on_skip)  # a glob or folder (or the error naming it)
        assert isinstance(opened, ImageSource)
        paths.update(dict.fromkeys(p.absolute() for p in opened.paths))
        left_out += opened.left_out
    found = list(paths)
    root = Path(os.path.commonpath([str(p.parent) for p in found]))
    result = ImageSource(found, root, on_skip, f"{sources[0]} and {len(sources) - 1} more")
    result.left_out = left_out
    return result
