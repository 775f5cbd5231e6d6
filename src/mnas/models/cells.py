"""The ops cell networks are made of (DARTS and NAS-Bench-201), each from resolved arguments.

The module structure follows the papers' public code (quark0/darts ``operations.py``,
D-X-Y/AutoDL-Projects ``cell_operations.py``) so that parameter counts are exactly theirs:
ReLU before every conv, convs without bias, affine batch norm after.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DilConv", "FactorizedReduce", "ReLUConvBN", "SepConv", "Zero", "drop_path"]


class ReLUConvBN(nn.Sequential):
    """ReLU, kxk conv (no bias), batch norm."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1, padding: int | None = None):
        pad = kernel_size // 2 if padding is None else padding
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(in_chs, out_chs, kernel_size, stride, pad, bias=False),
                         nn.BatchNorm2d(out_chs))


class DilConv(nn.Sequential):
    """ReLU, dilated depthwise kxk conv (dilation 2), pointwise conv, batch norm (DARTS's dil_conv)."""

    def __init__(self, chs: int, kernel_size: int, stride: int, dilation: int = 2):
        pad = dilation * (kernel_size // 2)  # keeps the 'same' size: 2 for 3x3, 4 for 5x5
        super().__init__(nn.ReLU(inplace=False),
                         nn.Conv2d(chs, chs, kernel_size, stride, pad, dilation=dilation, groups=chs, bias=False),
                         nn.Conv2d(chs, chs, 1, bias=False), nn.BatchNorm2d(chs))


class SepConv(nn.Sequential):
    """Two stacked (ReLU, depthwise kxk, pointwise, BN); only the first depthwise conv strides (DARTS's sep_conv)."""

    def __init__(self, chs: int, kernel_size: int, stride: int):
        pad = kernel_size // 2
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(chs, chs, kernel_size, stride, pad, groups=chs, bias=False),
                         nn.Conv2d(chs, chs, 1, bias=False), nn.BatchNorm2d(chs),
                         nn.ReLU(inplace=False), nn.Conv2d(chs, chs, kernel_size, 1, pad, groups=chs, bias=False),
                         nn.Conv2d(chs, chs, 1, bias=False), nn.BatchNorm2d(chs))


class FactorizedReduce(nn.Module):
    """Halve the resolution without losing half the pixels: ReLU, two 1x1 stride-2 convs of out/2
    filters, the second on the input shifted by one pixel, concatenated, batch norm."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        if out_chs % 2:
            raise ValueError(f"a factorized reduction needs an even number of output filters, got {out_chs}")
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(in_chs, out_chs // 2, 1, 2, bias=False)
        self.conv_2 = nn.Conv2d(in_chs, out_chs // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Zero(nn.Module):
    """The ``none`` op: zeros of the (strided) input's shape. Multiplying keeps the graph connected,
    so every parameter upstream still gets a (zero) gradient, as in the papers' code."""

    def __init__(self, stride: int = 1):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


def drop_path(x: torch.Tensor, drop_prob: float) -> torch.Tensor:
    """Zero whole samples with probability `drop_prob`, scaling the rest by 1 / (1 - p) (training only)."""
    if drop_prob <= 0.0:
        return x
    keep = 1.0 - drop_prob
    mask = torch.empty(x.shape[0], 1, 1, 1, dtype=x.dtype, device=x.device).bernoulli_(keep)  # (B, 1, 1, 1)
    return x / keep * mask
