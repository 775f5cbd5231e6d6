"""The NAS-Bench-201 network for an `NB201Cell` (the benchmark's ``TinyNetwork`` structure)."""

from __future__ import annotations

import torch
from torch import nn

from mnas.models.cells import ReLUConvBN, Zero
from mnas.space.cells.nb201 import EDGES, NB201Cell

__all__ = ["NB201Network", "ResidualReduction", "build_nb201", "make_nb201_op"]


def make_nb201_op(op: str, chs: int) -> nn.Module:
    """One edge op at stride 1 (NAS-Bench-201's cells never stride; the blocks between stages do)."""
    if op == "none":
        return Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "nor_conv_1x1":
        return ReLUConvBN(chs, chs, 1)
    if op == "nor_conv_3x3":
        return ReLUConvBN(chs, chs, 3)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    raise ValueError(f"unknown NB201 op {op!r}")


class NB201CellModule(nn.Module):
    """Node i sums the ops on its edges from nodes 0..i-1; the output is node 3."""

    def __init__(self, ops: tuple[str, ...], chs: int):
        super().__init__()
        self.edges = nn.ModuleList(make_nb201_op(op, chs) for op in ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for node in (1, 2, 3):
            ins = [op(nodes[j]) for op, (i, j) in zip(self.edges, EDGES, strict=True) if i == node]
            out = ins[0]
            for y in ins[1:]:
                out = out + y
            nodes.append(out)
        return nodes[3]


class ResidualReduction(nn.Module):
    """Between stages: ReLU-conv-BN 3x3 stride 2, ReLU-conv-BN 3x3, plus a 2x2 average pool and 1x1 conv shortcut."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__()
        self.conv_a = ReLUConvBN(in_chs, out_chs, 3, 2)
        self.conv_b = ReLUConvBN(out_chs, out_chs, 3, 1)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(in_chs, out_chs, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Network(nn.Module):
    """Stem conv + BN, three stages of cells (C, 2C, 4C) with residual reductions, BN, ReLU, pool, linear."""

    def __init__(self, arch: NB201Cell, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.arch_string = str(arch)
        c = arch.channels
        self.stem = nn.Sequential(nn.Conv2d(in_chans, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        cells: list[nn.Module] = []
        for stage in range(3):
            if stage:
                cells.append(ResidualReduction(c, 2 * c))
                c *= 2
            cells += [NB201CellModule(arch.ops, c) for _ in range(arch.cells_per_stage)]
        self.cells = nn.Sequential(*cells)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.num_features = c
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.lastact(self.cells(self.stem(x))).mean((2, 3))  # (B, 4C)
        return self.classifier(x)


def build_nb201(arch: NB201Cell, num_classes: int = 10, in_chans: int = 3) -> NB201Network:
    return NB201Network(arch, num_classes, in_chans)
