"""Weights file format: self-describing, and strict about architecture."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from greitpose import checkpoint
from greitpose.errors import GreitposeError
from greitpose.models import get_config


def test_round_trip_restores_config_keypoints_and_weights(tmp_path: Path) -> None:
    model = checkpoint.new_model(get_config("lite-hrnet-18+gsw", 16, (256, 256)))
    path = checkpoint.save(model, tmp_path / "m.pt")
    loaded = checkpoint.load(path)
    assert loaded.config == model.config
    assert loaded.keypoints.name == "mpii" and loaded.keypoints.num_keypoints == 16
    assert loaded.mean == checkpoint.IMAGENET_MEAN
    x = torch.randn(1, 3, 256, 256)
    model.network.eval()
    with torch.no_grad():
        assert torch.equal(model.network(x), loaded.network(x))
    assert not list(tmp_path.glob("*.partial"))


def test_expected_model_mismatch_is_an_error(tmp_path: Path) -> None:
    path = checkpoint.save(checkpoint.new_model(get_config("greit-hrnet-18")), tmp_path / "m.pt")
    with pytest.raises(GreitposeError, match="holds weights for 'greit-hrnet-18', not 'greit-hrnet-30'"):
        checkpoint.load(path, expect_model="greit-hrnet-30")


def test_weights_that_do_not_fit_the_recorded_architecture(tmp_path: Path) -> None:
    model18 = checkpoint.new_model(get_config("greit-hrnet-18"))
    record = model18.metadata()
    record["config"] = get_config("greit-hrnet-30").to_dict()  # a lie: 18's weights, 30's config
    record["state_dict"] = model18.network.state_dict()
    torch.save(record, tmp_path / "bad.pt")
    with pytest.raises(GreitposeError, match="does not fit 'greit-hrnet-30'"):
        checkpoint.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all"])
def test_non_checkpoint_files_are_clear_errors(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "junk.pt"
    path.write_bytes(content)
    with pytest.raises(GreitposeError, match="junk.pt"):
        checkpoint.load(path)


def test_foreign_state_dict_is_rejected(tmp_path: Path) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(GreitposeError, match="not a greitpose weights file"):
        checkpoint.load(tmp_path / "other.pt")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(GreitposeError, match="does not exist"):
        checkpoint.load(tmp_path / "nope.pt")


def test_average_is_the_mean_of_the_weights(tmp_path: Path) -> None:
    from greitpose.train.averaging import average_weights

    config = get_config("greit-hrnet-18", 17, (128, 96))
    a = checkpoint.save(checkpoint.new_model(config), tmp_path / "a.pt", extra={"samples_seen": 10})
    torch.manual_seed(1)
    b = checkpoint.save(checkpoint.new_model(config), tmp_path / "b.pt", extra={"samples_seen": 30})
    out = average_weights([a, b], tmp_path / "avg.pt")
    sa, sb = checkpoint.load(a).network.state_dict(), checkpoint.load(b).network.state_dict()
    avg = checkpoint.load(out).network.state_dict()
    key = next(k for k, v in sa.items() if v.is_floating_point() and not torch.equal(v, sb[k]))
    assert torch.allclose(avg[key], (sa[key] + sb[key]) / 2)
    assert checkpoint.read_record(out)["extra"]["samples_seen"] == 30


def test_average_refuses_different_models(tmp_path: Path) -> None:
    from greitpose.train.averaging import average_weights

    a = checkpoint.save(checkpoint.new_model(get_config("greit-hrnet-18", 17, (128, 96))), tmp_path / "a.pt")
    b = checkpoint.save(checkpoint.new_model(get_config("greit-hrnet-18", 17, (256, 192))), tmp_path / "b.pt")
    with pytest.raises(GreitposeError, match="input_size"):
        average_weights([a, b], tmp_path / "avg.pt")
    with pytest.raises(GreitposeError, match="at least two"):
        average_weights([a], tmp_path / "avg.pt")
    assert not (tmp_path / "avg.pt").exists()


def test_average_by_shares(tmp_path: Path) -> None:
    from greitpose.train.averaging import average_weights, parse_shares

    assert parse_shares("3,1", 2) == [0.75, 0.25]
    for bad, needle in (("1,2,3", "3 shares for 2"), ("1,-1", "above 0"), ("a,b", "not a list of numbers")):
        with pytest.raises(GreitposeError, match=needle):
            parse_shares(bad, 2)
    config = get_config("greit-hrnet-18", 17, (128, 96))
    a = checkpoint.save(checkpoint.new_model(config), tmp_path / "a.pt")
    torch.manual_seed(1)
    b = checkpoint.save(checkpoint.new_model(config), tmp_path / "b.pt")
    out = average_weights([a, b], tmp_path / "mix.pt", shares=[0.75, 0.25])
    sa, sb = checkpoint.load(a).network.state_dict(), checkpoint.load(b).network.state_dict()
    mix = checkpoint.load(out)
    key = next(k for k, v in sa.items() if v.is_floating_point() and not torch.equal(v, sb[k]))
    assert torch.allclose(mix.network.state_dict()[key], 0.75 * sa[key] + 0.25 * sb[key])
    assert mix.extra["shares"] == [0.75, 0.25] and mix.extra["averaged_from"] == ["a.pt", "b.pt"]
