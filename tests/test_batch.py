"""Batch jobs over folders: JSON Lines per image, resumable after interruption, COCO results
and a COCO keypoint dataset made from them."""

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

from greitpose.batch import ResumableLines, read_lines
from greitpose.errors import GreitposeError

from conftest import REPO, run_cli


def _folder(root: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(sub / f"img{i:03d}.jpg"), rng.integers(0, 255, (96, 64, 3), dtype=np.uint8))
    return root


def _infer(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "greitpose", "infer", *args]


@pytest.mark.slow
def test_an_interrupted_folder_run_resumes_with_every_image_once(tmp_path: Path, random_checkpoint: Path) -> None:
    photos = _folder(tmp_path / "photos", 40)
    out = tmp_path / "poses.jsonl"
    args = [str(photos), "-r", "--json", str(out), "--weights", str(random_checkpoint), "--detector", "none",
            "--device", "cpu", "--batch-frames", "1"]
    partial = tmp_path / ".poses.partial.jsonl"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # interrupted while two worker processes run, resumed by one
    proc = subprocess.Popen(_infer(args + ["--workers", "2"]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if partial.is_file() and partial.read_text().count("\n") >= 5:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "run the same command again to resume" in stderr and not out.exists()
    first = len(read_lines(partial)[0])
    assert 5 <= first < 40
    with partial.open("a") as f:
        f.write('{"file": "cut sh')  # a line torn by the kill is dropped, not kept
    result = run_cli("infer", *args)
    assert result.returncode == 0, result.stderr
    assert f"resuming: {first} image(s) already in" in result.stderr
    records, _ = read_lines(out)
    files = [r["file"] for r in records]
    assert sorted(files) == sorted(str(p.relative_to(photos)) for p in photos.rglob("*.jpg"))
    assert len(set(files)) == 40 and not partial.exists()
    again = run_cli("infer", *args)  # a finished output: nothing left to do, nothing lost
    assert again.returncode == 0, again.stderr
    assert len(read_lines(out)[0]) == 40


def test_workers_give_the_same_lines_in_the_same_order(tmp_path: Path, random_checkpoint: Path) -> None:
    photos = _folder(tmp_path / "photos", 9)
    (photos / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    lines = {}
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}.jsonl"
        result = run_cli("infer", str(photos), "-r", "--json", str(out), "--out", str(tmp_path / f"img{workers}"),
                         "--weights", str(random_checkpoint), "--detector", "none", "--workers", workers)
        assert result.returncode == 0, result.stderr
        assert "skipped" in result.stderr and "broken.jpg" in result.stderr, result.stderr
        lines[workers] = read_lines(out)[0]
        assert len(list((tmp_path / f"img{workers}").rglob("*.jpg"))) == 9  # annotated copies, tree mirrored
    assert [r["file"] for r in lines["1"]] == [r["file"] for r in lines["2"]] and len(lines["1"]) == 9
    for one, two in zip(lines["1"], lines["2"]):
        assert np.allclose(one["people"][0]["keypoints"], two["people"][0]["keypoints"], atol=0.01)
    bad = run_cli("infer", str(photos), "--json", str(tmp_path / "x.jsonl"), "--workers", "0")
    assert bad.returncode != 0 and "--workers must be 1 to 256, got 0" in bad.stderr


def test_results_lines_become_coco_results_and_a_trainable_dataset(tmp_path: Path, random_checkpoint: Path) -> None:
    from greitpose.train.config import resolve
    from greitpose.train.loop import Trainer

    photos = _folder(tmp_path / "photos", 6)
    lines = tmp_path / "poses.jsonl"
    result = run_cli("infer", str(photos), "-r", "--json", str(lines), "--weights", str(random_checkpoint),
                     "--detector", "none", "--device", "cpu", "--coco-dataset", str(tmp_path / "labels.json"),
                     "--kpt-thr", "0")
    assert result.returncode == 0, result.stderr
    result = run_cli("convert", str(lines), "--coco", str(tmp_path / "results.json"))
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results) == 6 and all(len(r["keypoints"]) == 51 and "file_name" in r for r in results)
    labels = json.loads((tmp_path / "labels.json").read_text())
    assert len(labels["images"]) == 6 and len(labels["annotations"]) == 6
    assert labels["categories"][0]["keypoints"][0] == "nose"
    Trainer(resolve(None, dict(train_ann=str(tmp_path / "labels.json"), train_images=str(photos),
                               input_size="64x64", batch_size=2, max_steps=1, workers=0, device="cpu",
                               out=str(tmp_path / "run")))).run()
    assert (tmp_path / "run" / "last.pt").is_file()


def test_resumable_lines_keep_only_complete_records(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    lines = ResumableLines(path)
    lines.add({"file": "a.jpg", "people": []})
    lines.discard()
    with lines.tmp.open("a") as f:
        f.write('{"file": "b.jpg", "peo')
    again = ResumableLines(path)
    assert again.done == {"a.jpg"} and again.resumed == 1
    again.add({"file": "c.jpg", "people": []})
    again.commit()
    assert [r["file"] for r in read_lines(path)[0]] == ["a.jpg", "c.jpg"]


@pytest.mark.parametrize("finished", [True, False])
def test_resumable_lines_refuse_another_sources_results(tmp_path: Path, finished: bool) -> None:
    path = tmp_path / "r.jsonl"
    lines = ResumableLines(path, {"a.jpg": 10, "b.jpg": 20})
    lines.add({"file": "a.jpg", "people": []})
    lines.commit() if finished else lines.discard()
    kept = path if finished else lines.tmp
    before = kept.read_bytes()
    with pytest.raises(GreitposeError, match=rf"{kept} holds results for 1 image\(s\) that are not in this source "
                                             r"\(e.g. a.jpg\): another run's file"):
        ResumableLines(path, {"x.jpg": 10, "b.jpg": 20})
    # two folders of the same file names (IMG_0001.jpg ...): the sizes tell them apart
    with pytest.raises(GreitposeError, match=rf"{kept} holds results for 1 image\(s\) named as in this source but "
                                             r"of other sizes \(e.g. a.jpg: 10 bytes then, 11 now\)"):
        ResumableLines(path, {"a.jpg": 11, "b.jpg": 20})
    assert kept.read_bytes() == before and sorted(tmp_path.iterdir()) == [kept]
    again = ResumableLines(path, {"a.jpg": 10, "b.jpg": 20, "c.jpg": None})  # the same source, grown: resumes
    assert again.done == {"a.jpg"}
