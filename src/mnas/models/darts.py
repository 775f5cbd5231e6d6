"""The DARTS CIFAR evaluation network for a `DartsGenotype` (the structure of quark0/darts ``model.py``).

`forward` returns the logits only, so the network trains, exports and is timed like any other. In
training mode with the auxiliary head it also leaves the head's logits in `aux_logits` (None
otherwise) for a trainer that adds DARTS's auxiliary loss (weight 0.4 in the paper); mnas's own
trainers do not. `drop_path_prob` (the genotype's drop-path by default) may be changed between
epochs, as DARTS's script raises it linearly from 0.
"""

from __future__ import annotations

import torch
from torch import nn

from mnas.models.cells import DilConv, FactorizedReduce, ReLUConvBN, SepConv, Zero, drop_path
from mnas.space.cells.darts import DartsGenotype

__all__ = ["AuxiliaryHead", "DartsCell", "DartsNetwork", "build_darts", "make_darts_op"]


def make_darts_op(op: str, chs: int, stride: int) -> nn.Module:
    """One of DARTS's eight ops on `chs` channels."""
    if op == "none":
        return Zero(stride)
    if op == "max_pool_3x3":
        return nn.MaxPool2d(3, stride, 1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride, 1, count_include_pad=False)
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(chs, chs)
    if op in ("sep_conv_3x3", "sep_conv_5x5"):
        return SepConv(chs, int(op[-1]), stride)
    if op in ("dil_conv_3x3", "dil_conv_5x5"):
        return DilConv(chs, int(op[-1]), stride)
    raise ValueError(f"unknown DARTS op {op!r}")


class DartsCell(nn.Module):
    """Preprocess the two previous states to `chs` channels, run the genotype's nodes, concatenate."""

    def __init__(self, edges: tuple[tuple[str, int], ...], concat: tuple[int, ...], prev_prev_chs: int, prev_chs: int,
                 chs: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        # After a reduction cell the state from two cells back is twice as large: reduce it too.
        self.preprocess0 = FactorizedReduce(prev_prev_chs, chs) if reduction_prev else ReLUConvBN(prev_prev_chs, chs, 1)
        self.preprocess1 = ReLUConvBN(prev_chs, chs, 1)
        self.ops = nn.ModuleList(make_darts_op(op, chs, 2 if reduction and src < 2 else 1) for op, src in edges)
        self.inputs = tuple(src for _, src in edges)
        self.concat = tuple(concat)
        self.out_chs = len(concat) * chs

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for k in range(len(self.ops) // 2):
            node = None
            for op, src in ((self.ops[2 * k], self.inputs[2 * k]), (self.ops[2 * k + 1], self.inputs[2 * k + 1])):
                h = op(states[src])
                if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                node = h if node is None else node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS's CIFAR auxiliary head (for an 8x8 map): ReLU, 5x5/3 average pool, 1x1 conv 128 + BN + ReLU,
    2x2 conv 768 + BN + ReLU, linear. Features are averaged over space before the linear layer: the
    same at 32x32 input (they are 1x1 there), and it lets larger inputs train."""

    def __init__(self, chs: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False), nn.AvgPool2d(5, 3, 0, count_include_pad=False),
            nn.Conv2d(chs, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 8:
            raise ValueError(f"the auxiliary head needs a feature map of at least 8x8 at 2/3 depth, got"
                             f" {tuple(x.shape[-2:])}: use an input of 32 px or more, or a genotype with 'noaux'")
        return self.classifier(self.features(x).mean((2, 3)))


class DartsNetwork(nn.Module):
    """Stem (3x3 conv to 3C + BN), L cells (reductions at L//3 and 2L//3), auxiliary head, pool, linear."""

    def __init__(self, arch: DartsGenotype, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.arch_string = str(arch)
        L, c = arch.layers, arch.channels
        stem_chs = 3 * c
        self.stem = nn.Sequential(nn.Conv2d(in_chans, stem_chs, 3, 1, 1, bias=False), nn.BatchNorm2d(stem_chs))
        self.aux_index = 2 * L // 3
        self.cells = nn.ModuleList()
        c_pp, c_p, reduction_prev, aux_chs = stem_chs, stem_chs, False, 0
        for i in range(L):
            reduction = i in (L // 3, 2 * L // 3)
            c = c * 2 if reduction else c
            edges, concat = (arch.reduce, arch.reduce_concat) if reduction else (arch.normal, arch.normal_concat)
            cell = DartsCell(edges, concat, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_chs, reduction
            if i == self.aux_index:
                aux_chs = c_p
        self.auxiliary_head = AuxiliaryHead(aux_chs, num_classes) if arch.auxiliary else None
        self.num_features = c_p
        self.classifier = nn.Linear(c_p, num_classes)
        self.drop_path_prob = arch.drop_path
        self.aux_logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.aux_logits = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                self.aux_logits = self.auxiliary_head(s1)
        return self.classifier(s1.mean((2, 3)))  # (B, classes)


def build_darts(arch: DartsGenotype, num_classes: int = 10, in_chans: int = 3) -> DartsNetwork:
    return DartsNetwork(arch, num_classes, in_chans)
