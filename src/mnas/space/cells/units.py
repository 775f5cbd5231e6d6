"""One op of a cell network with its input shape, parameters and MACs: the analytic counts and
the units a per-op latency table is built from. Torch-free arithmetic on the structure alone.

MACs follow `mnas.models.count_macs` (PyTorch's FlopCounterMode / 2 in eval mode): convolutions
and the classifier only; pooling, batch norm, additions and concatenations count zero.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CellOp", "bn_params", "conv_macs", "conv_out", "total"]


@dataclass(frozen=True)
class CellOp:
    """One op: what it is (`kind`, `op`), its input (`in_chs` x `res` x `res`), `out_chs`, `stride`.

    `key` names the op and its shape, the same for every network that holds the same op at the same
    shape (what a lookup table measures once). `params` and `macs` are exact for the built module;
    an op that runs only in training (the auxiliary head) has ``macs == 0`` and ``train_only=True``.
    """

    family: str
    kind: str  # "stem" | "cell_op" | "preprocess" | "reduction" | "head" | "aux_head"
    op: str
    in_chs: int
    out_chs: int
    res: int
    stride: int = 1
    params: int = 0
    macs: int = 0
    train_only: bool = False

    @property
    def key(self) -> str:
        return f"{self.family}:{self.kind}:{self.op}_i{self.in_chs}_o{self.out_chs}_s{self.stride}@{self.res}"

    @property
    def out_res(self) -> int:
        return conv_out(self.res, self.stride)


def conv_out(res: int, stride: int) -> int:
    """Output side of a 'same'-padded odd-kernel conv or 3x3 pool (padding k // 2) with `stride`."""
    return (res - 1) // stride + 1


def conv_macs(in_chs: int, out_chs: int, kernel: int, out_res: int, groups: int = 1) -> int:
    return out_chs * out_res * out_res * (in_chs // groups) * kernel * kernel


def bn_params(chs: int) -> int:
    return 2 * chs  # affine weight and bias (running statistics are buffers, not parameters)


def total(units: list[CellOp]) -> tuple[int, int]:
    """(parameters, MACs) of a list of units."""
    return sum(u.params for u in units), sum(u.macs for u in units)
