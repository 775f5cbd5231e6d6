"""The differentiable latency term of FBNet / ProxylessNAS: the lookup table's latency of the
architecture, in expectation over independent categorical distributions of the space's decisions.

A table prediction is ``scale * sum(layer entries) + overhead_ms`` (`mnas.latency.LookupTable`). In
the block spaces each layer's entry depends on a few decisions only, so the expectation is a sum of
small *factors*, each a table over the joint choices of the decisions it depends on, contracted with
their probability vectors. Exact (not a sampled estimate), for:

- `MnasNetSpace`: block i's layers depend on block i's six decisions and on block i-1's filters (its
  input width); the head on the last block's filters; the stem on nothing;
- `LayerwiseSpace`: each layer on its own op (positions have fixed widths and strides); the stem
  and head on nothing. An identity skip costs nothing; a ``proj`` skip costs its entry.

With one-hot probabilities the expectation is the table's prediction of that architecture (tested
against `LookupTable.predict`), so the same object scores the derived arg-max architecture.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from mnas.latency.lut import LookupTable, block_units, conv_out, head_unit, stem_unit
from mnas.space import LayerwiseSpace, MnasNetSpace, SearchSpace

__all__ = ["ExpectedLatency", "expected_latency_model"]

_FIELDS = ("op", "repeats", "kernel_size", "exp_ratio", "out_chs", "se_ratio", "skip")  # what a block's options set


@dataclass
class ExpectedLatency:
    """``scale * (constant + sum over factors of E[table]) + overhead`` in ms; see the module docstring."""

    constant: float  # table entries that no decision changes (ms, before scale)
    factors: list[tuple[tuple[int, ...], torch.Tensor]]  # (decision indices, table over their joint choices)
    scale: float = 1.0
    overhead_ms: float = 0.0

    def __call__(self, probs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Expected table latency (a differentiable scalar) for one probability vector per decision."""
        total = torch.zeros((), dtype=probs[0].dtype) + self.constant
        for deps, table in self.factors:
            t = table.to(probs[0].dtype)
            for d in deps:  # contract the leading axis with that decision's probabilities
                t = torch.tensordot(probs[d], t, dims=([0], [0]))
            total = total + t
        return self.scale * total + self.overhead_ms

    def predict(self, tokens: Sequence[int]) -> float:
        """The table's latency of the architecture `tokens` decode to (ms)."""
        total = self.constant + sum(float(table[tuple(tokens[d] for d in deps)]) for deps, table in self.factors)
        return self.scale * total + self.overhead_ms

    def bounds(self) -> tuple[float, float]:
        """(fastest, slowest) table latency over the space (factors are independent only in
        `LayerwiseSpace`; for `MnasNetSpace` this is a bound, not always attained)."""
        lo = self.constant + sum(float(t.min()) for _, t in self.factors)
        hi = self.constant + sum(float(t.max()) for _, t in self.factors)
        return self.scale * lo + self.overhead_ms, self.scale * hi + self.overhead_ms


def _entry(table: LookupTable, unit) -> float:
    return table._lookup(unit)  # noqa: SLF001 -- raises the table's one-line ValueError naming the missing layer


def _block_ms(table: LookupTable, block, res: int, act: str) -> float:
    units, _ = block_units(block, res, act)
    return sum(_entry(table, u) for u in units)


def _check_table(space: SearchSpace, table: LookupTable, in_chans: int) -> None:
    if not isinstance(table, LookupTable):
        raise ValueError(f"the latency term needs a mnas.latency.LookupTable (from 'mnas latency build-lut'),"
                         f" got {type(table).__name__}")
    for what, built, want in (("input size", table.input_size, space.input_size),
                              ("number of classes", table.num_classes, space.num_classes),
                              ("input channels", table.in_chans, in_chans), ("batch size", table.batch_size, 1)):
        if built != want:
            raise ValueError(f"the lookup table was built for {what} {built}, the search needs {want}:"
                             " build one with 'mnas latency build-lut' for this space")


def expected_latency_model(space: SearchSpace, table: LookupTable, in_chans: int = 3) -> ExpectedLatency:
    """The exact expected-latency model of `space` under `table`; ValueError if the table lacks a layer."""
    _check_table(space, table, in_chans)
    if isinstance(space, MnasNetSpace):
        return _mnasnet(space, table, in_chans)
    if isinstance(space, LayerwiseSpace):
        return _layerwise(space, table, in_chans)
    raise ValueError(f"latency-aware gradient search needs an MnasNetSpace or a LayerwiseSpace, got {type(space).__name__}")


def _mnasnet(space: MnasNetSpace, table: LookupTable, in_chans: int) -> ExpectedLatency:
    per, n = len(space.options), len(space.decisions)
    keys = list(space.options)
    filters = keys.index("filters")
    base = space.decode([0] * n)
    constant = _entry(table, stem_unit(base, space.input_size, in_chans))
    res = conv_out(space.input_size, base.stem_stride)
    factors = []
    widths = [space.decode([c if d % per == filters else 0 for d in range(n)]).blocks
              for c in range(len(space.options["filters"]))]  # every block at filters choice c
    for i in range(len(space.stages)):
        own = tuple(range(i * per, (i + 1) * per))
        inputs = [w[i - 1].out_chs for w in widths] if i else [base.stem_chs]  # block i's input: block i-1's filters
        deps = own + (((i - 1) * per + filters,) if i else ())
        # Each option of a block sets its own fields (op and expansion, kernel, SE, skip, filters, layers):
        # decode every option once and compose, instead of decoding every combination.
        changes = []
        for d in own:
            opts = []
            for c in range(len(space.decisions[d])):
                tokens = [0] * n
                tokens[d] = c
                b = space.decode(tokens).blocks[i]
                opts.append({f: getattr(b, f) for f in _FIELDS if getattr(b, f) != getattr(base.blocks[i], f)})
            changes.append(opts)
        grid = np.zeros([len(space.decisions[d]) for d in own] + [len(inputs)])
        for combo in itertools.product(*(range(len(space.decisions[d])) for d in own)):
            fields = {k: v for opts, c in zip(changes, combo, strict=True) for k, v in opts[c].items()}
            block = replace(base.blocks[i], **fields)
            for j, in_chs in enumerate(inputs):
                grid[combo + (j,)] = _block_ms(table, replace(block, in_chs=in_chs), res, base.act)
        grid = torch.from_numpy(grid)
        factors.append((deps, grid if i else grid[..., 0]))
        res = conv_out(res, space.strides[i + 1])
    last = (len(space.stages) - 1) * per + filters
    head = torch.zeros(len(space.decisions[last]), dtype=torch.float64)
    for c in range(len(head)):
        tokens = [0] * n
        tokens[last] = c
        head[c] = _entry(table, head_unit(space.decode(tokens), res, space.num_classes))
    factors.append(((last,), head))
    return ExpectedLatency(constant, factors, table.scale, table.overhead_ms)


def _layerwise(space: LayerwiseSpace, table: LookupTable, in_chans: int) -> ExpectedLatency:
    n = len(space.decisions)
    base = space.decode([0] * n)
    constant = _entry(table, stem_unit(base, space.input_size, in_chans))
    res = conv_out(space.input_size, base.stem_stride)
    factors, d = [], 0
    specs = [space.layer_specs([c] * n) for c in range(len(space.ops))]  # every layer takes op c
    for s, stage in enumerate(space.positions()):
        for j in range(len(stage)):
            grid = torch.zeros(len(space.ops), dtype=torch.float64)
            for c in range(len(space.ops)):
                spec = specs[c][s][j]
                grid[c] = 0.0 if spec is None else _block_ms(table, spec, res, base.act)
            factors.append(((d,), grid))
            d += 1
            res = conv_out(res, stage[j][2])
    constant += _entry(table, head_unit(base, res, space.num_classes))
    return ExpectedLatency(constant, factors, table.scale, table.overhead_ms)
