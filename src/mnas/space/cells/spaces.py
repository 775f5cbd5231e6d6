"""Search spaces over cells: `NB201Space` (NAS-Bench-201) and `DartsSpace` (DARTS).

`NB201Space` has one decision per edge, in the benchmark string's order (node 1 from 0, node 2
from 0 and 1, node 3 from 0, 1 and 2), each over the 5 ops: 5**6 = 15,625 cells, every one a
valid network (a cell of ``none`` ops outputs zeros, as in the benchmark).

`DartsSpace` decides, per cell (normal, then reduction) and per intermediate node k, which two of
the states 0 .. k+1 it reads (one decision over the unordered pairs, so the two inputs always
differ, as in DARTS's derived genotypes) and the op on each of the two edges. ``none`` is not a
choice: DARTS excludes it when it derives a genotype. With DARTS's 4 nodes and 7 ops that is
(1 * 3 * 6 * 10 * 7**8)**2 ~ 1.1e18 genotypes. Every cell outputs the concatenation of its
intermediate nodes. `decode` lists each node's edges in input order; `encode` accepts a genotype
whose node lists them the other way round (the same network) and returns the tokens of that network.
The macro settings default to a network small enough for proxy training on a CPU (16 channels,
8 cells, no auxiliary head, no drop-path); pass ``channels=36, layers=20, auxiliary=True,
drop_path=0.2`` for the paper's evaluation network.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any

from mnas.space.base import Decision, SearchSpace
from mnas.space.cells.darts import DARTS_OPS, DartsGenotype
from mnas.space.cells.nb201 import EDGES, NB201_OPS, NB201Cell

__all__ = ["DartsSpace", "NB201Space"]


def _check_common(num_classes: Any, input_size: Any) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4 or input_size % 4:
        raise ValueError(f"input_size={input_size!r}: expected a multiple of 4 (cell networks reduce twice by 2)")


def _check_ops(ops: Sequence[str], allowed: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(ops)
    bad = [o for o in ops if o not in allowed]
    if bad or not ops:
        raise ValueError(f"unknown op {bad[0] if bad else None!r}: expected some of {', '.join(allowed)}")
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops={list(ops)}: an op is listed twice")
    return ops


class NB201Space(SearchSpace):
    """The NAS-Bench-201 cell space in the benchmark's network (16 channels, 5 cells per stage)."""

    def __init__(self, num_classes: int = 10, input_size: int = 32, *, channels: int = 16, cells_per_stage: int = 5,
                 ops: Sequence[str] = NB201_OPS):
        _check_common(num_classes, input_size)
        self.num_classes, self.input_size = num_classes, input_size
        self.channels, self.cells_per_stage = channels, cells_per_stage
        self.ops = _check_ops(ops, NB201_OPS)
        self.decisions = tuple(Decision(f"node{i}_from{j}", self.ops) for i, j in EDGES)
        self.decode([0] * len(self.decisions))  # a bad width or depth fails here, not in a search

    def decode(self, tokens: Sequence[int]) -> NB201Cell:
        tokens = self.check_tokens(tokens)
        return NB201Cell(tuple(self.ops[t] for t in tokens), self.channels, self.cells_per_stage)

    def encode(self, arch: NB201Cell) -> list[int]:
        if not isinstance(arch, NB201Cell):
            raise ValueError(f"not in this space: {type(arch).__name__} is not an NB201 cell")
        if (arch.channels, arch.cells_per_stage) != (self.channels, self.cells_per_stage):
            raise ValueError(f"not in this space: '{arch}' has c{arch.channels}_n{arch.cells_per_stage}, the space"
                             f" c{self.channels}_n{self.cells_per_stage}")
        missing = [op for op in arch.ops if op not in self.ops]
        if missing:
            raise ValueError(f"not in this space: op {missing[0]!r} is not among {', '.join(self.ops)}")
        return [self.ops.index(op) for op in arch.ops]

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size, "channels": self.channels,
                "cells_per_stage": self.cells_per_stage, "ops": list(self.ops)}

    def __repr__(self) -> str:
        return f"NB201Space(num_classes={self.num_classes}, input_size={self.input_size}, size={self.size})"


class DartsSpace(SearchSpace):
    """The DARTS cell space; genotypes build in the DARTS evaluation network with these macro settings."""

    def __init__(self, num_classes: int = 10, input_size: int = 32, *, channels: int = 16, layers: int = 8,
                 auxiliary: bool = False, drop_path: float = 0.0, steps: int = 4,
                 ops: Sequence[str] = tuple(o for o in DARTS_OPS if o != "none")):
        _check_common(num_classes, input_size)
        if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= 8:
            raise ValueError(f"steps={steps!r}: expected 1..8 intermediate nodes per cell")
        if auxiliary and input_size < 32:
            raise ValueError(f"auxiliary=True needs input_size >= 32 (DARTS's CIFAR head pools an 8x8 map), got"
                             f" {input_size}: pass auxiliary=False")
        self.num_classes, self.input_size, self.steps = num_classes, input_size, steps
        self.channels, self.layers, self.auxiliary, self.drop_path = channels, layers, auxiliary, drop_path
        self.ops = _check_ops(ops, DARTS_OPS)
        self.pairs = [tuple(combinations(range(k + 2), 2)) for k in range(steps)]
        self.decisions = tuple(
            d for cell in ("normal", "reduce") for k in range(steps)
            for d in (Decision(f"{cell}_node{k}_inputs", self.pairs[k]), Decision(f"{cell}_node{k}_op1", self.ops),
                      Decision(f"{cell}_node{k}_op2", self.ops)))
        self.decode([0] * len(self.decisions))  # bad macro settings fail here, not in a search

    def _cell(self, tokens: list[int]) -> tuple[tuple[str, int], ...]:
        edges = []
        for k in range(self.steps):
            pair, op1, op2 = tokens[3 * k:3 * k + 3]
            a, b = self.pairs[k][pair]
            edges += [(self.ops[op1], a), (self.ops[op2], b)]
        return tuple(edges)

    def decode(self, tokens: Sequence[int]) -> DartsGenotype:
        tokens = self.check_tokens(tokens)
        half = 3 * self.steps
        concat = tuple(range(2, self.steps + 2))
        return DartsGenotype(self._cell(tokens[:half]), concat, self._cell(tokens[half:]), concat,
                             self.channels, self.layers, self.auxiliary, self.drop_path)

    def encode(self, arch: DartsGenotype) -> list[int]:
        """Tokens of the network `arch` builds (a node's two edges may be listed in either order)."""
        if not isinstance(arch, DartsGenotype):
            raise ValueError(f"not in this space: {type(arch).__name__} is not a DARTS genotype")
        mine = (self.channels, self.layers, self.auxiliary, self.drop_path)
        if (arch.channels, arch.layers, arch.auxiliary, arch.drop_path) != mine:
            raise ValueError(f"not in this space: '{arch.settings_string}' differs from the space's settings"
                             f" c{mine[0]}_l{mine[1]}_{'aux' if mine[2] else 'noaux'}_dp{mine[3]}")
        tokens = []
        for cell in ("normal", "reduce"):
            edges, concat = getattr(arch, cell), getattr(arch, f"{cell}_concat")
            if len(edges) != 2 * self.steps or concat != tuple(range(2, self.steps + 2)):
                raise ValueError(f"not in this space: the {cell} cell is not {self.steps} nodes concatenated in order")
            for k in range(self.steps):
                (op1, a), (op2, b) = sorted(edges[2 * k:2 * k + 2], key=lambda e: e[1])
                if a == b:
                    raise ValueError(f"not in this space: node {k} of the {cell} cell reads state {a} twice")
                for op in (op1, op2):
                    if op not in self.ops:
                        raise ValueError(f"not in this space: op {op!r} is not among {', '.join(self.ops)}")
                tokens += [self.pairs[k].index((a, b)), self.ops.index(op1), self.ops.index(op2)]
        return tokens

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size, "channels": self.channels,
                "layers": self.layers, "auxiliary": self.auxiliary, "drop_path": self.drop_path,
                "steps": self.steps, "ops": list(self.ops)}

    def __repr__(self) -> str:
        return (f"DartsSpace(num_classes={self.num_classes}, input_size={self.input_size}, channels={self.channels},"
                f" layers={self.layers}, size={self.size:.3g})")
