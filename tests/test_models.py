"""Model family: sizes against the paper and the official Lite-HRNet counts, output shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from greitpose.errors import GreitposeError
from greitpose.models import build_model, get_config, model_names
from greitpose.models.complexity import measure
from greitpose.models.layers import DilatedDepthwiseConv

from conftest import run_cli


@pytest.mark.parametrize("name, lo, hi, max_gmacs", [
    ("greit-hrnet-18", 1.10e6, 1.20e6, 0.27),
    ("greit-hrnet-30", 1.75e6, 1.85e6, 0.40),
    ("lite-hrnet-18", 1.131e6 - 5e3, 1.131e6 + 5e3, 0.21),
    ("lite-hrnet-30", 1.764e6 - 5e3, 1.764e6 + 5e3, 0.32),
])
def test_model_size_matches_paper(name: str, lo: float, hi: float, max_gmacs: float) -> None:
    c = measure(get_config(name))
    assert lo <= c.params <= hi
    assert 0.15 < c.gmacs <= max_gmacs


def test_lite_hrnet_18_matches_official_count_exactly() -> None:
    assert measure(get_config("lite-hrnet-18")).params == 1_130_769


@pytest.mark.parametrize("size", [(256, 192), (384, 288), (256, 256)])
def test_heatmaps_are_a_quarter_of_the_input(size: tuple[int, int]) -> None:
    model = build_model(get_config("greit-hrnet-18", 16, size)).eval()
    with torch.no_grad():
        y = model(torch.randn(2, 3, *size))
    assert y.shape == (2, 16, size[0] // 4, size[1] // 4)


def test_every_table6_ablation_is_a_distinct_configuration() -> None:
    names = model_names()
    assert {"greit-hrnet-18", "greit-hrnet-30", "lite-hrnet-18", "lite-hrnet-30"} <= set(names)
    configs = [get_config(n) for n in names]
    switches = {(c.stage_modules, c.grouped_channel_weighting, c.global_spatial_weighting,
                 c.large_kernel_stem) for c in configs}
    assert len(switches) == len(names) == 16
    # all three switches on is Greit-HRNet, whatever the spelling
    assert get_config("lite-hrnet-18+lks+gsw+gcw").name == "greit-hrnet-18"


def test_ablation_switches_change_the_blocks() -> None:
    lite, greit = build_model(get_config("lite-hrnet-18")), build_model(get_config("greit-hrnet-18"))
    kinds = lambda m: {type(x).__name__ for x in m.modules()}  # noqa: E731
    assert {"GroupedChannelWeighting", "GlobalSpatialWeighting", "LKA"} <= kinds(greit)
    assert not {"GroupedChannelWeighting", "GlobalSpatialWeighting", "LKA"} & kinds(lite)


def test_gsw_with_constant_gate_is_global_average_pooling() -> None:
    from greitpose.models.layers import GlobalSpatialWeighting

    gsw = GlobalSpatialWeighting(16)
    torch.nn.init.zeros_(gsw.gate[2].weight)
    torch.nn.init.constant_(gsw.gate[2].bias, 50.0)  # sigmoid -> 1 everywhere
    x = torch.randn(2, 16, 8, 6)
    assert torch.allclose(gsw.context(x), x.mean(dim=(2, 3), keepdim=True), atol=1e-6)


def test_shuffle_cat_is_the_two_group_channel_shuffle_of_the_concatenation() -> None:
    from greitpose.models.layers import shuffle_cat

    a, b = torch.randn(2, 5, 4, 3), torch.randn(2, 5, 4, 3)
    joined = torch.cat([a, b], dim=1)
    expected = joined.view(2, 2, 5, 4, 3).transpose(1, 2).reshape(2, 10, 4, 3)  # ShuffleNet's definition
    assert torch.equal(shuffle_cat(a, b), expected)
    assert torch.equal(shuffle_cat(a, b, like=joined), expected)
    assert torch.equal(shuffle_cat(a, b)[:, 0::2], a) and torch.equal(shuffle_cat(a, b)[:, 1::2], b)


def test_chained_weightings_equal_weighting_at_full_size_each_time() -> None:
    import torch.nn.functional as F

    from greitpose.models.layers import GroupedChannelWeighting

    torch.manual_seed(0)
    gcw = GroupedChannelWeighting([8, 16, 32], ratio=4, repeats=2).eval()
    xs = [torch.randn(2, c, 32 >> i, 24 >> i) for i, c in enumerate([8, 16, 32])]
    with torch.no_grad():
        got = gcw(xs)
        expected = list(xs)
        for layer in gcw.layers:  # the definition: pool, weigh, upsample, multiply, every time
            for group, weighting in zip(gcw.groups, layer):
                members = [expected[i] for i in group]
                factors = [2 ** (len(group) - 1 - k) for k in range(len(group))]
                weights = weighting.weights([F.avg_pool2d(x, f) if f > 1 else x for x, f in zip(members, factors)])
                for i, x, w, f in zip(group, members, weights, factors):
                    expected[i] = x * F.interpolate(w, scale_factor=float(f), mode="nearest")
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-6)


def test_fusion_equals_the_plain_sum_of_its_paths() -> None:
    import torch.nn.functional as F

    from greitpose.models.greit_hrnet import Fuse

    torch.manual_seed(0)
    channels = [8, 16, 32, 64]
    fuse = Fuse(channels).eval()
    xs = [torch.randn(2, c, 32 >> i, 24 >> i) for i, c in enumerate(channels)]
    with torch.no_grad():
        got = fuse(xs)
        for i, row in enumerate(fuse.paths):
            total = xs[i].clone()
            for j, path in enumerate(row):
                if j != i:
                    y = path(xs[j])
                    total += F.interpolate(y, scale_factor=2.0 ** (j - i), mode="nearest") if j > i else y
            assert torch.allclose(got[i], F.relu(total), atol=1e-5), i


@pytest.mark.parametrize("bad", ["resnet-50", "greit-hrnet-18+gcw", "lite-hrnet-18+gcw+gcw"])
def test_unknown_model_names_are_rejected(bad: str) -> None:
    with pytest.raises(GreitposeError, match="unknown model"):
        get_config(bad)


def test_input_size_must_be_a_multiple_of_32() -> None:
    with pytest.raises(GreitposeError, match="multiples of 32"):
        get_config("greit-hrnet-18", input_size=(250, 192))


def test_info_json_cli() -> None:
    result = run_cli("info", "greit-hrnet-18", "--json", "--input-size", "256x192")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["model"] == "greit-hrnet-18" and data["heatmap_size"] == [64, 48]
    assert 1.10e6 <= data["params"] <= 1.20e6 and data["gmacs"] <= 0.27


def test_info_says_which_weights_are_found_and_where_missing_ones_go(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from greitpose.setup_report import weights_items

    monkeypatch.setenv("GREITPOSE_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("GREITPOSE_OFFLINE", "1")
    items = {item.name: item for item in weights_items()}
    pose = {k: v for k, v in items.items() if k.startswith("pose weights")}
    assert sorted(pose) == ["pose weights (accurate, balanced)", "pose weights (fast)"]
    for item in pose.values():  # the shipped files: found, or named as missing
        assert Path(item.value).is_file() if item.ok else "missing" in item.value
    detector = items["detector (default)"]
    if not detector.ok:  # no yolo11n.pt in the shipped folders
        assert detector.value == f"yolo11n.pt: missing; put it in {tmp_path}/ or pass --detector PATH"
    (tmp_path / "yolo11n.pt").write_bytes(b"stand-in")
    report = json.loads(run_cli("info", "--json", env={"GREITPOSE_WEIGHTS": str(tmp_path)}).stdout)
    detector = report["installation"]["detector (default)"]
    assert detector["ok"] and Path(detector["value"]).is_file()
    assert len(report["models"]) > 4 and report["installation"]["offline"]["value"].startswith("yes")


def test_info_unknown_model_is_one_line_error() -> None:
    result = run_cli("info", "no-such-net")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "unknown model 'no-such-net'" in result.stderr


def test_channels_last_gives_the_same_outputs_and_gradients() -> None:
    """Training runs in channels_last on CPUs: the channel shuffle must interleave the same way.
    In float64, so that rounding cannot hide a wrong order."""
    torch.manual_seed(0)
    model = build_model(get_config("greit-hrnet-18", 17, (64, 64))).train().double()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)

    def run(net: torch.nn.Module, inp: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        net.zero_grad()
        y = net(inp)
        y.square().sum().backward()
        return y.detach(), [p.grad.clone() for p in net.parameters()]

    y, grads = run(model, x)
    y_cl, grads_cl = run(model.to(memory_format=torch.channels_last),
                         x.contiguous(memory_format=torch.channels_last))
    assert torch.allclose(y, y_cl, rtol=0, atol=1e-12)
    top = max(float(g.abs().max()) for g in grads)
    assert max(float((a - b).abs().max()) for a, b in zip(grads, grads_cl)) <= 1e-10 * top


@pytest.mark.parametrize("size", [(12, 9), (13, 10), (7, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subgrid_dilated_convolution_equals_the_plain_one(size: tuple[int, int], channels_last: bool) -> None:
    """The space-to-batch formulation must give nn.Conv2d's outputs and gradients (float64), on
    sizes that are and are not multiples of the dilation, in either memory layout."""
    torch.manual_seed(0)
    fast = DilatedDepthwiseConv(4, 7, dilation=3).double()
    plain = torch.nn.Conv2d(4, 4, 7, padding=9, dilation=3, groups=4).double()
    plain.load_state_dict(fast.state_dict())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 4, *size, dtype=torch.float64).contiguous(memory_format=fmt)
    outs, grads = [], []
    for conv in (fast, plain):
        inp = x.clone().requires_grad_(True)
        y = conv(inp)
        (y * torch.arange(y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
        outs.append(y)
        grads.append([inp.grad, conv.weight.grad, conv.bias.grad])
    assert outs[0].shape == outs[1].shape == x.shape
    assert torch.allclose(outs[0], outs[1], rtol=0, atol=1e-12)
    for a, b in zip(*grads):
        assert torch.allclose(a, b, rtol=1e-12, atol=1e-9)
    assert outs[0].is_contiguous(memory_format=fmt)
