"""Fetching what a user names but does not have: Ultralytics detectors and COCO val2017.

Each is fetched once, into a folder that later runs look in, with a one-line notice. Nothing
is fetched offline: `--offline` or GREITPOSE_OFFLINE=1 (the test suite sets it) turns every
fetch into a one-line error that says what to download and where to put it.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from greitpose.errors import GreitposeError
from greitpose.weights import user_dir

OFFLINE_VAR = "GREITPOSE_OFFLINE"
DATA_VAR = "GREITPOSE_DATA"
COCO_PAGE = "https://cocodataset.org/#download"

_console = Console(stderr=True)


def offline() -> bool:
    """True when fetching is forbidden (GREITPOSE_OFFLINE set to anything but 0/false/empty)."""
    return os.environ.get(OFFLINE_VAR, "").strip().lower() not in ("", "0", "false", "no")


def set_offline(value: bool) -> None:
    """`--offline` on the command line: the same switch as the environment variable."""
    if value:
        os.environ[OFFLINE_VAR] = "1"


def fetch_detector(name: str) -> Path:
    """A named Ultralytics model (e.g. yolo11n.pt), fetched once by Ultralytics into the user's
    weights folder."""
    folder = user_dir()
    instead = f"put the file in {folder}/, or pass --detector PATH"
    if offline():
        raise GreitposeError(f"detector weights '{name}' not found and fetching is off ({OFFLINE_VAR} or "
                             f"--offline); {instead}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GreitposeError(f"cannot create {folder} for the detector: {err.strerror or err}") from None
    from ultralytics.utils import is_online
    from ultralytics.utils.downloads import attempt_download_asset

    if not is_online():
        raise GreitposeError(f"detector weights '{name}' not found and there is no network to fetch it; "
                             f"{instead}")
    _console.print(f"fetching detector {name} (Ultralytics) into {folder}/", highlight=False)

    try:
        path = Path(attempt_download_asset(folder / name))
    except Exception as err:  # network errors surface as many types; the first line says which
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise GreitposeError(f"could not fetch detector '{name}' ({reason}); {instead}") from None
    if not path.is_file():
        raise GreitposeError(f"could not fetch detector '{name}' (not an Ultralytics release file, or no "
                             f"network); {instead}")
    return path


@dataclass(frozen=True)
class Archive:
    url: str
    md5: str
    size: int  # bytes
    check: str  # a path inside the target folder that shows the archive is unpacked


#: COCO 2017 validation images and annotations, as published on cocodataset.org.
COCO_VAL2017 = (
    Archive("http://images.cocodataset.org/annotations/annotations_trainval2017.zip",
            "f4bbac642086de4f52a3fdda2de5fa2c", 252_907_541, "annotations/person_keypoints_val2017.json"),
    Archive("http://images.cocodataset.org/zips/val2017.zip",
            "442b8da7639aecaf257c1dceb8ba8c80", 815_585_330, "val2017"),
)


MPII_PAGE = "http://human-pose.mpi-inf.mpg.de/#download"


def dataset_candidates(name: str) -> list[Path]:
    """Where a dataset is looked for, in order: $GREITPOSE_DATA/NAME, ./NAME, ~/datasets/NAME."""
    places = []
    if os.environ.get(DATA_VAR):
        places.append(Path(os.environ[DATA_VAR]).expanduser() / name)
    places += [Path(name), Path.home() / "datasets" / name]
    return places


def is_dataset_root(name: str, folder: Path) -> bool:
    """COCO: val2017 keypoint annotations and images; MPII: valid.json and images/."""
    if name == "coco":
        return all((folder / a.check).exists() for a in COCO_VAL2017)
    return (folder / "images").is_dir() and any(
        (folder / p).is_file() for p in ("annotations/valid.json", "valid.json"))


def locate_dataset(name: str) -> Path:
    """The first conventional folder holding the dataset. COCO val2017 is fetched into the
    first candidate when none does (unless offline); MPII has no stable source to fetch from."""
    places = dataset_candidates(name)
    for folder in places:
        if is_dataset_root(name, folder):
            return folder
    target = places[0] if os.environ.get(DATA_VAR) else places[-1]
    looked = ", ".join(map(str, places))
    if name == "mpii":
        raise GreitposeError(
            f"MPII not found (looked in {looked}); put its images in {target}/images/ and its validation "
            f"json (joints, joints_vis, center, scale) in {target}/annotations/valid.json ({MPII_PAGE}), "
            "or pass --data-root")
    if offline():
        raise GreitposeError(
            f"COCO val2017 not found (looked in {looked}); download val2017.zip and "
            f"annotations_trainval2017.zip from {COCO_PAGE} and unzip both into {target}/, or pass --data-root")
    fetch_archives(COCO_VAL2017, target, "COCO val2017")
    return target


def md5sum(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fetch_archives(archives: tuple[Archive, ...], target: Path, label: str) -> None:
    """Download (Ultralytics' downloader: retries, progress bar), check the md5, unzip, and
    remove each zip; an archive already unpacked is skipped, so a broken run resumes."""
    from ultralytics.utils import is_online
    from ultralytics.utils.downloads import safe_download

    if not is_online():
        raise GreitposeError(f"{label} not found in {target}/ and there is no network to fetch it; download "
                             f"{', '.join(Path(a.url).name for a in archives)} from {COCO_PAGE} and unzip "
                             f"them into {target}/")
    target.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        if (target / archive.check).exists():
            continue
        zip_path = target / Path(archive.url).name
        _console.print(f"fetching {label}: {archive.url} ({archive.size / 2**20:.0f} MB) into {target}/",
                       highlight=False)
        try:
            if not (zip_path.is_file() and zip_path.stat().st_size == archive.size):
                safe_download(archive.url, file=zip_path, unzip=False, retry=3)
        except Exception as err:  # network errors surface as many types
            raise GreitposeError(f"could not fetch {archive.url} ({str(err).strip().splitlines()[0]}); "
                                 f"download it from {COCO_PAGE} and unzip it into {target}/") from None
        if not zip_path.is_file() or md5sum(zip_path) != archive.md5:
            zip_path.unlink(missing_ok=True)
            raise GreitposeError(f"{archive.url} arrived incomplete or altered (md5 mismatch); run again")
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(target)
        zip_path.unlink()
