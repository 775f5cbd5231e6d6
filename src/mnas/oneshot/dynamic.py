"""Dynamic (entangled) layers, Once-for-All style: each holds the largest weights of its position and
slices them at forward time to the active sub-network's shape.

Sharing rules (Cai et al. 2020, OFA; Yu et al. 2020, BigNAS):
- channels are prefix slices: the first ``c`` output (and input) channels of the widest weight, so
  expansion 3 is a channel prefix of expansion 6 and filter multiplier 0.75 a prefix of 1.25;
- kernels are centre slices: a 3x3 kernel is the centre of the 5x5 one (no kernel transform matrix);
- batch norm keeps per-position statistics of the widest shape and uses their first ``c`` entries;
- squeeze-excite reduce widths are prefix slices too (the reduce width follows the active input
  width, as `mnas.models.blocks` sizes it from the block's input filters times ``se_ratio``).

Every dynamic module has `views(...)`: the slices of its tensors that a static layer of the given
shape holds, in the order of the static layer's tensors. `mnas.oneshot.supernet` copies through
these views in both directions (a sub-network out of the supernet, a trained model into it), so
one function defines the correspondence and the two directions cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from mnas.models.blocks import ConvLayer, DepthwiseSeparable, InvertedResidual, PoolShortcut, ProjLayer
from mnas.models.layers import ConvBnAct, SqueezeExcite
from mnas.space import BlockSpec

__all__ = ["DynamicBatchNorm2d", "DynamicConv2d", "DynamicConvBn", "DynamicLinear", "DynamicPosition",
           "DynamicSE", "candidate_key", "se_width"]

Pair = tuple[torch.Tensor, torch.Tensor]  # (static tensor, the supernet's view of the same values)


def se_width(in_chs: int, se_ratio: float) -> int:
    """The SE reduce width `mnas.models.blocks` uses: from the block's input filters."""
    return max(1, int(in_chs * se_ratio))


def _centre(max_k: int, k: int) -> slice:
    start = (max_k - k) // 2
    return slice(start, start + k)


class DynamicConv2d(nn.Module):
    """A conv with the largest weight (max_out, max_in or 1, max_k, max_k); runs any prefix/centre slice."""

    def __init__(self, max_in: int, max_out: int, max_k: int, stride: int = 1, depthwise: bool = False,
                 bias: bool = False):
        super().__init__()
        if depthwise and max_in != max_out:
            raise ValueError(f"a depthwise conv keeps its channels: got max_in={max_in}, max_out={max_out}")
        self.max_in, self.max_out, self.max_k, self.stride, self.depthwise = max_in, max_out, max_k, stride, depthwise
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, max_k, max_k))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def active_weight(self, in_chs: int, out_chs: int, k: int) -> torch.Tensor:
        w = self.weight
        # Slice only where the active shape is smaller: a full-size view would cost a copy in conv2d.
        if out_chs < self.max_out:
            w = w[:out_chs]
        if not self.depthwise and in_chs < self.max_in:
            w = w[:, :in_chs]
        if k < self.max_k:
            s = _centre(self.max_k, k)
            w = w[:, :, s, s]
        return w

    def forward(self, x: torch.Tensor, out_chs: int, k: int) -> torch.Tensor:
        in_chs = x.shape[1]
        if self.depthwise:
            out_chs = in_chs
        w = self.active_weight(in_chs, out_chs, k)
        b = None if self.bias is None else self.bias[:out_chs]
        return F.conv2d(x, w, b, self.stride, k // 2, 1, in_chs if self.depthwise else 1)

    def views(self, conv: nn.Conv2d) -> Iterator[Pair]:
        out_chs, in_per_group, k, _ = conv.weight.shape
        in_chs = out_chs if self.depthwise else in_per_group
        self._check(conv, in_chs, out_chs, k)
        yield conv.weight, self.active_weight(in_chs, out_chs, k)
        if conv.bias is not None:
            yield conv.bias, self.bias[:out_chs]

    def _check(self, conv: nn.Conv2d, in_chs: int, out_chs: int, k: int) -> None:
        groups_ok = conv.groups == out_chs == in_chs if self.depthwise else conv.groups == 1
        if (out_chs > self.max_out or in_chs > self.max_in or k > self.max_k or k % 2 == 0 or conv.stride[0] != self.stride
                or not groups_ok or (conv.bias is None) != (self.bias is None)):
            raise ValueError(f"a conv of {in_chs}->{out_chs} channels, kernel {k}, stride {conv.stride[0]}, groups"
                             f" {conv.groups} does not fit this position ({self.max_in}->{self.max_out}, kernel"
                             f" <= {self.max_k}, stride {self.stride}, {'depthwise' if self.depthwise else 'dense'})")


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """Batch norm of the widest shape that normalises the first C channels of its input.

    Same semantics as `nn.BatchNorm2d` (momentum None = cumulative average, as recalibration uses);
    running statistics are updated in place on the active prefix only.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        use_batch = self.training or not self.track_running_stats
        mean = self.running_mean[:c] if self.running_mean is not None else None
        var = self.running_var[:c] if self.running_var is not None else None
        return F.batch_norm(x, mean, var, self.weight[:c], self.bias[:c], use_batch, factor, self.eps)

    def views(self, bn: nn.BatchNorm2d) -> Iterator[Pair]:
        c = bn.num_features
        if c > self.num_features:
            raise ValueError(f"a batch norm of {c} channels does not fit this position (at most {self.num_features})")
        for name in ("weight", "bias", "running_mean", "running_var"):
            yield getattr(bn, name), getattr(self, name)[:c]
        yield bn.num_batches_tracked, self.num_batches_tracked


class DynamicConvBn(nn.Module):
    """Dynamic conv, dynamic BN, optional activation: the dynamic twin of `ConvBnAct`."""

    def __init__(self, max_in: int, max_out: int, max_k: int, stride: int = 1, depthwise: bool = False,
                 act_layer: Callable[..., nn.Module] | None = None, bn_momentum: float = 0.01, bn_eps: float = 1e-3):
        super().__init__()
        self.conv = DynamicConv2d(max_in, max_out, max_k, stride, depthwise)
        self.bn = DynamicBatchNorm2d(max_out, eps=bn_eps, momentum=bn_momentum)
        self.act = act_layer(inplace=True) if act_layer is not None else None

    def forward(self, x: torch.Tensor, out_chs: int, k: int) -> torch.Tensor:
        x = self.bn(self.conv(x, out_chs, k))
        return self.act(x) if self.act is not None else x

    def views(self, block: ConvBnAct) -> Iterator[Pair]:
        if (len(block) == 3) != (self.act is not None):
            raise ValueError("a conv-BN layer's activation does not match this position's")
        yield from self.conv.views(block[0])
        yield from self.bn.views(block[1])


class DynamicSE(nn.Module):
    """Squeeze-excite over up to `max_chs` channels with a reduce width of up to `max_rd`."""

    def __init__(self, max_chs: int, max_rd: int, act_layer: Callable[..., nn.Module]):
        super().__init__()
        self.conv_reduce = DynamicConv2d(max_chs, max_rd, 1, bias=True)
        self.act = act_layer(inplace=True)
        self.conv_expand = DynamicConv2d(max_rd, max_chs, 1, bias=True)
        for conv in (self.conv_reduce, self.conv_expand):  # nn.Conv2d's default init, as the static SE has
            fan_in = conv.weight.shape[1]
            nn.init.uniform_(conv.weight, -fan_in**-0.5, fan_in**-0.5)
            nn.init.uniform_(conv.bias, -fan_in**-0.5, fan_in**-0.5)

    def forward(self, x: torch.Tensor, rd: int) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)  # (B, C, 1, 1)
        s = self.conv_expand(self.act(self.conv_reduce(s, rd, 1)), x.shape[1], 1)
        return x * torch.sigmoid(s)

    def views(self, se: SqueezeExcite) -> Iterator[Pair]:
        yield from self.conv_reduce.views(se.conv_reduce)
        yield from self.conv_expand.views(se.conv_expand)


class DynamicLinear(nn.Module):
    """The classifier: up to `max_in` input features, a fixed number of outputs."""

    def __init__(self, max_in: int, out_features: int):
        super().__init__()
        self.max_in = max_in
        self.weight = nn.Parameter(torch.empty(out_features, max_in))
        self.bias = nn.Parameter(torch.zeros(out_features))
        nn.init.uniform_(self.weight, -max_in**-0.5, max_in**-0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        return F.linear(x, self.weight if c == self.max_in else self.weight[:, :c], self.bias)

    def views(self, linear: nn.Linear) -> Iterator[Pair]:
        if linear.in_features > self.max_in or linear.out_features != self.weight.shape[0]:
            raise ValueError(f"a classifier {linear.in_features}->{linear.out_features} does not fit the supernet's"
                             f" (at most {self.max_in} -> {self.weight.shape[0]})")
        yield linear.weight, self.weight[:, :linear.in_features]
        yield linear.bias, self.bias


# -- one layer position: every op it may hold ----------------------------------------------------------
class _ConvOp(nn.Module):
    """Regular conv: kxk conv, BN, act, [SE over the output channels]."""

    def __init__(self, max_in: int, max_out: int, max_k: int, stride: int, max_se: float, act_layer):
        super().__init__()
        self.conv = DynamicConvBn(max_in, max_out, max_k, stride, act_layer=act_layer)
        self.se = DynamicSE(max_out, se_width(max_in, max_se), act_layer) if max_se > 0 else None

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = self.conv(x, spec.out_chs, spec.kernel_size)
        return self.se(out, se_width(spec.in_chs, spec.se_ratio)) if spec.se_ratio > 0 else out

    def views(self, layer: ConvLayer) -> Iterator[Pair]:
        yield from self.conv.views(layer.conv)
        if isinstance(layer.se, SqueezeExcite):
            yield from _se_views(self.se, layer.se)


class _DepthwiseSeparableOp(nn.Module):
    """Depthwise kxk, BN, act, [SE over the input channels], pointwise 1x1, BN."""

    def __init__(self, max_in: int, max_out: int, max_k: int, stride: int, max_se: float, act_layer):
        super().__init__()
        self.conv_dw = DynamicConvBn(max_in, max_in, max_k, stride, depthwise=True, act_layer=act_layer)
        self.se = DynamicSE(max_in, se_width(max_in, max_se), act_layer) if max_se > 0 else None
        self.conv_pw = DynamicConvBn(max_in, max_out, 1)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        x = self.conv_dw(x, spec.in_chs, spec.kernel_size)
        if spec.se_ratio > 0:
            x = self.se(x, se_width(spec.in_chs, spec.se_ratio))
        return self.conv_pw(x, spec.out_chs, 1)

    def views(self, layer: DepthwiseSeparable) -> Iterator[Pair]:
        yield from self.conv_dw.views(layer.conv_dw)
        if isinstance(layer.se, SqueezeExcite):
            yield from _se_views(self.se, layer.se)
        yield from self.conv_pw.views(layer.conv_pw)


class _InvertedResidualOp(nn.Module):
    """MBConv: expand 1x1 (mid = in x expansion, a prefix of the widest), depthwise kxk, [SE], project 1x1."""

    def __init__(self, max_in: int, max_out: int, max_k: int, stride: int, max_exp: int, max_se: float, act_layer):
        super().__init__()
        max_mid = max_in * max_exp
        self.conv_pw = DynamicConvBn(max_in, max_mid, 1, act_layer=act_layer)
        self.conv_dw = DynamicConvBn(max_mid, max_mid, max_k, stride, depthwise=True, act_layer=act_layer)
        self.se = DynamicSE(max_mid, se_width(max_in, max_se), act_layer) if max_se > 0 else None
        self.conv_pwl = DynamicConvBn(max_mid, max_out, 1)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        x = self.conv_pw(x, spec.in_chs * spec.exp_ratio, 1)
        x = self.conv_dw(x, x.shape[1], spec.kernel_size)
        if spec.se_ratio > 0:
            x = self.se(x, se_width(spec.in_chs, spec.se_ratio))
        return self.conv_pwl(x, spec.out_chs, 1)

    def views(self, layer: InvertedResidual) -> Iterator[Pair]:
        yield from self.conv_pw.views(layer.conv_pw)
        yield from self.conv_dw.views(layer.conv_dw)
        if isinstance(layer.se, SqueezeExcite):
            yield from _se_views(self.se, layer.se)
        yield from self.conv_pwl.views(layer.conv_pwl)


class _ProjOp(nn.Module):
    """1x1 conv with the position's stride, BN, no activation."""

    def __init__(self, max_in: int, max_out: int, stride: int):
        super().__init__()
        self.conv = DynamicConvBn(max_in, max_out, 1, stride)

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        return self.conv(x, spec.out_chs, 1)

    def views(self, layer: ProjLayer) -> Iterator[Pair]:
        yield from self.conv.views(layer.conv)


def _se_views(dynamic: DynamicSE | None, se: SqueezeExcite) -> Iterator[Pair]:
    if dynamic is None:
        raise ValueError("a layer with squeeze-excite does not fit a position without one")
    yield from dynamic.views(se)


_STATIC = {"conv": ConvLayer, "ds": DepthwiseSeparable, "mbconv": InvertedResidual, "proj": ProjLayer}


def candidate_key(op: str, kernel: int, exp: int, se: float) -> str:
    """The name of one candidate's own weights at a position with separate weights per candidate."""
    return op if op == "proj" else f"{op}_k{kernel}_e{exp}_se{round(float(se) * 1000)}"


def _family(op: str, max_in: int, max_out: int, stride: int, max_k: int, max_exp: int, max_se: float,
            act_layer) -> nn.Module:
    if op == "conv":
        return _ConvOp(max_in, max_out, max_k, stride, max_se, act_layer)
    if op == "ds":
        return _DepthwiseSeparableOp(max_in, max_out, max_k, stride, max_se, act_layer)
    if op == "mbconv":
        return _InvertedResidualOp(max_in, max_out, max_k, stride, max_exp, max_se, act_layer)
    return _ProjOp(max_in, max_out, stride)


class DynamicPosition(nn.Module):
    """One layer position of a supernet: separate weights per op family (conv, ds, mbconv, proj), each
    entangled across kernels, expansions, widths and SE ratios; and the pool shortcut's projection.

    With `candidates` (a list of (op, kernel, expansion, SE ratio)), every candidate of the families in
    `ops` gets weights of its own instead (FBNet's and ProxylessNAS's sharing): only the widths are
    still entangled, and a layer whose candidate is not listed does not fit.

    `forward(x, spec)` runs the layer `spec` describes (a one-layer `BlockSpec` with the layer's own
    input filters and stride), with the same skip rules as `mnas.models.blocks`.
    """

    def __init__(self, max_in: int, max_out: int, stride: int, ops: Iterable[str], *, max_k: int = 3,
                 max_exp: int = 1, max_se: float = 0.0, pool: bool = False, pool_proj: bool = False,
                 act_layer: Callable[..., nn.Module] = nn.ReLU,
                 candidates: Iterable[tuple[str, int, int, float]] | None = None):
        super().__init__()
        ops = set(ops)
        unknown = ops - set(_STATIC)
        if unknown:  # no ops at all is allowed: a position that is always an identity skip
            raise ValueError(f"position ops {sorted(ops)}: expected some of {', '.join(_STATIC)}")
        self.max_in, self.max_out, self.stride = max_in, max_out, stride
        self.max_k, self.max_exp, self.max_se = max_k, max_exp, max_se
        self.separate = candidates is not None
        families: dict[str, nn.Module] = {}
        if candidates is None:
            for op in ("conv", "ds", "mbconv", "proj"):
                if op in ops:
                    families[op] = _family(op, max_in, max_out, stride, max_k, max_exp, max_se, act_layer)
        else:
            for op, k, exp, se in sorted({(o, int(k), int(e), float(se)) for o, k, e, se in candidates}):
                if op in ops and op != "proj":
                    if candidate_key(op, k, exp, se) in families:  # SE ratios equal to 3 decimals
                        raise ValueError(f"candidates {op} k{k} e{exp} SE {se} and another SE ratio share the name"
                                         f" {candidate_key(op, k, exp, se)!r}: give SE ratios that differ by 0.001")
                    families[candidate_key(op, k, exp, se)] = _family(op, max_in, max_out, stride, k, exp, se,
                                                                      act_layer)
            if "proj" in ops:
                families["proj"] = _ProjOp(max_in, max_out, stride)
        self.ops = nn.ModuleDict(families)
        # The pool skip's 3x3 average pool has no weights; its 1x1 projection is per position.
        self.pool = nn.AvgPool2d(3, stride, padding=1, count_include_pad=False) if pool else None
        self.pool_proj = DynamicConvBn(max_in, max_out, 1) if pool and pool_proj else None

    def check(self, spec: BlockSpec) -> None:
        """ValueError (one line) if the layer `spec` cannot run at this position."""
        why = None
        if self._key(spec) not in self.ops:
            if self.separate and spec.op in _STATIC and spec.op != "proj":
                why = (f"op {spec.op!r} kernel {spec.kernel_size} expansion {spec.exp_ratio} SE {spec.se_ratio} has"
                       f" no weights of its own here (this position's: {', '.join(self.ops) or 'none'})")
            else:
                why = f"op {spec.op!r} is not among this position's ({', '.join(self.ops)})"
        elif spec.stride != self.stride:
            why = f"stride {spec.stride} differs from the position's {self.stride}"
        elif spec.in_chs > self.max_in or spec.out_chs > self.max_out:
            why = f"filters {spec.in_chs}->{spec.out_chs} exceed the position's {self.max_in}->{self.max_out}"
        elif spec.kernel_size > self.max_k or spec.exp_ratio > self.max_exp:
            why = f"kernel {spec.kernel_size} / expansion {spec.exp_ratio} exceed the position's {self.max_k} / {self.max_exp}"
        elif spec.se_ratio > self.max_se:
            why = f"SE ratio {spec.se_ratio} exceeds the position's {self.max_se}"
        elif spec.skip == "pool" and self.pool is None:
            why = "this position has no pool shortcut"
        elif spec.skip == "pool" and spec.in_chs != spec.out_chs and self.pool_proj is None:
            why = "this position's pool shortcut has no projection"
        if why:
            raise ValueError(f"layer '{spec}' does not fit the supernet: {why}")

    def _key(self, spec: BlockSpec) -> str:
        return candidate_key(spec.op, spec.kernel_size, spec.exp_ratio, spec.se_ratio) if self.separate else spec.op

    def forward(self, x: torch.Tensor, spec: BlockSpec) -> torch.Tensor:
        out = self.ops[self._key(spec)](x, spec)
        if spec.skip == "identity":
            if spec.stride == 1 and spec.in_chs == spec.out_chs:
                return out + x
        elif spec.skip == "pool":
            short = self.pool(x)
            if spec.in_chs != spec.out_chs:
                short = self.pool_proj(short, spec.out_chs, 1)
            return out + short
        return out

    def views(self, layer: nn.Module, spec: BlockSpec) -> Iterator[Pair]:
        """The supernet's slices that the static `layer` (built from `spec`) holds."""
        if not isinstance(layer, _STATIC[spec.op]):
            raise ValueError(f"a {type(layer).__name__} is not the static twin of op {spec.op!r}")
        yield from self.ops[self._key(spec)].views(layer)
        if isinstance(layer.shortcut, PoolShortcut) and isinstance(layer.shortcut.proj, ConvBnAct):
            yield from self.pool_proj.views(layer.shortcut.proj)
