"""Small layers the blocks are made of. Every layer receives resolved arguments, never strings."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

__all__ = ["ACT_LAYERS", "ConvBnAct", "SqueezeExcite", "get_act_layer"]

ACT_LAYERS: dict[str, Callable[..., nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "swish": nn.SiLU,
    "hswish": nn.Hardswish,
}


def get_act_layer(name: str) -> Callable[..., nn.Module]:
    try:
        return ACT_LAYERS[name]
    except KeyError:
        raise ValueError(f"unknown activation {name!r}: expected one of {', '.join(ACT_LAYERS)}") from None


class ConvBnAct(nn.Sequential):
    """kxk conv (no bias), batch norm, optional activation; 'same' padding for odd kernels."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1, groups: int = 1,
                 act_layer: Callable[..., nn.Module] | None = nn.ReLU, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d):
        layers: list[nn.Module] = [
            nn.Conv2d(in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
            norm_layer(out_chs),
        ]
        if act_layer is not None:
            layers.append(act_layer(inplace=True))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: global pool, 1x1 reduce, act, 1x1 expand, sigmoid gate."""

    def __init__(self, chs: int, rd_chs: int, act_layer: Callable[..., nn.Module] = nn.ReLU):
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1)
        self.act = act_layer(inplace=True)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * torch.sigmoid(s)
