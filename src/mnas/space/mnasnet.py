"""MnasNet's factorized hierarchical search space (Tan et al. 2019, REFERENCE.md).

Seven blocks follow MobileNetV2's stages. Per block the space decides the conv op (regular conv,
depthwise-separable, MBConv e3, MBConv e6), kernel (3, 5), SE ratio (0, 0.25), skip op (identity,
pool, none), output filters (0.75, 1.0, 1.25 x MobileNetV2's) and layers (MobileNetV2's -1, 0, +1).
That is 4*2*2*3*3*3 = 432 choices per block and 432**7 ~ 2.8e18 architectures.

Documented resolution rules (so every token sequence builds a model that runs):
- a block keeps at least one layer (MobileNetV2's one-layer blocks cannot drop to zero);
- filters are rounded to a multiple of 8 (never below 90%), so two filter choices can coincide;
- the identity skip applies only where a layer keeps its stride at 1 and its filters unchanged;
  elsewhere that layer has no shortcut (the `pool` skip works everywhere, see mnas.models.blocks).

Small inputs: MobileNetV2 downsamples 32x (the stem and four blocks have stride 2), which leaves
nothing of a 32x32 image. With ``strides=None`` the space keeps the largest number of stride-2
stages that leaves a final feature map of at least ``min_feature_size`` (4) pixels, and drops the
earliest ones first (early layers keep their resolution, as CIFAR variants of MobileNetV2 do):
224 -> stem and blocks 2, 3, 4, 6 (7x7 final); 32 -> blocks 3, 4, 6 (4x4); 8 -> block 6 (4x4).
Pass ``strides`` (stem then the seven blocks, each 1 or 2) to choose yourself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from mnas._util import make_divisible
from mnas.space.arch import ACTIVATIONS, Arch
from mnas.space.base import Decision, SearchSpace
from mnas.space.blocks import BlockSpec

__all__ = ["MOBILENETV2_STAGES", "MnasNetSpace", "auto_strides", "resolve_strides"]

# MobileNetV2's stages (filters, layers, first stride), REFERENCE.md; the stem has 32 filters, stride 2.
MOBILENETV2_STAGES = ((16, 1, 1), (24, 2, 2), (32, 3, 2), (64, 4, 2), (96, 3, 1), (160, 3, 2), (320, 1, 1))
STEM_CHS = 32
OPS = {"conv": ("conv", 1), "ds": ("ds", 1), "mbconv3": ("mbconv", 3), "mbconv6": ("mbconv", 6)}


def auto_strides(input_size: int, min_feature_size: int = 4,
                 base: Sequence[int] = (2,) + tuple(s for _, _, s in MOBILENETV2_STAGES)) -> tuple[int, ...]:
    """Stem + block strides: keep the most stride-2 stages that leave >= `min_feature_size` pixels,
    removing the earliest ones first."""
    if input_size < min_feature_size:
        raise ValueError(f"input size {input_size} is below the minimum feature size {min_feature_size}")
    strides = list(base)
    down = [i for i, s in enumerate(strides) if s == 2]
    keep = 0
    while keep < len(down) and input_size / 2 ** (keep + 1) >= min_feature_size:
        keep += 1
    for i in down[: len(down) - keep]:
        strides[i] = 1
    return tuple(strides)


def resolve_strides(strides: Sequence[int] | None, input_size: int, min_feature_size: int, base: Sequence[int],
                    unit: str = "block") -> tuple[int, ...]:
    """A space's stem and stage strides: `auto_strides` from `base` when `strides` is None, otherwise
    `strides` checked to be one 1 or 2 per entry of `base` (`unit` names a stage in the message)."""
    if strides is None:
        return auto_strides(input_size, min_feature_size, base)
    resolved = tuple(int(s) for s in strides)
    if len(resolved) != len(base) or any(s not in (1, 2) for s in resolved):
        raise ValueError(f"strides={tuple(strides)!r}: expected {len(base)} values (stem, then each {unit}), each 1 or 2")
    return resolved


class MnasNetSpace(SearchSpace):
    """The factorized hierarchical space, adapted to `input_size` and `num_classes`."""

    def __init__(self, num_classes: int = 1000, input_size: int = 224, *, width_mult: float = 1.0,
                 strides: Sequence[int] | None = None, min_feature_size: int = 4, head_chs: int = 1280,
                 dropout: float = 0.2, act: str = "relu",
                 ops: Sequence[str] = tuple(OPS), kernel_sizes: Sequence[int] = (3, 5),
                 se_ratios: Sequence[float] = (0.0, 0.25), skips: Sequence[str] = ("identity", "pool", "none"),
                 filter_mults: Sequence[float] = (0.75, 1.0, 1.25), layer_deltas: Sequence[int] = (-1, 0, 1),
                 stages: Sequence[tuple[int, int, int]] = MOBILENETV2_STAGES):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4:
            raise ValueError(f"input_size={input_size!r}: expected an integer >= 4 (pixels)")
        if not 0 < width_mult <= 4:
            raise ValueError(f"width_mult={width_mult!r}: expected a number in (0, 4]")
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}: expected one of {', '.join(ACTIVATIONS)}")
        unknown = [o for o in ops if o not in OPS]
        if unknown or not ops:
            raise ValueError(f"unknown op {unknown[0] if unknown else None!r}: expected some of {', '.join(OPS)}")
        self.num_classes, self.input_size, self.width_mult = num_classes, input_size, float(width_mult)
        self.head_chs, self.dropout, self.act = head_chs, float(dropout), act
        self.min_feature_size = min_feature_size
        self.stages = tuple(tuple(s) for s in stages)
        self.strides = resolve_strides(strides, input_size, min_feature_size, (2,) + tuple(s for _, _, s in self.stages))
        self.options = {"op": tuple(ops), "kernel": tuple(kernel_sizes), "se": tuple(float(s) for s in se_ratios),
                        "skip": tuple(skips), "filters": tuple(float(f) for f in filter_mults),
                        "layers": tuple(int(d) for d in layer_deltas)}
        keywords = dict(zip(self.options, ("ops", "kernel_sizes", "se_ratios", "skips", "filter_mults", "layer_deltas"),
                            strict=True))
        for key, choices in self.options.items():
            if not choices or len(set(choices)) != len(choices):
                raise ValueError(f"{keywords[key]}={choices!r}: expected at least one choice, each once")
        bad = [f for f in self.options["filters"] if not (math.isfinite(f) and f > 0)]
        if bad:
            raise ValueError(f"filter_mults={self.options['filters']!r}: {bad[0]!r} is not a positive number")
        self.decisions = tuple(Decision(f"block{i + 1}_{key}", choices)
                               for i in range(len(self.stages)) for key, choices in self.options.items())
        self._check_options(keywords)

    def _check_options(self, keywords: dict[str, str]) -> None:
        """Every choice of every option list builds: probed once, so that a bad option fails here,
        not in the middle of a search."""
        per = len(self.options)
        for k, key in enumerate(self.options):
            for j, choice in enumerate(self.options[key]):
                try:
                    self.decode([j if i % per == k else 0 for i in range(len(self.decisions))])
                except ValueError as exc:
                    raise ValueError(f"{keywords[key]}: choice {choice!r} does not build: {exc}") from None
        self.decode([len(d) - 1 for d in self.decisions])

    @property
    def stem_chs(self) -> int:
        return make_divisible(STEM_CHS * self.width_mult)

    def _filters(self, stage: int, mult: float) -> int:
        return make_divisible(self.stages[stage][0] * mult * self.width_mult)

    def decode(self, tokens: Sequence[int]) -> Arch:
        tokens = self.check_tokens(tokens)
        per = len(self.options)
        blocks, in_chs = [], self.stem_chs
        for i, (_, layers, _) in enumerate(self.stages):
            picks = tokens[i * per:(i + 1) * per]
            choice = {k: self.options[k][t] for k, t in zip(self.options, picks, strict=True)}
            op, exp = OPS[choice["op"]]
            out_chs = self._filters(i, choice["filters"])
            blocks.append(BlockSpec(op, max(1, layers + choice["layers"]), choice["kernel"], self.strides[i + 1],
                                    exp, in_chs, out_chs, choice["se"], choice["skip"]))
            in_chs = out_chs
        return Arch(tuple(blocks), self.strides[0], self.head_chs, self.dropout, self.act)

    def encode(self, arch: Arch) -> list[int]:
        """Tokens for `arch`; where two choices give the same network, the first is used."""
        if len(arch.blocks) != len(self.stages):
            raise ValueError(f"not in this space: {len(arch.blocks)} blocks, the space has {len(self.stages)}")
        tokens = []
        for i, b in enumerate(arch.blocks):
            want = {"op": next((n for n, v in OPS.items() if v == (b.op, b.exp_ratio)), None),
                    "kernel": b.kernel_size, "se": b.se_ratio, "skip": b.skip}
            for key, choices in self.options.items():
                if key == "filters":
                    match = [j for j, f in enumerate(choices) if self._filters(i, f) == b.out_chs]
                elif key == "layers":
                    match = [j for j, d in enumerate(choices) if max(1, self.stages[i][1] + d) == b.repeats]
                else:
                    match = [j for j, c in enumerate(choices) if c == want[key]]
                if not match:
                    raise ValueError(f"not in this space: block {i + 1} ('{b}') has no matching {key} choice")
                tokens.append(match[0])
        decoded = self.decode(tokens)
        if decoded != arch:
            raise ValueError(f"not in this space: '{arch}' differs from the space's nearest '{decoded}'")
        return tokens

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size, "width_mult": self.width_mult,
                "strides": list(self.strides), "min_feature_size": self.min_feature_size,
                "head_chs": self.head_chs, "dropout": self.dropout, "act": self.act,
                **{k: list(v) for k, v in zip(("ops", "kernel_sizes", "se_ratios", "skips", "filter_mults",
                                               "layer_deltas"), self.options.values(), strict=True)},
                "stages": [list(s) for s in self.stages]}

    def __repr__(self) -> str:
        return (f"MnasNetSpace(num_classes={self.num_classes}, input_size={self.input_size}, "
                f"width_mult={self.width_mult}, strides={self.strides}, size={self.size:.3g})")
