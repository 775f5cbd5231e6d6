"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020) in the benchmark's macro skeleton.

A cell has 4 nodes; node 0 is the cell's input and each later node sums one op on every edge from
an earlier node: 6 edges, each one of ``none``, ``skip_connect``, ``nor_conv_1x1``,
``nor_conv_3x3``, ``avg_pool_3x3`` (5**6 = 15,625 cells). The cell's output is node 3. The
network (the benchmark's CIFAR setting): a 3x3 conv stem of C = 16 channels with batch norm,
three stages of N = 5 cells with C, 2C and 4C channels, a residual reduction block (two
ReLU-conv-BN 3x3, the first with stride 2, plus a 2x2 average pool and 1x1 conv shortcut) between
stages, then batch norm, ReLU, global pooling and a linear classifier.

Canonical text: the benchmark's own string, node by node, each edge ``op~input``::

    |nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|

For other widths or depths, ``" | c<channels>_n<cells per stage>"`` follows (``c16_n5`` is the
benchmark's and is never written). Inputs must be listed in order (``~0``, then ``~1``, ...), as
the benchmark writes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mnas.space.cells.units import CellOp, bn_params, conv_macs, conv_out, total
from mnas.space.family import ArchFamily

__all__ = ["EDGES", "NB201_OPS", "NB201Cell", "NB201Family"]

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), in the string's order
DEFAULT_CHANNELS, DEFAULT_CELLS = 16, 5
_FORM = re.compile(r"\s*(\|\S*)(?:\s+\|\s*(\S+))?\s*\Z")
_INT = re.compile(r"[1-9][0-9]*\Z")


@dataclass(frozen=True)
class NB201Cell:
    """A NAS-Bench-201 network: the 6 edge ops (in `EDGES` order), stem width and cells per stage."""

    ops: tuple[str, ...]
    channels: int = DEFAULT_CHANNELS
    cells_per_stage: int = DEFAULT_CELLS

    family = "nb201"

    def __post_init__(self) -> None:
        ops = tuple(self.ops)
        object.__setattr__(self, "ops", ops)
        if len(ops) != len(EDGES):
            raise ValueError(f"an NB201 cell has {len(EDGES)} edge ops, got {len(ops)}")
        for op, (i, j) in zip(ops, EDGES, strict=True):
            if op not in NB201_OPS:
                raise ValueError(f"unknown op {op!r} on edge {j}->{i}: expected one of {', '.join(NB201_OPS)}")
        for name, value in (("channels", self.channels), ("cells_per_stage", self.cells_per_stage)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"{name}={value!r}: expected a positive integer")

    @property
    def cell_string(self) -> str:
        """The benchmark's string of the cell alone (what its API looks architectures up by)."""
        nodes = []
        for node in (1, 2, 3):
            nodes.append("|".join(f"{op}~{j}" for op, (i, j) in zip(self.ops, EDGES, strict=True) if i == node))
        return "|" + "|+|".join(nodes) + "|"

    def __str__(self) -> str:
        if (self.channels, self.cells_per_stage) == (DEFAULT_CHANNELS, DEFAULT_CELLS):
            return self.cell_string
        return f"{self.cell_string} | c{self.channels}_n{self.cells_per_stage}"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "arch": str(self), "ops": list(self.ops), "channels": self.channels,
                "cells_per_stage": self.cells_per_stage}

    @classmethod
    def parse(cls, text: str) -> NB201Cell:
        return parse_nb201(text)


def parse_nb201(text: str) -> NB201Cell:
    """Parse the benchmark's cell string (optionally `` | c<C>_n<N>``); ValueError naming the token."""
    if not isinstance(text, str):
        raise ValueError(f"an NB201 cell string must be text, got {type(text).__name__}")
    m = _FORM.match(text)
    if not m:
        raise ValueError(f"bad NB201 cell string {text.strip()!r}: expected e.g. "
                         "'|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|'")
    cell, extras = m.group(1), m.group(2)
    if len(cell) < 2 or not cell.endswith("|"):
        raise ValueError(f"bad NB201 cell string '{cell}': it starts and ends with '|'")
    nodes = cell[1:-1].split("|+|")
    if len(nodes) != 3:
        raise ValueError(f"bad NB201 cell string '{cell}': expected 3 nodes joined by '+', got {len(nodes)}")
    ops = []
    for node, body in enumerate(nodes, start=1):
        entries = body.split("|")
        if len(entries) != node:
            raise ValueError(f"bad node '{body}' in NB201 cell: node {node} has {node} input edge(s), got {len(entries)}")
        for j, entry in enumerate(entries):
            op, sep, src = entry.partition("~")
            if not sep or op not in NB201_OPS:
                raise ValueError(f"bad token '{entry}' in NB201 cell: expected 'op~input' with op one of"
                                 f" {', '.join(NB201_OPS)}")
            if src != str(j):
                raise ValueError(f"bad token '{entry}' in NB201 cell: node {node}'s edge {j + 1} comes from node {j}"
                                 f" (write '{op}~{j}'; inputs are listed in order)")
            ops.append(op)
    kwargs: dict[str, int] = {}
    if extras is not None:
        parts = extras.split("_")
        if len(parts) != 2 or parts[0][:1] != "c" or parts[1][:1] != "n" \
                or not _INT.match(parts[0][1:]) or not _INT.match(parts[1][1:]):
            raise ValueError(f"bad token '{extras}' after the NB201 cell: expected 'c<channels>_n<cells per stage>',"
                             " e.g. 'c16_n5'")
        kwargs = {"channels": int(parts[0][1:]), "cells_per_stage": int(parts[1][1:])}
    return NB201Cell(tuple(ops), **kwargs)


def nb201_units(arch: NB201Cell, input_size: int, num_classes: int, in_chans: int = 3) -> list[CellOp]:
    """Every op of the network at its input shape, with exact parameters and MACs."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4 or input_size % 4:
        raise ValueError(f"input_size={input_size!r}: an NB201 network needs a multiple of 4 (two 2x reductions)")
    f = "nb201"
    c, res = arch.channels, input_size
    units = [CellOp(f, "stem", "conv_3x3", in_chans, c, res, 1, 9 * in_chans * c + bn_params(c),
                    conv_macs(in_chans, c, 3, res))]
    for stage in range(3):
        if stage:
            cin, c = c, 2 * c
            out = conv_out(res, 2)
            params = 9 * cin * c + bn_params(c) + 9 * c * c + bn_params(c) + cin * c
            macs = conv_macs(cin, c, 3, out) + conv_macs(c, c, 3, out) + conv_macs(cin, c, 1, out)
            units.append(CellOp(f, "reduction", "resblock", cin, c, res, 2, params, macs))
            res = out
        for _ in range(arch.cells_per_stage):
            for op in arch.ops:
                k = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}.get(op)
                params, macs = (k * k * c * c + bn_params(c), conv_macs(c, c, k, res)) if k else (0, 0)
                units.append(CellOp(f, "cell_op", op, c, c, res, 1, params, macs))
    units.append(CellOp(f, "head", "bn_relu_pool_linear", c, num_classes, res, 1,
                        bn_params(c) + c * num_classes + num_classes, c * num_classes))
    return units


class NB201Family(ArchFamily):
    """The NAS-Bench-201 cell family: text starting with '|'."""

    name = "nb201"
    arch_type = NB201Cell

    def matches(self, text: str) -> bool:
        return isinstance(text, str) and text.lstrip().startswith("|")

    def parse(self, text: str) -> NB201Cell:
        return parse_nb201(text)

    def from_dict(self, data: Any) -> NB201Cell:
        if isinstance(data, dict) and "arch" not in data and "ops" in data:
            return NB201Cell(tuple(data["ops"]), data.get("channels", DEFAULT_CHANNELS),
                             data.get("cells_per_stage", DEFAULT_CELLS))
        return super().from_dict(data)

    def count(self, arch: NB201Cell, num_classes: int, in_chans: int = 3, input_size: int = 32) -> tuple[int, int]:
        return total(nb201_units(arch, input_size, num_classes, in_chans))

    def layer_signatures(self, arch: NB201Cell, input_size: int, num_classes: int, in_chans: int = 3) -> list[CellOp]:
        return nb201_units(arch, input_size, num_classes, in_chans)
