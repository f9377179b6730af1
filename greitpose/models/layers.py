"""Building blocks shared by every network configuration.

Greit-HRNet and Lite-HRNet differ only in which of these blocks a configuration picks: the
stem (Lite-HRNet's or the Large Kernel Stem), the channel weighting (cross-resolution or grouped)
and the spatial weighting (GAP + SE or the global spatial weighting).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
            relu: bool = False, act: nn.Module | None = None) -> nn.Sequential:
    """Conv without bias + BatchNorm (+ activation): the unit most of the network is made of."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    if act is not None:
        layers.append(act)
    return nn.Sequential(*layers)


def dw_conv_bn(channels: int, stride: int = 1) -> nn.Sequential:
    """Depth-wise 3x3 conv-BN, no activation (ShuffleNetV2 style)."""
    return conv_bn(channels, channels, 3, stride, groups=channels)


def split_halves(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two channel halves of x; the size is a constant, so ONNX gets a single Split."""
    return x.split(x.shape[1] // 2, dim=1)


def _is_channels_last(x: torch.Tensor) -> bool:
    """True when x is laid out (B, H, W, C) in memory (channels_last training), not NCHW."""
    return x.dim() == 4 and x.stride(1) < x.stride(3)


def shuffle_cat(a: torch.Tensor, b: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
    """Channel shuffle (2 groups) of cat([a, b]): a0, b0, a1, b1, ...

    Concatenating along the height axis and reading the result as (B, 2C, H, W) puts every
    channel of b right after the same channel of a, so the shuffle costs one copy (the concat)
    instead of a concat plus a gather. `like`, a tensor already of the output's shape, saves
    the exported graph the shape arithmetic.
    """
    if _is_channels_last(a):
        # (B, H, W, C) memory: stacking the two halves on a new last axis interleaves them.
        n, c, h, w = a.shape
        joined = torch.stack([a.permute(0, 2, 3, 1), b.permute(0, 2, 3, 1)], dim=-1)
        return joined.view(n, h, w, 2 * c).permute(0, 3, 1, 2)
    joined = torch.cat([a, b], dim=2)
    if like is not None:
        return joined.view_as(like)
    return joined.view(a.shape[0], 2 * a.shape[1], a.shape[2], a.shape[3])


def subgrid_depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                           dilation: int) -> torch.Tensor:
    """A stride-1, same-size depth-wise convolution with `dilation`, computed as the undilated
    kernel over the dilation x dilation interleaved sub-grids of x (space-to-batch).

    Output pixel (a*d + r, b*d + s) only ever sees inputs of sub-grid (r, s), one sub-grid pixel
    apart; the zeros that pad the input to a multiple of d are the convolution's own zero
    padding. So the result is the dilated convolution's, while the work goes to PyTorch's
    undilated depth-wise kernels, several times faster than its dilated ones on CPUs without
    AVX-512, backward above all (docs/benchmarks.md). Keeps x's memory layout.
    """
    n, c, h, w = x.shape
    d, k = dilation, weight.shape[-1]
    layout = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    hp, wp = -(-h // d) * d, -(-w // d) * d
    gh, gw = hp // d, wp // d
    # in (B, H, W, C) order, whatever the layout: the sub-grids come out channels_last, where
    # PyTorch's depth-wise kernels are fastest
    if (hp, wp) != (h, w):
        x = F.pad(x, (0, wp - w, 0, hp - h))
    nhwc = x.permute(0, 2, 3, 1)
    grids = (nhwc.reshape(n, gh, d, gw, d, c).permute(0, 2, 4, 1, 3, 5)
             .reshape(n * d * d, gh, gw, c).permute(0, 3, 1, 2))
    y = F.conv2d(grids, weight, bias, padding=k // 2, groups=c)
    y = (y.permute(0, 2, 3, 1).reshape(n, d, d, gh, gw, c).permute(0, 3, 1, 4, 2, 5)
         .reshape(n, hp, wp, c).permute(0, 3, 1, 2))
    return y[:, :, :h, :w].contiguous(memory_format=layout)


class DilatedDepthwiseConv(nn.Conv2d):
    """nn.Conv2d (same weights, same state dict) for a dilated depth-wise convolution that runs
    as `subgrid_depthwise_conv`; an ONNX export keeps the one dilated Conv node."""

    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__(channels, channels, kernel, padding=dilation * (kernel // 2),
                         dilation=dilation, groups=channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return super().forward(x)
        return subgrid_depthwise_conv(x, self.weight, self.bias, self.dilation[0])


def pool_factor(index: int, count: int) -> int:
    """Resolution ratio of branch `index` to the last (smallest) of `count` consecutive branches."""
    return 2 ** (count - 1 - index)


class LKA(nn.Module):
    """Large Kernel Attention (VAN): x * PW(DW7x7 dilation 3 (DW5x5(x)))."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 5, padding=2, groups=channels)
        self.dw_dilated = DilatedDepthwiseConv(channels, 7, dilation=3)
        self.pw = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.pw(self.dw_dilated(self.dw(x)))


class Stem(nn.Module):
    """Lite-HRNet's shuffle stem, optionally with the two LKA modules of the Large Kernel Stem.

    Output: 32 channels at 1/4 of the input resolution.
    """

    def __init__(self, channels: int = 32, large_kernel: bool = True) -> None:
        super().__init__()
        half, mid = channels // 2, channels  # half B expands 16 -> 32 in both stems
        self.conv1 = conv_bn(3, channels, 3, 2, relu=True)
        self.branch_a = nn.Sequential(
            *([LKA(half)] if large_kernel else []),
            dw_conv_bn(half, 2),
            conv_bn(half, half, relu=True),
        )
        self.branch_b = nn.Sequential(
            conv_bn(half, mid, relu=True),
            dw_conv_bn(mid, 2),
            *([LKA(mid)] if large_kernel else []),
            conv_bn(mid, half, relu=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = split_halves(self.conv1(x))
        return shuffle_cat(self.branch_a(a), self.branch_b(b))


class ResolutionWeighting(nn.Module):
    """Conditional channel weighting over a set of branches (Lite-HRNet's CRW).

    Every member is pooled to the smallest member's size, the concatenation goes through
    PW conv-BN-ReLU (C -> C/ratio) and PW conv-BN-Sigmoid, and each branch is multiplied by
    its nearest-upsampled share of the weights. Members are consecutive branches, each half the
    size of the one before, so pooling and upsampling factors are constants (inputs are
    multiples of 32): equal to adaptive pooling, and exportable to ONNX without shape arithmetic.
    """

    def __init__(self, channels: Sequence[int], ratio: int = 8) -> None:
        super().__init__()
        self.channels = list(channels)
        total = sum(self.channels)
        self.squeeze = conv_bn(total, total // ratio, relu=True)
        self.excite = conv_bn(total // ratio, total, act=nn.Sigmoid())

    def weights(self, pooled: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-member weights at the smallest member's size, from the pooled members."""
        return list(self.excite(self.squeeze(torch.cat(pooled, dim=1))).split(self.channels, dim=1))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return apply_weightings(xs, [self])


def apply_weightings(xs: list[torch.Tensor], weightings: Sequence[ResolutionWeighting]) -> list[torch.Tensor]:
    """Resolution weightings applied one after another to the consecutive branches `xs`.

    A weight is constant over the block of pixels it is upsampled to, so pooling a weighted
    branch equals weighting the pooled branch. The branches are therefore pooled once, the
    weightings chained at the small size, and each larger branch multiplied once by the
    upsampled product of its weights: the same numbers as weighting, upsampling and pooling
    again at every step, with one pass at full resolution instead of one per weighting.
    """
    factors = [pool_factor(i, len(xs)) for i in range(len(xs))]
    pooled = [F.avg_pool2d(x, f) if f > 1 else x for x, f in zip(xs, factors)]
    scales: list[torch.Tensor | None] = [None] * len(xs)
    for weighting in weightings:
        weights = weighting.weights(pooled)
        pooled = [p * w for p, w in zip(pooled, weights)]
        scales = [None if f == 1 else w if s is None else s * w for s, w, f in zip(scales, weights, factors)]
    return [p if s is None else x * F.interpolate(s, scale_factor=float(f), mode="nearest")
            for x, p, s, f in zip(xs, pooled, scales, factors)]


class GroupedChannelWeighting(nn.Module):
    """GCW: resolution weighting applied within each group of branches, `repeats` times in a row.

    Groups are fixed by branch index (high = branches 1-2, low = branches 3-4), so the size of
    each weighting stays the same as the network deepens.
    """

    GROUPS = ((0, 1), (2, 3))

    def __init__(self, channels: Sequence[int], ratio: int = 8, repeats: int = 2) -> None:
        super().__init__()
        self.groups = [[i for i in g if i < len(channels)] for g in self.GROUPS]
        self.groups = [g for g in self.groups if g]
        self.layers = nn.ModuleList(
            nn.ModuleList(ResolutionWeighting([channels[i] for i in g], ratio) for g in self.groups)
            for _ in range(repeats))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        xs = list(xs)
        for k, group in enumerate(self.groups):
            weighted = apply_weightings([xs[i] for i in group], [layer[k] for layer in self.layers])
            for i, y in zip(group, weighted):
                xs[i] = y
        return xs


class SpatialWeighting(nn.Module):
    """Lite-HRNet's spatial weighting: x * Sigmoid(PW(ReLU(PW(GAP(x)))))."""

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        self.se = nn.Sequential(
            nn.Conv2d(channels, channels // ratio, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // ratio, channels, 1), nn.Sigmoid())

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Global context of x as (B, C, 1, 1); here a plain global average."""
        return x.mean(dim=(2, 3), keepdim=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.se(self.context(x))


class GlobalSpatialWeighting(SpatialWeighting):
    """GSW: the global average replaced by a learned, gated average over all pixels.

    z = Sigmoid(PW(ReLU(PW(x)))) gives each pixel a weight; y = X' z / (H W) (exactly GAP when
    z = 1), then the same SE step as Lite-HRNet's spatial weighting. X' z / (H W) is computed
    as the mean of x * z over pixels: the same numbers, without reshapes.
    """

    def __init__(self, channels: int, ratio: int = 8) -> None:
        super().__init__(channels, ratio)
        self.gate = nn.Sequential(
            nn.Conv2d(channels, channels // ratio, 1), nn.ReLU(inplace=True),
            nn.Conv2d(channels // ratio, 1, 1), nn.Sigmoid())

    def context(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.gate(x)).mean(dim=(2, 3), keepdim=True)
