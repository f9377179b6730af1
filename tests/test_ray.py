"""`infer --ray`: a folder job on a local Ray instance gives the plain run's lines."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from greitpose.batch import read_lines

from conftest import run_cli

pytest.importorskip("ray.data", reason='ray[data] is absent (pip install "greitpose[ray]")')


@pytest.mark.slow
def test_ray_gives_the_same_keypoints_as_the_plain_path(tmp_path: Path, random_checkpoint: Path) -> None:
    photos = tmp_path / "photos"
    rng = np.random.default_rng(1)
    for i in range(6):
        (photos / f"part{i % 2}").mkdir(parents=True, exist_ok=True)
        image = cv2.GaussianBlur(rng.integers(0, 255, (120, 90, 3), dtype=np.uint8), (0, 0), 3)
        cv2.imwrite(str(photos / f"part{i % 2}" / f"{i}.png"), image)
    (photos / "part0" / "torn.png").write_bytes(b"\x89PNG broken")
    common = ["-r", "--weights", str(random_checkpoint), "--detector", "none"]
    plain = run_cli("infer", str(photos), "--json", str(tmp_path / "plain.jsonl"), *common)
    assert plain.returncode == 0, plain.stderr
    on_ray = run_cli("infer", str(photos), "--json", str(tmp_path / "ray.jsonl"), "--ray", "local",
                     "--workers", "2", *common)
    assert on_ray.returncode == 0, on_ray.stderr
    assert "skipped part0/torn.png" in on_ray.stderr
    expected, got = read_lines(tmp_path / "plain.jsonl")[0], read_lines(tmp_path / "ray.jsonl")[0]
    assert [r["file"] for r in got] == [r["file"] for r in expected] and len(got) == 6
    for a, b in zip(expected, got):
        assert (a["width"], a["height"]) == (b["width"], b["height"])
        assert np.allclose(a["people"][0]["keypoints"], b["people"][0]["keypoints"], atol=0.01)


def test_ray_refuses_what_it_cannot_write(tmp_path: Path, random_checkpoint: Path) -> None:
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", np.zeros((20, 20, 3), np.uint8))[1].tobytes())
    result = run_cli("infer", str(tmp_path / "a.png"), "--out", str(tmp_path / "o.png"), "--ray", "local",
                     "--weights", str(random_checkpoint), "--detector", "none")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--ray runs folders of images into --json RESULTS.jsonl" in result.stderr
