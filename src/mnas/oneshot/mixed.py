"""Continuous relaxations of the cell spaces for differentiable search (DARTS, GDAS).

Every edge of a cell is a `MixedOp` holding one module per candidate op, built by the same
constructors as the standalone networks (`make_nb201_op`, `make_darts_op`), so the op a search
derives is exactly the module `build_model` builds. The architecture weights (one row of logits
per edge, shared by all cells of a kind, as in DARTS and GDAS) live in the network as parameters
named ``alpha*``; `weight_parameters` lists everything else.

Two modes per forward: ``"softmax"`` (DARTS: every op, weighted by the softmax of its row) and
``"gumbel"`` (GDAS: one Gumbel-max sample per edge per forward, drawn once for the whole network;
the hard one-hot weight is 1 in value and carries the Gumbel-softmax gradient to the alphas by the
straight-through estimator, and only the sampled op runs).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from mnas.models.cells import FactorizedReduce, ReLUConvBN
from mnas.models.darts import make_darts_op
from mnas.models.nb201 import ResidualReduction, make_nb201_op
from mnas.space.cells.nb201 import EDGES

__all__ = ["DartsSearchNet", "MixedOp", "NB201SearchNet", "edge_weights"]


class MixedOp(nn.Module):
    """One edge: candidate ops; `forward(x, w)` is sum_i w[i] * op_i(x), or only the op of a hard one-hot w."""

    def __init__(self, ops: Sequence[nn.Module]):
        super().__init__()
        self.ops = nn.ModuleList(ops)

    def forward(self, x: torch.Tensor, w: torch.Tensor, index: int | None = None) -> torch.Tensor:
        if index is not None:  # a hard sample: run one op; w[index] == 1 in value, its gradient reaches the alphas
            return self.ops[index](x) * w[index]
        out = None
        for wi, op in zip(w, self.ops, strict=True):
            h = op(x) * wi
            out = h if out is None else out + h
        return out


def edge_weights(alpha: torch.Tensor, mode: str, tau: float = 1.0,
                 exclude: int | None = None) -> tuple[torch.Tensor, list[int] | None]:
    """(edges, ops) weights from logits: the softmax, or a straight-through Gumbel hard one-hot and its indices.
    `exclude`: an op that a sample (gumbel, uniform) never draws."""
    if exclude is not None and mode != "softmax":
        mask = torch.zeros_like(alpha)
        mask[:, exclude] = -math.inf
        alpha = alpha + mask
    if mode == "softmax":
        return F.softmax(alpha, dim=-1), None
    if mode == "uniform":  # one op per edge, each equally likely; no gradient to the alphas
        allowed = [i for i in range(alpha.shape[-1]) if i != exclude]
        index = torch.tensor(allowed)[torch.randint(len(allowed), (alpha.shape[0],))]
        return torch.zeros_like(alpha).scatter_(-1, index[:, None], 1.0).detach(), index.tolist()
    if mode != "gumbel":
        raise ValueError(f"mode={mode!r}: expected 'softmax', 'gumbel' or 'uniform'")
    while True:  # GDAS's code resamples the rare draw with a non-finite value
        gumbel = -torch.empty_like(alpha).exponential_().log()
        soft = F.softmax((alpha.log_softmax(-1) + gumbel) / tau, dim=-1)
        if torch.isfinite(soft).all():
            break
    index = soft.argmax(-1)
    hard = torch.zeros_like(soft).scatter_(-1, index[:, None], 1.0)
    return hard - soft.detach() + soft, index.tolist()


class _SearchNet(nn.Module):
    mode = "softmax"
    tau = 1.0
    exclude: int | None = None  # an op index the hard samples never draw (GDAS without `none`)
    fixed: Sequence[int] = ()  # NB201, mode "fixed": the op of each edge (a discrete cell inside the search net)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if n.startswith("alpha")]

    def weight_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("alpha")]

    def alphas(self) -> dict[str, torch.Tensor]:
        return {n: p for n, p in self.named_parameters() if n.startswith("alpha")}


class NB201SearchNet(_SearchNet):
    """The NAS-Bench-201 skeleton with a `MixedOp` on each of the 6 edges of every cell (one alpha row per edge)."""

    def __init__(self, ops: Sequence[str], channels: int, cells_per_stage: int, num_classes: int, in_chans: int = 3):
        super().__init__()
        self.op_names = tuple(ops)
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(in_chans, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))
        blocks: list[nn.Module] = []
        for stage in range(3):
            if stage:
                blocks.append(ResidualReduction(c, 2 * c))
                c *= 2
            blocks += [nn.ModuleList(MixedOp([make_nb201_op(o, c) for o in ops]) for _ in EDGES)
                       for _ in range(cells_per_stage)]
        self.blocks = nn.ModuleList(blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(c, num_classes)
        self.alpha = nn.Parameter(1e-3 * torch.randn(len(EDGES), len(ops)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "fixed":  # one given op per edge (`self.fixed`: op indices), no gradient to the alphas
            index = list(self.fixed)
            w = torch.zeros_like(self.alpha).scatter_(-1, torch.tensor(index)[:, None], 1.0).detach()
        else:
            w, index = edge_weights(self.alpha, self.mode, self.tau, self.exclude)
        x = self.stem(x)
        for block in self.blocks:
            if not isinstance(block, nn.ModuleList):
                x = block(x)
                continue
            nodes = [x]
            for node in (1, 2, 3):
                out = None
                for e, (i, j) in enumerate(EDGES):
                    if i == node:
                        h = block[e](nodes[j], w[e], None if index is None else index[e])
                        out = h if out is None else out + h
                nodes.append(out)
            x = nodes[3]
        return self.classifier(self.lastact(x).mean((2, 3)))


class _DartsSearchCell(nn.Module):
    def __init__(self, ops: Sequence[str], steps: int, c_pp: int, c_p: int, c: int, reduction: bool,
                 reduction_prev: bool):
        super().__init__()
        self.reduction, self.steps = reduction, steps
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1)
        self.preprocess1 = ReLUConvBN(c_p, c, 1)
        self.edges = nn.ModuleList(
            MixedOp([make_darts_op(o, c, 2 if reduction and j < 2 else 1) for o in ops])
            for k in range(steps) for j in range(k + 2))
        self.out_chs = steps * c

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, w: torch.Tensor, index: list[int] | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for _ in range(self.steps):
            out = None
            for j, s in enumerate(states):
                h = self.edges[e + j](s, w[e + j], None if index is None else index[e + j])
                out = h if out is None else out + h
            e += len(states)
            states.append(out)
        return torch.cat(states[2:], dim=1)


class DartsSearchNet(_SearchNet):
    """DARTS's search network: stem 3C, `layers` cells (reductions at L//3 and 2L//3), every node mixing
    every earlier state; one alpha row per edge for the normal cells and one for the reduction cells."""

    def __init__(self, ops: Sequence[str], channels: int, layers: int, steps: int, num_classes: int, in_chans: int = 3):
        super().__init__()
        self.op_names, self.steps = tuple(ops), steps
        c = channels
        self.stem = nn.Sequential(nn.Conv2d(in_chans, 3 * c, 3, 1, 1, bias=False), nn.BatchNorm2d(3 * c))
        c_pp = c_p = 3 * c
        reduction_prev = False
        self.cells = nn.ModuleList()
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            c = 2 * c if reduction else c
            cell = _DartsSearchCell(ops, steps, c_pp, c_p, c, reduction, reduction_prev)
            self.cells.append(cell)
            c_pp, c_p, reduction_prev = c_p, cell.out_chs, reduction
        self.classifier = nn.Linear(c_p, num_classes)
        n_edges = sum(k + 2 for k in range(steps))
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(n_edges, len(ops)))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(n_edges, len(ops)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wn, index_n = edge_weights(self.alpha_normal, self.mode, self.tau)
        wr, index_r = edge_weights(self.alpha_reduce, self.mode, self.tau)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w, index = (wr, index_r) if cell.reduction else (wn, index_n)
            s0, s1 = s1, cell(s0, s1, w, index)
        return self.classifier(s1.mean((2, 3)))
