"""The layer types of the search spaces and the three skip ops.

Layer types: regular conv, depthwise-separable, MBConv, and ``proj`` (a 1x1 conv and BN with no
activation: the layer-wise space's skip where the identity cannot apply).

Skip ops (a documented rule, so no combination ever builds a model that crashes):
- ``identity``: ``x + f(x)`` where stride is 1 and input and output filters are equal; anywhere
  else the layer has no shortcut (the TensorFlow reference's rule).
- ``pool``: ``f(x) + P(x)`` where ``P`` is a 3x3 average pool with the layer's stride, followed by a
  1x1 conv and batch norm when the filters change. It works for every layer, including the first
  layer of a stage that downsamples.
- ``none``: no shortcut.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from mnas.models.layers import ConvBnAct, SqueezeExcite

__all__ = ["ConvLayer", "DepthwiseSeparable", "InvertedResidual", "PoolShortcut", "ProjLayer", "make_layer"]


class PoolShortcut(nn.Module):
    """The ``pool`` skip op: 3x3 average pool with the layer's stride, then 1x1 projection if needed."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.pool = nn.AvgPool2d(3, stride, padding=1, count_include_pad=False)
        self.proj = ConvBnAct(in_chs, out_chs, 1, act_layer=None) if in_chs != out_chs else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.pool(x))


class _Residual(nn.Module):
    """Base for layers: adds the shortcut chosen by the skip op to the body's output."""

    def _init_skip(self, skip: str, in_chs: int, out_chs: int, stride: int) -> None:
        self.has_identity = skip == "identity" and stride == 1 and in_chs == out_chs
        self.shortcut = PoolShortcut(in_chs, out_chs, stride) if skip == "pool" else None

    def _add_skip(self, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.has_identity:
            return out + x
        if self.shortcut is not None:
            return out + self.shortcut(x)
        return out


def _se(chs: int, in_chs: int, se_ratio: float, act_layer: Callable[..., nn.Module]) -> nn.Module:
    # The reduced width is relative to the block's input filters (TF reference convention).
    return SqueezeExcite(chs, max(1, int(in_chs * se_ratio)), act_layer) if se_ratio > 0 else nn.Identity()


class ConvLayer(_Residual):
    """Regular conv: kxk conv, BN, act, [SE]."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, se_ratio: float,
                 skip: str, act_layer: Callable[..., nn.Module]):
        super().__init__()
        self.conv = ConvBnAct(in_chs, out_chs, kernel_size, stride, act_layer=act_layer)
        self.se = _se(out_chs, in_chs, se_ratio, act_layer)
        self._init_skip(skip, in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_skip(x, self.se(self.conv(x)))


class DepthwiseSeparable(_Residual):
    """Depthwise kxk, BN, act, [SE], pointwise 1x1, BN (an MBConv with expansion 1)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, se_ratio: float,
                 skip: str, act_layer: Callable[..., nn.Module]):
        super().__init__()
        self.conv_dw = ConvBnAct(in_chs, in_chs, kernel_size, stride, groups=in_chs, act_layer=act_layer)
        self.se = _se(in_chs, in_chs, se_ratio, act_layer)
        self.conv_pw = ConvBnAct(in_chs, out_chs, 1, act_layer=None)
        self._init_skip(skip, in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_skip(x, self.conv_pw(self.se(self.conv_dw(x))))


class InvertedResidual(_Residual):
    """MBConv: pointwise expand, BN, act, depthwise kxk, BN, act, [SE], pointwise project, BN."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int, exp_ratio: int,
                 se_ratio: float, skip: str, act_layer: Callable[..., nn.Module]):
        super().__init__()
        mid_chs = in_chs * exp_ratio
        self.conv_pw = ConvBnAct(in_chs, mid_chs, 1, act_layer=act_layer)
        self.conv_dw = ConvBnAct(mid_chs, mid_chs, kernel_size, stride, groups=mid_chs, act_layer=act_layer)
        self.se = _se(mid_chs, in_chs, se_ratio, act_layer)
        self.conv_pwl = ConvBnAct(mid_chs, out_chs, 1, act_layer=None)
        self._init_skip(skip, in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_skip(x, self.conv_pwl(self.se(self.conv_dw(self.conv_pw(x)))))


class ProjLayer(_Residual):
    """1x1 conv with the layer's stride, BN, no activation (the layer-wise space's non-identity skip)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, skip: str):
        super().__init__()
        self.conv = ConvBnAct(in_chs, out_chs, 1, stride, act_layer=None)
        self._init_skip(skip, in_chs, out_chs, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._add_skip(x, self.conv(x))


def make_layer(op: str, in_chs: int, out_chs: int, kernel_size: int, stride: int, exp_ratio: int,
               se_ratio: float, skip: str, act_layer: Callable[..., nn.Module]) -> nn.Module:
    """One layer of a block, from resolved arguments."""
    if op == "conv":
        return ConvLayer(in_chs, out_chs, kernel_size, stride, se_ratio, skip, act_layer)
    if op == "ds":
        return DepthwiseSeparable(in_chs, out_chs, kernel_size, stride, se_ratio, skip, act_layer)
    if op == "mbconv":
        return InvertedResidual(in_chs, out_chs, kernel_size, stride, exp_ratio, se_ratio, skip, act_layer)
    if op == "proj":
        if kernel_size != 1 or se_ratio:
            raise ValueError(f"a proj layer is a 1x1 conv without SE: got kernel {kernel_size}, se_ratio {se_ratio}")
        return ProjLayer(in_chs, out_chs, stride, skip)
    raise ValueError(f"unknown op {op!r}: expected conv, ds, mbconv or proj")
