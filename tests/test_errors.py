"""Bad input of every kind: one line naming the thing, a non-zero exit, no traceback, nothing
left behind. These errors come before any model is loaded, so no trained weights are needed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose.errors import GreitposeError

from conftest import REPO, run_cli, shared_model, shared_path


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "person.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((240, 160, 3), 90, np.uint8))
    return path


def _assert_clean_failure(result: subprocess.CompletedProcess, needle: str, out_dir: Path) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert not [p for p in out_dir.rglob("*") if p.is_file()], list(out_dir.rglob("*"))


@pytest.mark.parametrize("args, needle", [
    (["--det-conf", "2"], "--det-conf must be 0 to 1, got 2"),
    (["--det-conf", "-0.1"], "--det-conf must be 0 to 1"),
    (["--det-iou", "1.5"], "--det-iou must be 0 to 1"),
    (["--max-people", "0"], "--max-people must be >= 1, got 0"),
    (["--radius", "-3"], "--radius must be >= 1, got -3"),
    (["--thickness", "0"], "--thickness must be >= 1"),
    (["--kpt-thr", "1.5"], "--kpt-thr must be 0 to 1"),
    (["--batch-frames", "0"], "--batch-frames must be >= 1, got 0"),
    (["--batch-frames", "-2"], "--batch-frames must be >= 1, got -2"),
    (["--max-frames", "0"], "--max-frames must be >= 1, got 0"),
    (["--det-conf", "abc"], "Invalid value for '--det-conf'"),
    (["--no-such-option"], "No such option"),
    (["--track", "--detector", "none"], "need a detector"),
    (["--smooth", "--detector", "none"], "need a detector"),
    (["--decode", "argmax"], "unknown decoder 'argmax' (quarter or dark)"),
    (["--input-size", "100x75"], "input size 100x75 must be positive multiples of 32"),
    (["--half", "--device", "cpu"], "--half (fp16) runs on CUDA only"),
    (["--json", "poses.csv"], "give a .json name (one JSON document) or .jsonl (JSON Lines)"),
])
def test_bad_option_values_fail_before_anything_loads(tmp_path: Path, args: list[str], needle: str) -> None:
    img = _image(tmp_path)
    out = tmp_path / "out"
    # a missing weights file proves the check ran first: it would otherwise be the error
    result = run_cli("infer", str(img), "--out", str(out / "r.jpg"), "--json", str(out / "r.json"),
                     "--weights", str(tmp_path / "missing.pt"), *args)
    _assert_clean_failure(result, needle, out)


@pytest.mark.parametrize("source, out_name, needle", [
    ("image", "result.xyz", "'.xyz' is not an image type"),
    ("folder", "one.jpg", "is one image file, but"),
    ("video", "clip.jpg", "a video needs a video file name"),
    ("missing", "r.jpg", "does not exist"),
])
def test_outputs_that_do_not_fit_the_source(tmp_path: Path, source: str, out_name: str, needle: str) -> None:
    img = _image(tmp_path)
    if source == "folder":
        cv2.imwrite(str(img.parent / "second.jpg"), np.zeros((50, 50, 3), np.uint8))
    path = {"image": str(img), "folder": str(img.parent), "missing": str(tmp_path / "nope.jpg"),
            "video": str(shared_path("video", "demo.mp4")) if source == "video" else ""}[source]
    out = tmp_path / "out"
    started = time.perf_counter()
    result = run_cli("infer", path, "--out", str(out / out_name), "--weights", str(tmp_path / "missing.pt"))
    _assert_clean_failure(result, needle, out)
    assert not (out / out_name).exists()
    assert time.perf_counter() - started < 60  # no model was loaded to find this out


@pytest.mark.parametrize("source", ["corrupt", "webcam"])
def test_third_party_log_lines_stay_off_the_terminal(tmp_path: Path, source: str) -> None:
    if source == "corrupt":
        video = shared_path("video", "multiperson-lab.mp4")
        (tmp_path / "cut.mp4").write_bytes(video.read_bytes()[:30000])  # no index: FFmpeg complains
        path = str(tmp_path / "cut.mp4")
    else:
        path = "7"  # a webcam that does not exist: OpenCV's capture backends complain
    result = run_cli("infer", path, "--json", str(tmp_path / "out" / "r.jsonl"), "--detector", "none")
    _assert_clean_failure(result, "cannot read video" if source == "corrupt" else
                          "cannot open webcam 7: no camera at index 7 here, or it is in use", tmp_path / "out")
    loud = run_cli("--verbose", "infer", path, "--json", str(tmp_path / "out" / "r.jsonl"), "--detector", "none")
    assert len(loud.stderr.strip().splitlines()) > 1  # --verbose keeps them


def test_library_raises_the_same_errors() -> None:
    from greitpose.draw import DrawStyle
    from greitpose.estimator import PoseEstimator
    from greitpose.infer import run

    with pytest.raises(GreitposeError, match="--det-conf must be 0 to 1, got 2"):
        PoseEstimator(weights="never-loaded.pt", det_conf=2)
    with pytest.raises(GreitposeError, match="--max-people must be >= 1"):
        PoseEstimator(weights="never-loaded.pt", max_people=0)
    with pytest.raises(GreitposeError, match="need a detector"):
        PoseEstimator(weights="never-loaded.pt", detector="none", track=True)
    with pytest.raises(GreitposeError, match="--radius must be >= 1"):
        DrawStyle(radius=-3)
    with pytest.raises(GreitposeError, match="--batch-frames must be >= 1"):
        run("anything.jpg", None, batch_frames=0)  # type: ignore[arg-type]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="displays are checked on Linux")
def test_show_without_a_display_is_one_line_not_an_abort(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from greitpose.infer import run

    img = _image(tmp_path)
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    result = run_cli("infer", str(img), "--show", "--weights", str(tmp_path / "missing.pt"))
    assert result.returncode == 1, result.stderr  # OpenCV's Qt would abort: 134
    assert result.stderr.strip().splitlines() == [
        "error: --show needs a display, and this session has none (DISPLAY is not set): write the result with "
        "--out instead"]
    with pytest.raises(GreitposeError, match="--show needs a display"):
        run(str(img), None, show=True)  # type: ignore[arg-type]


def test_a_yolo_model_given_as_pose_weights_is_named_as_one(tmp_path: Path) -> None:
    yolo = shared_model("yolo11n-pose.pt")
    result = run_cli("infer", str(_image(tmp_path)), "--out", str(tmp_path / "o.jpg"), "--weights", str(yolo),
                     "--detector", "none")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{yolo} is an Ultralytics YOLO model, not greitpose pose weights; a YOLO model goes to --detector" \
        in result.stderr
    onnx = run_cli("infer", str(_image(tmp_path)), "--out", str(tmp_path / "o.jpg"), "--backend", "onnx",
                   "--weights", str(tmp_path / "none.onnx"))
    assert "make it from the .pt checkpoint with 'greitpose export --onnx'" in onnx.stderr, onnx.stderr


def test_absent_devices_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from greitpose.backends import resolve_device

    with pytest.raises(GreitposeError, match="unknown device 'gpu'"):
        resolve_device("gpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(GreitposeError, match=r"'cuda:2' asked for, but this machine has 2 CUDA device\(s\), cuda:0 to cuda:1"):
        resolve_device("cuda:2")


@pytest.mark.parametrize("source, args, needle", [
    ("in/person.jpg", ["--out", "in/person.jpg"], "--out {t}/in/person.jpg would overwrite an image it reads; give a new file"),
    ("in/person.jpg", ["--out", "in"], "--out {t}/in is the source folder"),
    ("in", ["--out", "in/../in/"], "--out {t}/in/../in is the source folder"),
    ("in/*.jpg", ["--out", "in"], "--out {t}/in is the source folder"),
    ("in", ["-r", "--out", "in/sub"], "the drawing of {t}/in/person.jpg would replace the image {t}/in/sub/person.jpg"),
    ("in", ["--json", "in/person.jpg"], "--json {t}/in/person.jpg would overwrite an image it reads"),
])
def test_outputs_never_replace_the_inputs(tmp_path: Path, source: str, args: list[str], needle: str) -> None:
    img = _image(tmp_path)
    (img.parent / "sub").mkdir()
    (img.parent / "sub" / "person.jpg").write_bytes(img.read_bytes())
    before = {p: p.read_bytes() for p in tmp_path.rglob("*.jpg")}
    result = run_cli("infer", f"{tmp_path}/{source}", *[a if a.startswith("-") else f"{tmp_path}/{a}" for a in args],
                     "--weights", str(tmp_path / "missing.pt"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle.format(t=tmp_path) in lines[0], result.stderr
    assert {p: p.read_bytes() for p in tmp_path.rglob("*.jpg")} == before


@pytest.mark.parametrize("make, args, needle", [
    ("r.jsonl", ["convert", "{t}/r.jsonl", "--coco", "{t}/./r.jsonl"], "--coco {t}/r.jsonl would overwrite the results it reads"),
    ("r.jsonl", ["convert", "{t}/r.jsonl", "--coco-dataset", "{t}/r.jsonl"], "--coco-dataset {t}/r.jsonl would overwrite the results"),
    ("a.pt", ["average", "{t}/a.pt", "{t}/b.pt", "--out", "{t}/a.pt"], "--out {t}/a.pt would overwrite weights it reads"),
    ("r.jsonl", ["eval", "--ann", "{t}/r.jsonl", "--images", "{t}", "--save-predictions", "{t}/r.jsonl"],
     "--save-predictions {t}/r.jsonl would overwrite a file it reads"),
    ("a.pt", ["eval", "--ann", "{t}/r.jsonl", "--images", "{t}", "--boxes", "{t}/a.pt", "--json", "{t}/a.pt"],
     "--json {t}/a.pt would overwrite a file it reads"),
])
def test_files_made_from_an_input_never_replace_it(tmp_path: Path, make: str, args: list[str], needle: str) -> None:
    for name in ("r.jsonl", "a.pt", "b.pt"):
        (tmp_path / name).write_text(name)
    result = run_cli(*[a.format(t=tmp_path) for a in args])
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert needle.format(t=tmp_path) in result.stderr, result.stderr
    assert (tmp_path / make).read_text() == make


def test_a_video_is_not_written_over_itself(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    video.write_bytes(shared_path("video", "demo.mp4").read_bytes())
    before = video.read_bytes()
    result = run_cli("infer", str(video), "--out", str(tmp_path / "." / "clip.mp4"), "--weights",
                     str(tmp_path / "missing.pt"))
    assert result.returncode == 1 and "would overwrite the video it reads" in result.stderr, result.stderr
    assert video.read_bytes() == before and sorted(tmp_path.iterdir()) == [video]


@pytest.mark.parametrize("dataset, layout, needle", [
    ("coco", "empty", "cannot tell the keypoint annotation file in {root} (found: none); pass --ann"),
    ("coco", "absent", "data root {root} is not a folder"),
    ("mpii", "empty", "no MPII annotation json in {root}; pass --ann"),
    ("mpii", "absent", "data root {root} is not a folder"),
])
def test_eval_names_a_wrong_data_root_before_any_model_loads(tmp_path: Path, dataset: str, layout: str,
                                                             needle: str) -> None:
    root = tmp_path / "set"
    if layout == "empty":
        root.mkdir()
    # a missing weights file would be the error if the data root were checked after the model
    result = run_cli("eval", "--dataset", dataset, "--data-root", str(root), "--weights",
                     str(tmp_path / "missing.pt"), "--offline")
    _assert_clean_failure(result, needle.format(root=root), tmp_path / "set")


def test_eval_rejects_broken_detections_and_truncated_weights(tmp_path: Path, random_checkpoint: Path) -> None:
    root = shared_path("coco-tiny")
    boxes = tmp_path / "boxes.json"
    boxes.write_text(json.dumps([{"image_id": 785, "category_id": 1, "bbox": [10, 20], "score": 0.9}]))
    result = run_cli("eval", "--data-root", str(root), "--weights", str(random_checkpoint), "--boxes", str(boxes))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "detection #0 has a bbox of [10, 20]" in result.stderr
    for size in (100, 30_000, random_checkpoint.stat().st_size // 2):
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(random_checkpoint.read_bytes()[:size])
        result = run_cli("eval", "--data-root", str(root), "--weights", str(cut))
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert f"{cut} is not a readable greitpose weights file" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_video_cleans_up_and_says_so(tmp_path: Path, random_checkpoint: Path,
                                                  signum: int, code: int) -> None:
    video = shared_path("video", "pedestrians.avi")
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen([sys.executable, "-m", "greitpose", "infer", str(video), "--weights",
                             str(random_checkpoint), "--detector", "none", "--device", "cpu",
                             "--out", str(out / "a.mp4"), "--json", str(out / "a.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 300
    while not list(out.glob(".*partial*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(1.0)  # mid-video, frames being written
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == code
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1].startswith("interrupted")
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_on_a_webcam_finishes_the_recording(tmp_path: Path, random_checkpoint: Path) -> None:
    """A webcam ends when the user says so: the first Ctrl-C completes the outputs."""
    video = shared_path("video", "pedestrians.avi")
    out = tmp_path / "out"
    out.mkdir()
    camera = ("import os, sys, cv2\n"  # webcam 0 reads the video file, with no frame count
              "real = cv2.VideoCapture\n"
              "cv2.VideoCapture = lambda t, *a: real(os.environ['FAKE_CAMERA'] if isinstance(t, int) else t, *a)\n"
              "from greitpose.cli import main\n"
              "main()\n")
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "FAKE_CAMERA": str(video)}
    proc = subprocess.Popen([sys.executable, "-c", camera, "infer", "0", "--weights", str(random_checkpoint),
                             "--detector", "none", "--device", "cpu", "--out", str(out / "cam.mp4"),
                             "--json", str(out / "cam.jsonl")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 300
    while not list(out.glob(".*partial*")) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()[1]
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "SIGINT: finishing the outputs" in stderr and "Traceback" not in stderr
    assert sorted(p.name for p in out.iterdir()) == ["cam.jsonl", "cam.mp4"]
    frames = len((out / "cam.jsonl").read_text().splitlines())
    capture = cv2.VideoCapture(str(out / "cam.mp4"))
    written = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert 0 < frames < 795 and written == frames


def test_child_processes_leave_the_callers_stdin_alone(tmp_path: Path, random_checkpoint: Path) -> None:
    """`while read f; do greitpose infer "$f" ...; done < list` must see every line of list."""
    from greitpose.writers import ffmpeg_exe

    if ffmpeg_exe() is None:
        pytest.skip("no ffmpeg binary: nothing would read stdin")
    video = shared_path("video", "demo.mp4")
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"line-{i}-{'x' * 50}\n" for i in range(20)))
    script = (f'read first; "{sys.executable}" -m greitpose infer "{video}" --weights "{random_checkpoint}" '
              f'--detector none --device cpu --out "{tmp_path / "o.mp4"}" >/dev/null 2>&1; cat')
    done = subprocess.run(["bash", "-c", script], stdin=listing.open(), capture_output=True, text=True,
                          timeout=600, cwd=REPO)
    assert (tmp_path / "o.mp4").is_file()
    assert done.stdout == "".join(f"line-{i}-{'x' * 50}\n" for i in range(1, 20))


def test_crops_go_through_the_network_in_bounded_batches() -> None:
    from greitpose.pose import TopDown
    from greitpose.results import Detections

    from test_infer import FixedBackend, _image

    boxes = np.array([[10 + i, 20, 120 + i, 300] for i in range(45)], np.float32)
    dets = [Detections(boxes, np.ones(45, np.float32))]
    small, large = FixedBackend(), FixedBackend()
    bounded = TopDown(small, flip=True, max_batch=16)([_image()], dets)[0]
    assert max(small.batches) <= 16 and sum(small.batches) == 90
    whole = TopDown(large, flip=True, max_batch=1000)([_image()], dets)[0]
    assert large.batches == [90]
    assert np.allclose(bounded.keypoints, whole.keypoints) and np.allclose(bounded.keypoint_scores,
                                                                          whole.keypoint_scores)


def test_offline_detector_and_foreign_models_are_refused(tmp_path: Path) -> None:
    from greitpose.detect import check_person_model

    img = _image(tmp_path)
    result = run_cli("infer", str(img), "--json", str(tmp_path / "r.json"), "--detector", "yolo11s.pt")
    _assert_clean_failure(result, "detector weights 'yolo11s.pt' not found and fetching is off", tmp_path / "none")
    assert not (tmp_path / "r.json").exists()
    check_person_model("a.pt", "detect", {0: "person", 1: "bicycle"})
    check_person_model("b.pt", "pose", {0: "person"})
    with pytest.raises(GreitposeError, match="is a segment model"):
        check_person_model("c.pt", "segment", {0: "person"})
    with pytest.raises(GreitposeError, match="has no 'person' class"):
        check_person_model("d.pt", "detect", {0: "car"})


@pytest.mark.parametrize("args, needle", [
    (["--lr", "0"], "--lr must be >= 1e-09"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--ema", "1.5"], "--ema must be 0 to 0.999999"),
    (["--occlusion", "2"], "--occlusion must be 0 to 1"),
    (["--paste", "-0.5"], "--paste must be 0 to 1"),
    (["--photometric", "1.5"], "--photometric must be 0 to 1"),
    (["--truncate", "-0.1"], "--truncate must be 0 to 1"),
    (["--hard-keypoints", "-1"], "--hard-keypoints must be >= 0"),
    (["--source-weights", "lspet"], "is not NAME=WEIGHT"),
    (["--joint-weights", "nose=-2"], "joint weight 'nose=-2' is not NAME=WEIGHT"),
])
def test_bad_training_settings_are_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    ann = tmp_path / "ann.json"
    ann.write_text("{}")
    result = run_cli("train", "--train-ann", str(ann), "--out", str(tmp_path / "run"), *args)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_average_of_different_models_is_a_one_line_error(tmp_path: Path) -> None:
    from greitpose import checkpoint
    from greitpose.models import get_config

    files = [checkpoint.save(checkpoint.new_model(get_config("greit-hrnet-18", 17, size)), tmp_path / f"{i}.pt")
             for i, size in enumerate([(128, 96), (256, 192)])]
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("average", *map(str, files), "--out", str(out / "avg.pt"))
    _assert_clean_failure(result, "differs in config 'input_size'", out)


@pytest.mark.parametrize("args, needle", [
    (["--shares", "1,2,3"], "--shares gives 3 shares for 2 weights files"),
    (["--shares", "1,0"], "every share must be above 0"),
    (["--recalibrate", "missing.yaml"], "missing.yaml"),
    (["--recalibrate-samples", "0"], "--recalibrate-samples must be >= 1"),
])
def test_bad_average_options_are_one_line(tmp_path: Path, random_checkpoint: Path, args: list[str],
                                          needle: str) -> None:
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("average", str(random_checkpoint), str(random_checkpoint), "--out", str(out / "avg.pt"),
                     *[str(tmp_path / a) if a.endswith(".yaml") else a for a in args])
    _assert_clean_failure(result, needle, out)


def test_command_list_gives_each_summary_as_running_text() -> None:
    """`greitpose --help` lists each command with its docstring's first paragraph; the
    docstring's own line breaks must not cut a sentence in the list."""
    result = run_cli("--help", env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    assert "then the parameters and GMACs of every registered model" in result.stdout
    assert "with a trained pose model's confident readings" in result.stdout
