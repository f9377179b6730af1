"""Where datasets are looked for, and what an offline machine is told. Nothing is fetched."""

from __future__ import annotations

from pathlib import Path

import pytest

from greitpose.downloads import dataset_candidates, locate_dataset
from greitpose.errors import GreitposeError

from conftest import run_cli


def _fake_coco(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "annotations" / "person_keypoints_val2017.json").write_text("{}")
    (root / "val2017").mkdir()
    return root


def test_coco_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home, work = tmp_path / "home", tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    monkeypatch.delenv("GREITPOSE_DATA", raising=False)
    assert dataset_candidates("coco") == [Path("coco"), home / "datasets" / "coco"]
    _fake_coco(home / "datasets" / "coco")
    assert locate_dataset("coco") == home / "datasets" / "coco"
    _fake_coco(work / "coco")
    assert locate_dataset("coco") == Path("coco")  # ./coco before ~/datasets/coco
    monkeypatch.setenv("GREITPOSE_DATA", str(tmp_path / "data"))
    assert locate_dataset("coco") == Path("coco")  # $GREITPOSE_DATA has none: next place
    _fake_coco(tmp_path / "data" / "coco")
    assert locate_dataset("coco") == tmp_path / "data" / "coco"


def test_offline_without_a_dataset_says_what_to_get_and_where(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GREITPOSE_DATA", str(tmp_path / "data"))
    with pytest.raises(GreitposeError, match=r"COCO val2017 not found .*val2017\.zip and "
                                             r"annotations_trainval2017\.zip .* into .*data/coco/"):
        locate_dataset("coco")
    with pytest.raises(GreitposeError, match="MPII not found .*images/ .*annotations/valid.json"):
        locate_dataset("mpii")
    assert not (tmp_path / "data").exists()  # nothing fetched, nothing made
    result = run_cli("eval", "--dataset", "coco", "--weights", "never-loaded.pt", cwd=tmp_path,
                     env={"HOME": str(tmp_path / "home"), "GREITPOSE_DATA": str(tmp_path / "data")})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "COCO val2017 not found" in result.stderr
