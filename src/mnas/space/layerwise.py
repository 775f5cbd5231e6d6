"""A layer-wise search space (FBNet, Wu et al. 2019; ProxylessNAS, Cai et al. 2019): every layer of
every stage picks its own op from one list.

The macro skeleton is fixed by the settings: a 3x3 stem (width, stride), stages of (width, depth,
first stride), a 1x1 head and the activation. By default it is MobileNetV2's, the skeleton the
MnasNet space is built on, so the two spaces can be compared on the same task (the MnasNet paper
argues its hierarchical space beats a flat per-layer one, section 4.1).

Ops are named ``k<kernel>e<expansion>`` (an MBConv; ``e1`` is a depthwise-separable conv, as in
the block grammar), ``conv_k<kernel>`` (a regular conv), either optionally followed by
``_se<ratio>`` (squeeze-excite, e.g. ``k5e6_se0.25``), and ``skip``. Every layer has the identity
residual where its stride is 1 and its filters are unchanged. ``skip`` is the identity where the
shape allows (the layer disappears) and otherwise a ``proj`` layer (1x1 conv with the layer's
stride and BN, no activation), so every layer can be skipped.

Decoding (the canonical rule): layers are taken in order, identity skips dropped, and a layer
joins the block before it (one more repeat) when it is the same op with stride 1 and unchanged
filters; so a block chain never holds two adjacent blocks that could be one. Encoding inverts it
by filling every stage's positions from the first (a skipped layer sits after the layers kept, as
the MnasNet supernet's layer counts keep the first d layers); another token sequence with the
identity skips elsewhere decodes to the same architecture.

Small inputs: with ``strides=None`` the stem and stage strides are adapted as the MnasNet space
does (`mnas.space.mnasnet.auto_strides`: the earliest stride-2 stages become stride 1 until the
final feature map keeps at least ``min_feature_size`` pixels).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from mnas._util import make_divisible
from mnas.space.arch import ACTIVATIONS, Arch
from mnas.space.base import Decision, SearchSpace
from mnas.space.blocks import BlockSpec, format_float
from mnas.space.mnasnet import MOBILENETV2_STAGES, resolve_strides

__all__ = ["DEFAULT_LAYER_OPS", "LayerwiseSpace", "parse_layer_op"]

DEFAULT_LAYER_OPS = ("k3e3", "k3e6", "k5e3", "k5e6", "skip")  # ProxylessNAS's MBConv grid (less k7), and skip
_OP = re.compile(r"(?:k([0-9]+)e([0-9]+)|conv_k([0-9]+))(?:_se([0-9.e-]+))?\Z")


def parse_layer_op(name: str) -> tuple[str, int, int, float] | None:
    """(op, kernel, expansion, SE ratio) of a layer op name, None for ``skip``; ValueError otherwise."""
    if name == "skip":
        return None
    m = _OP.match(name) if isinstance(name, str) else None
    if m is None:
        raise ValueError(f"unknown layer op {name!r}: expected 'skip', 'k<kernel>e<expansion>' (e1: depthwise-"
                         "separable) or 'conv_k<kernel>', optionally with '_se<ratio>', e.g. 'k5e6_se0.25'")
    k = int(m.group(1) or m.group(3))
    exp = int(m.group(2)) if m.group(2) else 1
    op = "conv" if m.group(3) else ("ds" if exp == 1 else "mbconv")
    try:
        se = float(m.group(4)) if m.group(4) else 0.0
        BlockSpec(op, 1, k, 1, exp, 8, 8, se)
    except ValueError as exc:
        raise ValueError(f"layer op {name!r}: {exc}") from None
    if _op_name(op, k, exp, se) != name or (m.group(4) and se == 0):
        raise ValueError(f"layer op {name!r} is not written canonically: expected {_op_name(op, k, exp, se)!r}")
    return op, k, exp, se


def _op_name(op: str, k: int, exp: int, se: float) -> str:
    base = f"conv_k{k}" if op == "conv" else f"k{k}e{exp}"
    return base + (f"_se{format_float(se)}" if se > 0 else "")


def _mergeable(block: BlockSpec, layer: BlockSpec) -> bool:
    return (layer.stride == 1 and layer.in_chs == layer.out_chs == block.out_chs and block.repeats < 64
            and (layer.op, layer.kernel_size, layer.exp_ratio, layer.se_ratio, layer.skip)
            == (block.op, block.kernel_size, block.exp_ratio, block.se_ratio, block.skip))


class LayerwiseSpace(SearchSpace):
    """Every layer of every stage chooses one op of `ops`; see the module docstring for the rules."""

    def __init__(self, num_classes: int = 1000, input_size: int = 224, *, width_mult: float = 1.0,
                 stem_chs: int = 32, stem_stride: int = 2,
                 stages: Sequence[tuple[int, int, int]] = MOBILENETV2_STAGES, strides: Sequence[int] | None = None,
                 min_feature_size: int = 4, head_chs: int = 1280, dropout: float = 0.2, act: str = "relu",
                 ops: Sequence[str] = DEFAULT_LAYER_OPS):
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r}: expected an integer >= 2")
        if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4:
            raise ValueError(f"input_size={input_size!r}: expected an integer >= 4 (pixels)")
        if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not 0 < width_mult <= 4:
            raise ValueError(f"width_mult={width_mult!r}: expected a number in (0, 4]")
        if act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {act!r}: expected one of {', '.join(ACTIVATIONS)}")
        if isinstance(stem_chs, bool) or not isinstance(stem_chs, int) or stem_chs < 1:
            raise ValueError(f"stem_chs={stem_chs!r}: expected a positive integer")
        if stem_stride not in (1, 2):
            raise ValueError(f"stem_stride={stem_stride!r}: expected 1 or 2")
        try:
            self.stages = tuple((int(w), int(d), int(s)) for w, d, s in stages)
        except (TypeError, ValueError):
            raise ValueError("stages: expected (width, depth, first stride) triples, e.g. ((16, 1, 1), (24, 2, 2))") from None
        bad = next((s for s in self.stages if s[0] < 1 or not 1 <= s[1] <= 64 or s[2] not in (1, 2)), None)
        if not self.stages or bad:
            raise ValueError(f"stage {bad}: expected width >= 1, depth in [1, 64] and stride 1 or 2" if bad
                             else "stages: expected at least one (width, depth, stride) stage")
        ops = tuple(ops)
        if not ops or len(set(ops)) != len(ops):
            raise ValueError(f"ops={ops!r}: expected a non-empty list of distinct layer ops")
        self.op_specs = {name: parse_layer_op(name) for name in ops}
        self.num_classes, self.input_size, self.width_mult = num_classes, input_size, float(width_mult)
        self.base_stem_chs, self.min_feature_size = stem_chs, min_feature_size
        self.head_chs, self.dropout, self.act, self.ops = head_chs, float(dropout), act, ops
        self.strides = resolve_strides(strides, input_size, min_feature_size,
                                       (stem_stride,) + tuple(s for _, _, s in self.stages), "stage")
        self.widths = tuple(make_divisible(w * self.width_mult) for w, _, _ in self.stages)
        self.decisions = tuple(Decision(f"stage{s + 1}_layer{j + 1}", ops)
                               for s, (_, depth, _) in enumerate(self.stages) for j in range(depth))
        # Probe every op everywhere once, so that a bad setting fails here, not in a search.
        for i in range(len(ops)):
            if not any(spec for stage in self.layer_specs([i] * len(self.decisions)) for spec in stage):
                raise ValueError("every layer can be an identity skip, which leaves no block: give a stage stride 2"
                                 " or a new width, or leave 'skip' out of ops")
            self.decode([i] * len(self.decisions))

    @property
    def stem_chs(self) -> int:
        return make_divisible(self.base_stem_chs * self.width_mult)

    def _layer(self, op_name: str, in_chs: int, out_chs: int, stride: int) -> BlockSpec | None:
        spec = self.op_specs[op_name]
        if spec is None:
            if stride == 1 and in_chs == out_chs:
                return None  # the identity: the layer disappears
            return BlockSpec("proj", 1, 1, stride, 1, in_chs, out_chs)
        op, k, exp, se = spec
        return BlockSpec(op, 1, k, stride, exp, in_chs, out_chs, se)

    def positions(self) -> list[list[tuple[int, int, int]]]:
        """(input filters, output filters, stride) of every layer position, per stage."""
        out, in_chs = [], self.stem_chs
        for s, (_, depth, _) in enumerate(self.stages):
            width = self.widths[s]
            out.append([(in_chs if j == 0 else width, width, self.strides[s + 1] if j == 0 else 1) for j in range(depth)])
            in_chs = width
        return out

    def layer_specs(self, tokens: Sequence[int]) -> list[list[BlockSpec | None]]:
        """Per stage, per position: the one-layer BlockSpec the tokens choose there (None: identity skip)."""
        tokens = iter(self.check_tokens(tokens))
        return [[self._layer(self.ops[next(tokens)], i, o, s) for i, o, s in stage] for stage in self.positions()]

    def decode(self, tokens: Sequence[int]) -> Arch:
        blocks: list[BlockSpec] = []
        for stage in self.layer_specs(tokens):
            for layer in stage:
                if layer is None:
                    continue
                if blocks and _mergeable(blocks[-1], layer):
                    blocks[-1] = replace(blocks[-1], repeats=blocks[-1].repeats + 1)
                else:
                    blocks.append(layer)
        return Arch(tuple(blocks), self.strides[0], self.head_chs, self.dropout, self.act)

    def encode(self, arch: Arch) -> list[int]:
        """The canonical tokens of `arch`: each stage's layers on its first positions, skips after."""
        layers = [BlockSpec(b.op, 1, b.kernel_size, b.stride if i == 0 else 1, b.exp_ratio,
                            b.in_chs if i == 0 else b.out_chs, b.out_chs, b.se_ratio, b.skip)
                  for b in arch.blocks for i in range(b.repeats)]
        tokens, pos = [], 0
        for s, stage in enumerate(self.positions()):
            for j, (in_chs, out_chs, stride) in enumerate(stage):
                layer = layers[pos] if pos < len(layers) else None
                choice = None
                if layer is not None and (layer.in_chs, layer.out_chs, layer.stride) == (in_chs, out_chs, stride):
                    choice = next((c for c, name in enumerate(self.ops)
                                   if self._layer(name, in_chs, out_chs, stride) == layer), None)
                if choice is not None:
                    pos += 1
                else:
                    choice = next((c for c, name in enumerate(self.ops)
                                   if self._layer(name, in_chs, out_chs, stride) is None), None)
                    if choice is None:
                        got = f"'{layer}'" if layer is not None else "no layer"
                        raise ValueError(f"not in this space: stage {s + 1} layer {j + 1} needs a layer of"
                                         f" {in_chs}->{out_chs} filters, stride {stride}, from {', '.join(self.ops)}; got {got}")
                tokens.append(choice)
        if pos != len(layers):
            raise ValueError(f"not in this space: '{arch}' has {len(layers) - pos} layers more than the space places")
        decoded = self.decode(tokens)
        if decoded != arch:
            raise ValueError(f"not in this space: '{arch}' differs from the space's nearest '{decoded}'")
        return tokens

    def settings(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "input_size": self.input_size, "width_mult": self.width_mult,
                "stem_chs": self.base_stem_chs, "stem_stride": self.strides[0],
                "stages": [list(s) for s in self.stages], "strides": list(self.strides),
                "min_feature_size": self.min_feature_size, "head_chs": self.head_chs, "dropout": self.dropout,
                "act": self.act, "ops": list(self.ops)}

    def __repr__(self) -> str:
        return (f"LayerwiseSpace(num_classes={self.num_classes}, input_size={self.input_size}, width_mult="
                f"{self.width_mult}, strides={self.strides}, ops={self.ops}, size={self.size:.3g})")
