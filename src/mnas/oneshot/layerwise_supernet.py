"""The supernet of a `LayerwiseSpace`: one position per layer of the space.

Each position holds one op family per kind its op list names (MBConv, depthwise-separable,
regular conv, and the ``proj`` layer where ``skip`` cannot be the identity), entangled across
kernels, expansions and SE ratios as in `mnas.oneshot.dynamic` (single-path sharing, as
Single-Path NAS (Stamoulis et al. 2019) shares one superkernel), or with `sharing="separate"` one
weight set per op of the space's list, as FBNet and ProxylessNAS keep.
The identity skip has no weights: the position is passed by.

Positions follow the tokens: `set_active_tokens(t)` runs layer j of stage s on position (s, j) for
any token sequence, while `set_active(arch)` and `subnet(arch)` use the space's canonical tokens
(`LayerwiseSpace.encode`: kept layers first, skips after). Two token sequences that decode to the same
architecture with the identity skips in different places therefore run on different weights;
`subnet()` without an argument copies the active ones, whichever way they were chosen.
"""

from __future__ import annotations

from collections.abc import Sequence

from mnas.oneshot.supernet import Supernet
from mnas.space import Arch, BlockSpec, LayerwiseSpace

__all__ = ["LayerwiseSupernet"]


class LayerwiseSupernet(Supernet):
    """See the module docstring."""

    space: LayerwiseSpace

    def _layout(self):
        space = self.space
        specs = [s for s in space.op_specs.values() if s is not None]
        families = {op for op, _, _, _ in specs}
        common = {"max_k": max((k for _, k, _, _ in specs), default=1),
                  "max_exp": max((e for _, _, e, _ in specs), default=1),
                  "max_se": max((se for _, _, _, se in specs), default=0.0)}
        has_skip = any(s is None for s in space.op_specs.values())
        stages = []
        for stage in space.positions():
            stages.append([dict(common, max_in=i, max_out=o, stride=s,
                                ops=families | ({"proj"} if has_skip and (i != o or s != 1) else set()))
                           for i, o, s in stage])
        return space.stem_chs, space.strides[0], stages, space.head_chs

    def _candidates(self):
        return [spec for spec in self.space.op_specs.values() if spec is not None]

    def _plan(self, arch: Arch) -> list[list[BlockSpec | None]]:
        try:
            tokens = self.space.encode(arch)
        except ValueError as exc:
            raise ValueError(f"'{arch}' does not fit the supernet: {exc}") from None
        return self.space.layer_specs(tokens)

    def _plan_tokens(self, tokens: Sequence[int]) -> tuple[Arch, list[list[BlockSpec | None]]]:
        return self.space.decode(tokens), self.space.layer_specs(tokens)
