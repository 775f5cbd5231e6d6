"""Shared pieces of the supernet training, evaluation and rank-check tests: a tiny space, tiny data,
and the supernet (the real `build_supernet` when it is there, else a small stand-in that honours
the same methods, so these tests do not depend on one implementation)."""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnas.space import MnasNetSpace
from mnas.train import from_arrays


def tiny_space(dropout: float = 0.0) -> MnasNetSpace:
    return MnasNetSpace(num_classes=4, input_size=8, width_mult=0.25, head_chs=32, dropout=dropout,
                        ops=("ds", "mbconv3"), kernel_sizes=(3, 5), se_ratios=(0.0,), skips=("identity", "none"),
                        filter_mults=(0.75, 1.25), layer_deltas=(-1, 0),
                        stages=((8, 1, 1), (16, 2, 2), (16, 2, 2)))


def tiny_data(n: int = 64, val: int = 32, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, n + val + 16)
    x = (rng.integers(0, 60, (len(y), 8, 8, 3)) + y[:, None, None, None] * 45).astype(np.uint8)
    return from_arrays("tiny", x[:n + val], y[:n + val], x[n + val:], y[n + val:], val_fraction=val / (n + val), seed=seed)


class _SlicedBN(nn.BatchNorm2d):
    def forward_sliced(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if self.training and self.track_running_stats:
            self.num_batches_tracked += 1
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        else:
            factor = 0.0
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)


class StandInSupernet(nn.Module):
    """Entangled only in width and depth (one 3x3 conv per layer position, sliced to the active
    filters); op, kernel, SE and skip choices are ignored. Enough to train, sample and recalibrate."""

    def __init__(self, space: MnasNetSpace, in_chans: int = 3):
        super().__init__()
        self.space, self.in_chans = space, in_chans
        big = space.decode([len(d) - 1 for d in space.decisions])
        self.max_chs = [b.out_chs for b in big.blocks]
        self.max_layers = [b.repeats for b in big.blocks]
        self.stem = nn.Conv2d(in_chans, space.stem_chs, 3, space.strides[0], 1, bias=False)
        self.stem_bn = _SlicedBN(space.stem_chs)
        self.convs, self.bns = nn.ModuleList(), nn.ModuleList()
        cin = space.stem_chs
        for c, d in zip(self.max_chs, self.max_layers, strict=True):
            for i in range(d):
                self.convs.append(nn.Conv2d(cin if i == 0 else c, c, 3, 1, 1, bias=False))
                self.bns.append(_SlicedBN(c))
            cin = c
        self.head = nn.Linear(max(self.max_chs), space.num_classes)
        self.active = big

    def set_active(self, arch) -> None:
        self.active = arch

    def set_active_tokens(self, tokens) -> None:
        self.active = self.space.decode(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem_bn.forward_sliced(F.conv2d(x, self.stem.weight, None, self.space.strides[0], 1)))
        k, cin = 0, self.space.stem_chs
        for b, d in zip(self.active.blocks, self.max_layers, strict=True):
            for i in range(d):
                if i < b.repeats:
                    conv = self.convs[k + i]
                    w = conv.weight[:b.out_chs, :cin]
                    x = F.relu(self.bns[k + i].forward_sliced(F.conv2d(x, w, None, b.stride if i == 0 else 1, 1)))
                    cin = b.out_chs
            k += d
        x = x.mean((2, 3))
        return F.linear(x, self.head.weight[:, :cin], self.head.bias)

    def subnet(self, arch) -> nn.Module:
        sub = copy.deepcopy(self)
        sub.set_active(arch)
        return sub

    def largest_arch(self):
        return self.space.decode([len(d) - 1 for d in self.space.decisions])

    def smallest_arch(self):
        return self.space.decode([0] * len(self.space.decisions))

    def sample_arch(self, rng):
        return self.space.sample(rng)

    def bn_modules(self) -> list[nn.Module]:
        return [self.stem_bn, *self.bns]

    def config(self) -> dict:
        return {"space": {"class": "MnasNetSpace", "settings": self.space.settings()}, "in_chans": self.in_chans}

    @classmethod
    def from_config(cls, cfg: dict) -> StandInSupernet:
        s = dict(cfg["space"]["settings"])
        s["stages"] = [tuple(x) for x in s["stages"]]
        s["kernel_sizes"], s["se_ratios"], s["skips"] = s.pop("kernel_sizes"), s.pop("se_ratios"), s.pop("skips")
        return cls(MnasNetSpace(**s), cfg["in_chans"])


def make_supernet(space: MnasNetSpace, in_chans: int = 3) -> nn.Module:
    """The real supernet when `mnas.oneshot.build_supernet` exists, else the stand-in."""
    torch.manual_seed(0)
    try:
        from mnas.oneshot import build_supernet
    except ImportError:
        return StandInSupernet(space, in_chans)
    return build_supernet(space, in_chans=in_chans)
