"""The high-resolution pose network every configuration builds (Greit-HRNet, Lite-HRNet, ablations)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from greitpose.models.config import ModelConfig
from greitpose.models.layers import (
    GlobalSpatialWeighting,
    GroupedChannelWeighting,
    ResolutionWeighting,
    SpatialWeighting,
    Stem,
    conv_bn,
    dw_conv_bn,
    shuffle_cat,
    split_halves,
)


def dw_pw(cin: int, cout: int, stride: int, relu: bool = True) -> nn.Sequential:
    """DW3x3 conv-BN then PW conv-BN(-ReLU): the separable step of transitions, fusion and head."""
    return nn.Sequential(dw_conv_bn(cin, stride), conv_bn(cin, cout, relu=relu))


class WeightingBlock(nn.Module):
    """One Greit block (or Lite-HRNet conditional channel weighting block) over all branches.

    Half of every branch's channels pass untouched; the other half goes through channel
    weighting (across branches), a DW3x3 conv-BN per branch, and spatial weighting per branch.
    """

    def __init__(self, channels: Sequence[int], config: ModelConfig) -> None:
        super().__init__()
        halves = [c // 2 for c in channels]
        if config.grouped_channel_weighting:
            self.channel_weighting: nn.Module = GroupedChannelWeighting(halves, config.reduce_ratio)
        else:
            self.channel_weighting = ResolutionWeighting(halves, config.reduce_ratio)
        self.depthwise = nn.ModuleList(dw_conv_bn(c) for c in halves)
        self.spatial = nn.ModuleList(
            GlobalSpatialWeighting(c, config.reduce_ratio) if config.global_spatial_weighting
            else SpatialWeighting(c, 4) for c in halves)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        kept, processed = zip(*(split_halves(x) for x in xs))
        processed = self.channel_weighting(list(processed))
        return [shuffle_cat(k, sw(dw(p)), like=x)
                for x, k, p, dw, sw in zip(xs, kept, processed, self.depthwise, self.spatial)]


class Fuse(nn.Module):
    """Exchange between branches after every module: each output is the ReLU of a plain sum."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        n = len(channels)
        self.paths = nn.ModuleList()
        for i in range(n):
            row = nn.ModuleList()
            for j in range(n):
                if j > i:  # lower resolution -> PW conv-BN, then nearest upsample
                    row.append(conv_bn(channels[j], channels[i]))
                elif j == i:
                    row.append(nn.Identity())
                else:  # higher resolution -> chain of stride-2 separable steps
                    steps = [dw_pw(channels[j], channels[j], 2) for _ in range(i - j - 1)]
                    steps.append(dw_pw(channels[j], channels[i], 2, relu=False))
                    row.append(nn.Sequential(*steps))
            self.paths.append(row)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        # Nearest upsampling commutes with the sum, so the lower-resolution paths are added up
        # from the lowest branch, one 2x step at a time: the same outputs with one upsample per
        # level instead of one per path at full size, and the branch's own input added last, so
        # that exported graphs keep the whole sum in one memory layout.
        out = []
        for i, row in enumerate(self.paths):
            total: torch.Tensor | None = None
            for j in range(len(xs) - 1, i, -1):
                y = row[j](xs[j])
                total = y if total is None else y + F.interpolate(total, scale_factor=2.0, mode="nearest")
            if total is not None:
                total = F.interpolate(total, scale_factor=2.0, mode="nearest")
            for j in range(i):
                y = row[j](xs[j])
                total = y if total is None else total + y
            assert total is not None  # a fusion always has at least two branches
            out.append(F.relu(xs[i] + total))
        return out


class Stage(nn.Module):
    """A stage: `modules` times (blocks, then fusion) on a fixed set of branches."""

    def __init__(self, channels: Sequence[int], modules: int, config: ModelConfig) -> None:
        super().__init__()
        self.units = nn.ModuleList(
            nn.ModuleList([*(WeightingBlock(channels, config) for _ in range(config.blocks_per_module)),
                           Fuse(channels)])
            for _ in range(modules))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        for unit in self.units:
            for layer in unit:
                xs = layer(xs)
        return xs


class Transition(nn.Module):
    """Adapt widths between stages and open the next, lower-resolution branch."""

    def __init__(self, before: Sequence[int], after: Sequence[int]) -> None:
        super().__init__()
        self.paths = nn.ModuleList()
        for i, cout in enumerate(after):
            if i < len(before):
                cin = before[i]
                self.paths.append(nn.Identity() if cin == cout else dw_pw(cin, cout, 1))
            else:
                cin = before[-1]
                steps = [dw_pw(cin, cin, 2) for _ in range(i - len(before))]
                steps.append(dw_pw(cin, cout, 2))
                self.paths.append(nn.Sequential(*steps))
        self.num_before = len(before)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [path(xs[min(i, self.num_before - 1)]) for i, path in enumerate(self.paths)]


class IterativeHead(nn.Module):
    """From the lowest branch up: upsample the previous result, add, DW+PW down to the next width."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        rev = list(channels)[::-1]
        self.projects = nn.ModuleList(
            dw_pw(c, rev[i + 1] if i + 1 < len(rev) else c, 1) for i, c in enumerate(rev))

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        last = None
        for x, project in zip(xs[::-1], self.projects):
            if last is not None:  # each branch is exactly twice the size of the one below
                x = x + F.interpolate(last, scale_factor=2.0, mode="bilinear", align_corners=True)
            last = project(x)
        assert last is not None
        return last


class PoseHRNet(nn.Module):
    """Input (B, 3, H, W) normalised RGB crops -> (B, K, H/4, W/4) keypoint heatmaps."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.stem = Stem(config.stem_channels, config.large_kernel_stem)
        widths: list[int] = [config.stem_channels]
        self.transitions = nn.ModuleList()
        self.stages = nn.ModuleList()
        for s, modules in enumerate(config.stage_modules):
            new = list(config.channels[: s + 2])
            self.transitions.append(Transition(widths, new))
            self.stages.append(Stage(new, modules, config))
            widths = new
        self.head = IterativeHead(widths)
        self.final = nn.Conv2d(widths[0], config.num_keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [self.stem(x)]
        for transition, stage in zip(self.transitions, self.stages):
            xs = stage(transition(xs))
        return self.final(self.head(xs))


def build_model(config: ModelConfig) -> PoseHRNet:
    """A freshly initialised network for `config` (normal(0, 0.001) convs, as HRNet-family heads)."""
    model = PoseHRNet(config)
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model
