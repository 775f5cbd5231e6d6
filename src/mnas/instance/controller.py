"""The InstaNAS controller: a small residual CNN that sees a downsampled copy of the image and
outputs, per (layer, module) of the meta-graph, the probability of switching the module on.

InstaNAS's CIFAR controller is a three-stage residual network of basic blocks (16, 32, 64 filters)
with a sigmoid head of layers x modules outputs (the authors' ``Policy32``); here the image is
average-pooled by `downsample` first (InstaNAS's ImageNet controller does the same), which cuts
the controller's cost, and so its share of every image's latency, by about `downsample` squared.
"""

from __future__ import annotations

import torch
from torch import nn

from mnas.instance.metagraph import init_weights
from mnas.models.layers import ConvBnAct

__all__ = ["Controller"]


class _ResBlock(nn.Module):
    """Basic residual block: two 3x3 convs, a 1x1 projection where the shape changes."""

    def __init__(self, in_chs: int, out_chs: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(ConvBnAct(in_chs, out_chs, 3, stride), ConvBnAct(out_chs, out_chs, 3, 1, act_layer=None))
        self.shortcut = (nn.Identity() if stride == 1 and in_chs == out_chs
                         else ConvBnAct(in_chs, out_chs, 1, stride, act_layer=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class Controller(nn.Module):
    """Image (B, C, H, W) -> Bernoulli probabilities (B, num_layers, num_modules)."""

    def __init__(self, num_layers: int, num_modules: int = 5, in_chans: int = 3, downsample: int = 2, width: int = 16):
        super().__init__()
        for name, value in (("num_layers", num_layers), ("num_modules", num_modules), ("in_chans", in_chans),
                            ("downsample", downsample), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"controller {name}={value!r}: expected a positive integer")
        self.num_layers, self.num_modules, self.downsample, self.width = num_layers, num_modules, downsample, width
        self.pool = nn.AvgPool2d(downsample) if downsample > 1 else nn.Identity()
        self.stem = ConvBnAct(in_chans, width, 3, 1)
        self.blocks = nn.Sequential(_ResBlock(width, width, 1), _ResBlock(width, 2 * width, 2),
                                    _ResBlock(2 * width, 4 * width, 2))
        self.logits = nn.Linear(4 * width, num_layers * num_modules)
        init_weights(self)
        nn.init.zeros_(self.logits.weight)  # start at p = 0.5 everywhere: no module preferred before any reward

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(self.pool(x))).mean((2, 3))  # (B, 4w)
        return torch.sigmoid(self.logits(x)).view(-1, self.num_layers, self.num_modules)
