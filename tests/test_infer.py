"""infer: plumbing, geometry and file formats, with random weights and injected detectors."""

from __future__ import annotations

import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose import codec
from greitpose.detect import GivenBoxes
from greitpose.errors import GreitposeError
from greitpose.estimator import PoseEstimator
from greitpose.keypoints import COCO
from greitpose.models import get_config
from greitpose.results import Detections, Poses
from greitpose.sources import DRAWINGS_MARK

from conftest import run_cli, shared_path

# Fixed box-relative heatmap positions (x, y) for the 17 keypoints on a 48x64 heatmap.
FIXED = np.stack([np.linspace(16, 32, 17), np.linspace(22, 42, 17)], axis=1)  # inside both boxes


class FixedBackend:
    """A 'trained' backend whose heatmaps always peak at FIXED, whatever the crop shows."""

    config = get_config("greit-hrnet-18")
    keypoints = COCO
    mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)

    def __init__(self) -> None:
        self.batches: list[int] = []

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(len(batch))
        hm, _ = codec.generate_heatmaps(np.repeat(FIXED[None], len(batch), 0), np.ones((len(batch), 17)),
                                        (48, 64))
        return hm


def _image(h: int = 480, w: int = 640, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_keypoints_land_at_their_box_relative_positions() -> None:
    boxes = np.array([[50, 40, 170, 360], [300, 100, 620, 300]], np.float32)
    backend = FixedBackend()
    est = PoseEstimator(backend=backend, detector=GivenBoxes(lambda i: Detections(boxes, np.ones(2))), flip=False)
    poses = est.process([_image(), _image(seed=1)])
    assert backend.batches == [4]  # both frames' crops in one forward pass
    center, scale = codec.boxes_to_center_scale(boxes, 0.75)
    expected = codec.heatmap_to_image(np.repeat(FIXED[None], 2, 0), center, scale, (192, 256), (48, 64))
    for p in poses:
        assert isinstance(p, Poses) and p.keypoints.shape == (2, 17, 2)
        px_per_hm = scale[:, 1:2] / 64
        assert (np.linalg.norm(p.keypoints - expected, axis=-1) <= 0.36 * px_per_hm).all()
        inside = ((p.keypoints[..., 0] >= boxes[:, None, 0]) & (p.keypoints[..., 0] <= boxes[:, None, 2])
                  & (p.keypoints[..., 1] >= boxes[:, None, 1]) & (p.keypoints[..., 1] <= boxes[:, None, 3]))
        assert inside.all()
        assert np.allclose(p.scores, p.keypoint_scores.mean(axis=1), atol=1e-5)


def test_flip_test_batches_mirrored_crops_with_plain_ones() -> None:
    backend = FixedBackend()
    boxes = np.array([[50, 40, 170, 360]], np.float32)
    est = PoseEstimator(backend=backend, detector=GivenBoxes(lambda i: Detections(boxes, np.ones(1))))
    est(_image())
    assert backend.batches == [2]


def test_no_people_gives_empty_results() -> None:
    est = PoseEstimator(backend=FixedBackend(), detector=GivenBoxes(lambda i: Detections.empty()))
    p = est(_image())
    assert len(p) == 0 and p.keypoints.shape == (0, 17, 2) and p.people() == []


def test_one_euro_smoothing_reduces_jitter() -> None:
    from greitpose.smoothing import TrackSmoother

    rng = np.random.default_rng(0)
    smoother = TrackSmoother(min_cutoff=0.5, beta=0.0)
    raw, smoothed = [], []
    for t in range(60):
        noisy = np.full((1, 17, 2), 100.0) + rng.normal(0, 3, (1, 17, 2))
        p = Poses(np.zeros((1, 4)), np.ones(1), noisy.copy(), np.ones((1, 17)), np.ones(1), np.array([7]))
        raw.append(noisy)
        smoothed.append(smoother(p, t / 30).keypoints.copy())
    assert np.std(np.array(smoothed)[20:]) < 0.5 * np.std(np.array(raw)[20:])


def test_missing_detector_weights_name_the_tried_paths() -> None:
    from greitpose.detect import YoloDetector

    with pytest.raises(GreitposeError, match="detector weights 'nope.pt' not found.*fetching is off.*put the file in"):
        YoloDetector("nope.pt")
    with pytest.raises(GreitposeError, match="'sub/nope.pt' not found|'nope.pt' not found"):
        YoloDetector("sub/nope.pt")  # a path is never fetched


# --- the command line, as a user runs it -------------------------------------------------------

def _write_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"{i:012d}.jpg"
        cv2.imwrite(str(path), _image(240, 160, i))
        paths.append(path)
    return paths


def _cli(random_checkpoint: Path, *args: str):
    return run_cli("infer", *args, "--weights", str(random_checkpoint), "--detector", "none",
                   "--device", "cpu")


def test_image_to_annotated_image_and_coco_json(tmp_path: Path, random_checkpoint: Path) -> None:
    [img] = _write_images(tmp_path / "in", 1)
    result = _cli(random_checkpoint, str(img), "--out", str(tmp_path / "out.png"), "--json",
                  str(tmp_path / "res.json"))
    assert result.returncode == 0, result.stderr
    drawn = cv2.imread(str(tmp_path / "out.png"))
    assert drawn.shape == (240, 160, 3)
    entries = json.loads((tmp_path / "res.json").read_text())
    assert len(entries) == 1
    e = entries[0]
    assert e["image_id"] == 0 and e["category_id"] == 1 and len(e["keypoints"]) == 51
    assert len(e["bbox"]) == 4 and e["bbox"][2:] == [160.0, 240.0] and isinstance(e["score"], float)
    assert not list(tmp_path.glob(".*partial*"))


def test_several_sources_are_one_set_of_images(tmp_path: Path, random_checkpoint: Path) -> None:
    """What a shell makes of `infer a/*.jpg b/` : images, folders and globs, each image once."""
    for name in ("a/1.jpg", "a/2.jpg", "b/3.png", "b/c/4.jpg"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / name), _image(64, 48))
    sources = [str(tmp_path / "a" / "1.jpg"), str(tmp_path / "a" / "2.jpg"), str(tmp_path / "b"),
               str(tmp_path / "a" / "*.jpg")]
    result = _cli(random_checkpoint, *sources, "-r", "--out", str(tmp_path / "drawn"),
                  "--json", str(tmp_path / "r.jsonl"))
    assert result.returncode == 0, result.stderr
    names = [json.loads(line)["file"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert names == ["a/1.jpg", "a/2.jpg", "b/3.png", "b/c/4.jpg"]
    drawn = [str(p.relative_to(tmp_path / "drawn")) for p in (tmp_path / "drawn").rglob("*.*")]
    assert sorted(drawn) == sorted([*names, DRAWINGS_MARK])
    video = _cli(random_checkpoint, str(tmp_path / "a" / "1.jpg"), str(shared_path("video", "demo.mp4")),
                 "--json", str(tmp_path / "v.jsonl"))
    assert video.returncode == 1 and "a video or webcam is a source on its own" in video.stderr
    assert not (tmp_path / "v.jsonl").exists()


def test_drawings_inside_the_source_are_not_taken_as_photos_later(tmp_path: Path,
                                                                  random_checkpoint: Path) -> None:
    """`infer photos -r --out photos/drawn` run twice must not pose its own drawings."""
    photos = tmp_path / "photos"
    _write_images(photos / "trip", 2)
    first = _cli(random_checkpoint, str(photos), "-r", "--out", str(photos / "drawn"))
    assert first.returncode == 0, first.stderr
    assert len(list((photos / "drawn" / "trip").glob("*.jpg"))) == 2
    again = _cli(random_checkpoint, str(photos), "-r", "--json", str(tmp_path / "r.jsonl"))
    assert again.returncode == 0, again.stderr
    names = [json.loads(line)["file"] for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert sorted(names) == ["trip/000000000000.jpg", "trip/000000000001.jpg"]
    assert f"left out {photos / 'drawn'}" in " ".join(again.stderr.split())
    # named directly, the drawings are images like any other
    direct = _cli(random_checkpoint, str(photos / "drawn"), "-r", "--json", str(tmp_path / "d.jsonl"))
    assert direct.returncode == 0 and len((tmp_path / "d.jsonl").read_text().splitlines()) == 2
    for image in (photos / "trip").iterdir():
        image.unlink()
    none_left = _cli(random_checkpoint, str(photos), "-r", "--json", str(tmp_path / "n.jsonl"))
    assert none_left.returncode == 1 and "besides greitpose's own drawings" in none_left.stderr
    assert len(none_left.stderr.strip().splitlines()) == 1
    # drawings put among photos of the user's own: that folder is not marked (its photos stay in scans)
    _write_images(tmp_path / "album", 1)
    mixed = _cli(random_checkpoint, str(photos / "drawn"), "-r", "--out", str(tmp_path / "album"), "--no-flip")
    assert mixed.returncode == 0 and not (tmp_path / "album" / DRAWINGS_MARK).exists()


def test_folder_with_a_corrupt_image(tmp_path: Path, random_checkpoint: Path) -> None:
    paths = _write_images(tmp_path / "in", 4)
    bad = tmp_path / "in" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not really a jpeg")
    result = _cli(random_checkpoint, str(tmp_path / "in"), "--out", str(tmp_path / "out"),
                  "--json", str(tmp_path / "res.json"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([*(p.name for p in paths), DRAWINGS_MARK])
    assert "broken.jpg" in result.stderr and "warning" in result.stderr
    assert len({e["image_id"] for e in json.loads((tmp_path / "res.json").read_text())}) == 4


def test_video_to_video_and_jsonl(tmp_path: Path, random_checkpoint: Path) -> None:
    video = shared_path("video", "demo.mp4")
    result = _cli(random_checkpoint, str(video), "--out", str(tmp_path / "out.mp4"),
                  "--json", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    src, dst = cv2.VideoCapture(str(video)), cv2.VideoCapture(str(tmp_path / "out.mp4"))
    for prop in (cv2.CAP_PROP_FRAME_COUNT, cv2.CAP_PROP_FPS, cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT):
        assert dst.get(prop) == pytest.approx(src.get(prop)), prop
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == int(src.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = [json.loads(line) for line in lines]
    assert [f["frame"] for f in frames] == list(range(len(lines)))
    assert len(frames[0]["people"][0]["keypoints"]) == 51
    # named .json, the same records form one JSON document
    short = _cli(random_checkpoint, str(video), "--json", str(tmp_path / "out.json"), "--max-frames", "3")
    assert short.returncode == 0, short.stderr
    assert json.loads((tmp_path / "out.json").read_text()) == frames[:3]


def test_a_video_cut_short_is_named_and_its_frames_kept(tmp_path: Path, random_checkpoint: Path) -> None:
    whole = shared_path("video", "pedestrians.avi")  # 795 frames in its header
    cut = tmp_path / "cut.avi"
    cut.write_bytes(whole.read_bytes()[:1_000_000])
    result = _cli(random_checkpoint, str(cut), "--json", str(tmp_path / "out.jsonl"), "--no-flip")
    assert result.returncode == 0, result.stderr
    frames = len((tmp_path / "out.jsonl").read_text().splitlines())
    assert 0 < frames < 795
    assert f"warning: {cut} ended after {frames} of the 795 frames its header gives" in result.stderr
    whole_run = _cli(random_checkpoint, str(shared_path("video", "demo.mp4")), "--json", str(tmp_path / "w.jsonl"))
    assert whole_run.returncode == 0 and "warning" not in whole_run.stderr, whole_run.stderr


def test_missing_weights_is_one_line(tmp_path: Path) -> None:
    [img] = _write_images(tmp_path, 1)
    result = run_cli("infer", str(img), "--out", str(tmp_path / "o.jpg"), "--detector", "none",
                     "--model", "greit-hrnet-30", env={"GREITPOSE_WEIGHTS": str(tmp_path)})
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "greit-hrnet-30-coco-256x192.pt" in result.stderr and "not found" in result.stderr
    assert f"put it in {tmp_path}/" in result.stderr


@pytest.mark.parametrize("case", ["missing", "unreadable", "empty-video", "unwritable"])
def test_bad_input_is_a_clear_error_and_writes_nothing(tmp_path: Path, random_checkpoint: Path,
                                                       case: str) -> None:
    out = tmp_path / "out" / "result.mp4"
    if case == "missing":
        source, needle = str(tmp_path / "nope.jpg"), "does not exist"
    elif case == "unreadable":
        (tmp_path / "bad.jpg").write_bytes(b"garbage")
        source, needle, out = str(tmp_path / "bad.jpg"), "cannot read image", tmp_path / "out" / "r.jpg"
    elif case == "empty-video":
        (tmp_path / "empty.mp4").write_bytes(b"")
        source, needle = str(tmp_path / "empty.mp4"), "cannot read video"
    else:
        video = shared_path("video", "demo.mp4")
        (tmp_path / "file").write_text("x")
        source, needle, out = str(video), "cannot write to", tmp_path / "file" / "sub" / "r.mp4"
    result = _cli(random_checkpoint, source, "--out", str(out), "--json", str(tmp_path / "r.json"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr and needle in result.stderr
    assert not out.exists() and not (tmp_path / "r.json").exists()
    assert not list(tmp_path.rglob("*partial*"))


def test_track_ids_are_carried_into_results_and_smoothing() -> None:
    boxes = np.array([[50, 40, 170, 360]], np.float32)
    det = GivenBoxes(lambda i: Detections(boxes, np.ones(1), np.array([3])))
    est = PoseEstimator(backend=FixedBackend(), detector=det, smooth=True)
    frames = est.process([_image(), _image(seed=2)], times=[0.0, 0.1])
    assert [f.people()[0]["track_id"] for f in frames] == [3, 3]
    assert 3 in est.smoother.filters


def test_video_keeps_the_source_audio(tmp_path: Path, random_checkpoint: Path) -> None:
    import subprocess

    from greitpose.writers import ffmpeg_exe

    exe = ffmpeg_exe()
    if exe is None:
        pytest.skip("no ffmpeg binary to make a video with sound")
    src = tmp_path / "talk.mp4"
    subprocess.run([exe, "-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
                    "-f", "lavfi", "-i", "sine=frequency=440", "-t", "1", "-c:v", "libx264", "-pix_fmt",
                    "yuv420p", "-c:a", "aac", str(src)], check=True)
    result = _cli(random_checkpoint, str(src), "--out", str(tmp_path / "out.mp4"))
    assert result.returncode == 0, result.stderr
    probe = subprocess.run([exe, "-hide_banner", "-i", str(tmp_path / "out.mp4")], capture_output=True, text=True)
    assert "Audio: aac" in probe.stderr and "Video: h264" in probe.stderr
    assert cv2.VideoCapture(str(tmp_path / "out.mp4")).get(cv2.CAP_PROP_FRAME_COUNT) == 10


def test_library_images_are_checked_and_converted(tmp_path: Path, random_checkpoint: Path) -> None:
    from greitpose.sources import as_bgr

    colour = _image(40, 30)
    grey = cv2.cvtColor(colour, cv2.COLOR_BGR2GRAY)
    assert (as_bgr(grey) == cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)).all() and as_bgr(grey).shape == (40, 30, 3)
    assert (as_bgr(cv2.cvtColor(colour, cv2.COLOR_BGR2BGRA)) == colour).all()
    path = tmp_path / "p.png"
    cv2.imwrite(str(path), colour)
    assert (as_bgr(path) == colour).all() and (as_bgr(str(path)) == colour).all()
    for bad, needle in [(None, "image is None"), (colour.astype(np.float32), "image is a float32 array"),
                        (np.zeros((0, 4, 3), np.uint8), "image is empty"), (colour[:, :, :2], "has shape (40, 30, 2)"),
                        ([1, 2], "image is a list"), (tmp_path / "none.jpg", "cannot read image")]:
        with pytest.raises(GreitposeError, match=re.escape(needle)):
            as_bgr(bad)
    estimator = PoseEstimator(weights=str(random_checkpoint), detector="none", device="cpu", backend="torch")
    assert np.allclose(estimator(path).keypoints, estimator(colour).keypoints)
    with pytest.raises(GreitposeError, match="image 1 is None"):
        estimator.process([colour, None])


def test_package_exposes_the_api() -> None:
    import greitpose

    assert greitpose.PoseEstimator is PoseEstimator and greitpose.Poses is Poses
    with pytest.raises(AttributeError):
        greitpose.NoSuchThing  # noqa: B018
