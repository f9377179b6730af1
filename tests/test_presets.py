"""Speed presets: named bundles of options, overridden by the options the user gives."""

from __future__ import annotations

import pytest

from greitpose import presets
from greitpose.errors import GreitposeError

from conftest import run_cli


def test_defaults_follow_the_source_kind_and_given_options_win() -> None:
    image = presets.resolve(None, is_video=False)
    assert image == presets.PRESETS[presets.IMAGE_DEFAULT].settings() | {"det_every": 1}
    video = presets.resolve(None, is_video=True)
    assert video == presets.PRESETS[presets.VIDEO_DEFAULT].settings()
    fast = presets.PRESETS["fast"]
    mixed = presets.resolve("fast", True, flip=True, det_size=800, input_size=(256, 192), det_every=3)
    assert mixed == {"input_size": (256, 192), "flip": True, "det_size": 800, "det_every": 3}
    assert presets.resolve("fast", True, flip=False)["det_size"] == fast.det_size
    assert presets.resolve("accurate", False, det_every=5)["det_every"] == 1  # images never skip detection


def test_every_preset_is_cheaper_than_the_one_before() -> None:
    order = [presets.PRESETS[n] for n in ("accurate", "balanced", "fast")]
    cost = [p.input_size[0] * p.input_size[1] * (2 if p.flip else 1) + p.det_size ** 2 / p.det_every
            for p in order]
    assert cost == sorted(cost, reverse=True) and len(set(cost)) == 3


def test_unknown_presets_are_refused_before_anything_loads(tmp_path) -> None:
    with pytest.raises(GreitposeError, match="unknown preset 'turbo' \\(accurate, balanced, fast\\)"):
        presets.get("turbo", True)
    result = run_cli("infer", str(tmp_path / "missing.jpg"), "--json", str(tmp_path / "r.json"), "--preset", "turbo")
    assert result.returncode != 0 and "unknown preset 'turbo'" in result.stderr and "Traceback" not in result.stderr
