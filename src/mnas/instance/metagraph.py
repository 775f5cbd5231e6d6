"""InstaNAS's meta-graph: a MobileNetV2-shaped one-shot network whose every layer holds five modules.

Per layer the modules are MBConv k3 e6, k3 e3, k5 e6, k5 e3 and a basic residual-network block (two
3x3 convs), as in InstaNAS (REFERENCE.md; the authors' code). A *policy* switches each module on
or off per image (multi-hot), and the layer's output is the sum of the modules switched on:

- a layer that keeps its shape (stride 1, same filters) adds one identity shortcut to that sum, so
  with no module on it is skipped: ``y = x + sum(f_m(x) for m on)``;
- a layer that changes shape cannot be skipped: with no module on, the default module (the basic
  block, as in the authors' code) runs. `canonical_policy` writes that default in, so two policies
  that build the same network are one route.

Departure from the authors' code: their MBConv modules each carry their own identity, so k modules
on add ``k * x``; here the layer owns one shortcut, which makes "no module on" the k = 0 case of
the same formula rather than a special case.

`MetaGraph.forward(x, policy)` runs each module only on the images that use it (index-select,
module, index-add), so training and evaluation cost what the policies cost, not the whole graph.
`MetaGraph.route_net(route)` copies out a plain network with only a route's modules: what is
exported and timed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from mnas._util import make_divisible
from mnas.instance.routes import DEFAULT_MODULE, MODULES
from mnas.models.blocks import InvertedResidual
from mnas.models.layers import ConvBnAct, get_act_layer

__all__ = ["DEFAULT_MODULE", "MODULES", "STAGES", "LayerShape", "MetaGraph", "MetaGraphConfig", "RoutedNet",
           "canonical_policy"]

_MBCONV = {0: (3, 6), 1: (3, 3), 2: (5, 6), 3: (5, 3)}
# MobileNetV2's stages (filters, layers, stride) with InstaNAS's CIFAR strides: the stem and the
# second stage at stride 1, so 32x32 ends at 4x4 (REFERENCE.md; stem 32, head 1280).
STAGES: tuple[tuple[int, int, int], ...] = ((16, 1, 1), (24, 2, 1), (32, 3, 2), (64, 4, 2), (96, 3, 1),
                                            (160, 3, 2), (320, 1, 1))


@dataclass(frozen=True)
class LayerShape:
    """One layer of the meta-graph: filters in and out, stride, input resolution, skippable or not."""

    index: int
    in_chs: int
    out_chs: int
    stride: int
    res: int

    @property
    def skippable(self) -> bool:
        return self.stride == 1 and self.in_chs == self.out_chs


@dataclass(frozen=True)
class MetaGraphConfig:
    """Shape of a meta-graph. Filters scale by `width` (rounded to multiples of 8, as the zoo's
    multipliers), the head widens only above 1.0 (MobileNetV2's rule), so width 0.5 has exactly
    MobileNetV2 x0.5's filters."""

    width: float = 0.5
    input_size: int = 32
    num_classes: int = 10
    in_chans: int = 3
    stem_chs: int = 32
    stem_stride: int = 1
    head_chs: int = 1280
    stages: tuple[tuple[int, int, int], ...] = STAGES
    act: str = "relu6"
    dropout: float = 0.2

    def __post_init__(self) -> None:
        if not isinstance(self.width, (int, float)) or not 0 < self.width <= 4:
            raise ValueError(f"width={self.width!r}: expected a number in (0, 4]")
        for name in ("input_size", "num_classes", "in_chans", "stem_chs", "stem_stride", "head_chs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        if not self.stages or any(len(s) != 3 or min(s) < 1 for s in self.stages):
            raise ValueError(f"stages={self.stages!r}: expected (filters, layers, stride) triples of positive integers")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout={self.dropout!r}: expected a number in [0, 1)")
        get_act_layer(self.act)
        object.__setattr__(self, "stages", tuple(tuple(int(v) for v in s) for s in self.stages))

    def chs(self, c: int) -> int:
        return make_divisible(c * self.width, 8)

    @property
    def stem_out(self) -> int:
        return self.chs(self.stem_chs)

    @property
    def head_out(self) -> int:
        return make_divisible(self.head_chs * max(1.0, self.width), 8)

    def layers(self) -> list[LayerShape]:
        """Every layer's shape, in order (the stride goes to a stage's first layer)."""
        out, in_chs, res = [], self.stem_out, (self.input_size - 1) // self.stem_stride + 1
        for filters, repeats, stride in self.stages:
            for i in range(repeats):
                s = stride if i == 0 else 1
                out.append(LayerShape(len(out), in_chs, self.chs(filters), s, res))
                in_chs, res = self.chs(filters), (res - 1) // s + 1
        return out

    @property
    def final_res(self) -> int:
        last = self.layers()[-1]
        return (last.res - 1) // last.stride + 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [list(s) for s in self.stages]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MetaGraphConfig:
        data = dict(data)
        if "stages" in data:
            data["stages"] = tuple(tuple(s) for s in data["stages"])
        return cls(**data)


class BasicModule(nn.Sequential):
    """The residual network's basic block body: 3x3 conv (stride), BN, act, 3x3 conv, BN.

    No activation after the last BN (as ResNet's body before the sum, and as the MBConv modules'
    linear projection): with one, the zero-gamma start (`zero_last_bn`) gave relu6(0) = 0 with zero
    gradient to both BN parameters, so every basic module of a shape-keeping layer stayed dead."""

    def __init__(self, in_chs: int, out_chs: int, stride: int, act_layer: Callable[..., nn.Module]):
        super().__init__(ConvBnAct(in_chs, out_chs, 3, stride, act_layer=act_layer),
                         ConvBnAct(out_chs, out_chs, 3, 1, act_layer=None))


def make_module(index: int, in_chs: int, out_chs: int, stride: int, act_layer: Callable[..., nn.Module]) -> nn.Module:
    """Module `index` of MODULES for a layer, without the layer's shortcut."""
    if index == DEFAULT_MODULE:
        return BasicModule(in_chs, out_chs, stride, act_layer)
    kernel, exp = _MBCONV[index]
    return InvertedResidual(in_chs, out_chs, kernel, stride, exp, 0.0, "none", act_layer)


def canonical_policy(policy: torch.Tensor, skippable: Sequence[bool]) -> torch.Tensor:
    """(B, L, 5) policy as bool with the default module switched on wherever a shape-changing layer
    has none: the network each row builds, one way of writing it."""
    policy = policy.bool()
    fixed = torch.tensor([not s for s in skippable], device=policy.device)
    empty = ~policy.any(2) & fixed  # (B, L)
    if bool(empty.any()):
        policy = policy.clone()
        policy[..., DEFAULT_MODULE] |= empty
    return policy


class MetaLayer(nn.Module):
    """Five modules and, where the shape is kept, one identity shortcut."""

    def __init__(self, shape: LayerShape, act_layer: Callable[..., nn.Module], modules: Sequence[int] = range(5)):
        super().__init__()
        self.skippable = shape.skippable
        self.ops = nn.ModuleDict({str(i): make_module(i, shape.in_chs, shape.out_chs, shape.stride, act_layer)
                                  for i in modules})

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """`mask` (B, 5) bool, already canonical; None runs every module on every image."""
        out = x if self.skippable else None
        if mask is None:
            for op in self.ops.values():
                out = op(x) if out is None else out + op(x)
            return out
        counts = mask.sum(0).tolist()
        batch = x.shape[0]
        for key, op in self.ops.items():
            n = counts[int(key)]
            if n == 0:
                continue
            if n == batch:
                y = op(x)
                out = y if out is None else out + y
                continue
            idx = mask[:, int(key)].nonzero().squeeze(1)
            y = op(x.index_select(0, idx))  # (n, C', H', W')
            if out is None:
                out = y.new_zeros((batch, *y.shape[1:])).contiguous(memory_format=_format(y))
            out = out.index_add(0, idx, y)
        if out is None:  # a shape-changing layer always has a module on after canonical_policy
            raise ValueError("policy switches every module off in a layer that changes shape: canonicalise it first")
        return out


def _format(t: torch.Tensor) -> torch.memory_format:
    return torch.channels_last if t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last) \
        and not t.is_contiguous() else torch.contiguous_format


class MetaGraph(nn.Module):
    """Stem, the meta-layers, head conv, global pool, dropout, classifier."""

    def __init__(self, config: MetaGraphConfig):
        super().__init__()
        self.config = config
        act_layer = get_act_layer(config.act)
        self.shapes = config.layers()
        self.conv_stem = ConvBnAct(config.in_chans, config.stem_out, 3, config.stem_stride, act_layer=act_layer)
        self.layers = nn.ModuleList(MetaLayer(s, act_layer) for s in self.shapes)
        self.conv_head = ConvBnAct(self.shapes[-1].out_chs, config.head_out, 1, act_layer=act_layer)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.head_out, config.num_classes)
        init_weights(self)
        zero_last_bn(self)

    @property
    def num_layers(self) -> int:
        return len(self.shapes)

    @property
    def skippable(self) -> list[bool]:
        return [s.skippable for s in self.shapes]

    def forward(self, x: torch.Tensor, policy: torch.Tensor | None = None) -> torch.Tensor:
        """Logits for `x` (B, C, H, W); `policy` (B, L, 5) switches modules per image (None: all on)."""
        if policy is not None:
            if policy.shape != (x.shape[0], self.num_layers, len(MODULES)):
                raise ValueError(f"policy of shape {tuple(policy.shape)}: expected ({x.shape[0]}, {self.num_layers},"
                                 f" {len(MODULES)})")
            policy = canonical_policy(policy, self.skippable)
        x = self.conv_stem(x)
        for i, layer in enumerate(self.layers):
            x = layer(x, None if policy is None else policy[:, i])
        x = self.conv_head(x).mean((2, 3))  # (B, C)
        return self.classifier(self.dropout(x))

    def route_net(self, route: Sequence[int]) -> RoutedNet:
        """A plain network with only `route`'s modules (per layer a 5-bit mask; see `mnas.instance.routes`),
        weights copied: exporting or recalibrating it leaves the meta-graph untouched."""
        if len(route) != self.num_layers:
            raise ValueError(f"route has {len(route)} layers: expected {self.num_layers}")
        return RoutedNet(self, route)


class RoutedLayer(nn.Module):
    def __init__(self, layer: MetaLayer, bits: int):
        super().__init__()
        self.skippable = layer.skippable
        self.ops = nn.ModuleList(copy.deepcopy(layer.ops[str(i)]) for i in range(len(MODULES)) if bits >> i & 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.skippable else None
        for op in self.ops:
            out = op(x) if out is None else out + op(x)
        return out


class RoutedNet(nn.Module):
    """One route of a meta-graph as a standalone network (what `MetaGraph.forward` computes for an
    image whose policy is this route)."""

    def __init__(self, meta: MetaGraph, route: Sequence[int]):
        super().__init__()
        route = [int(b) | (0 if s or b else 1 << DEFAULT_MODULE) for b, s in zip(route, meta.skippable, strict=True)]
        self.route = tuple(route)
        self.conv_stem = copy.deepcopy(meta.conv_stem)
        self.layers = nn.Sequential(*(RoutedLayer(layer, b) for layer, b in zip(meta.layers, route, strict=True)
                                      if b or not layer.skippable))
        self.conv_head = copy.deepcopy(meta.conv_head)
        self.classifier = copy.deepcopy(meta.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_head(self.layers(self.conv_stem(x))).mean((2, 3))
        return self.classifier(x)


def zero_last_bn(meta: MetaGraph) -> None:
    """Start every module of a shape-keeping layer at zero output (its last batch norm's scale 0), so the
    untrained meta-graph is a plain chain of its shape-changing layers. Summing five unit-scale modules
    and the identity in ten layers otherwise diverged here: loss 1.6 -> 5.3 within 16 SGD steps at
    lr 0.05 (batch 64, CIFAR-10 subset). The zero-gamma trick of residual networks (Goyal et al., 2017)."""
    for layer in meta.layers:
        if layer.skippable:
            for op in layer.ops.values():
                norms = [m for m in op.modules() if isinstance(m, nn.BatchNorm2d)]
                nn.init.zeros_(norms[-1].weight)


def init_weights(model: nn.Module) -> None:
    """He-normal convs, unit batch norm, small uniform linear layers (as `mnas.models.build_model`)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1.0 / m.in_features**0.5, 1.0 / m.in_features**0.5)
            nn.init.zeros_(m.bias)
