"""`Supernet`: one module holding every architecture of a search space, and `build_supernet(space)`.

Layout. A supernet is a stem, a grid of layer positions (stage s, layer j) and a head, all dynamic
(`mnas.oneshot.dynamic`): each position holds the widest weights any architecture of the space
needs there. An architecture maps to a *plan*: for every position either a one-layer `BlockSpec`
(the layer that runs there, with its own input filters and stride) or None (the position is
skipped). For the MnasNet space, block i of an architecture runs on the first `repeats` positions
of stage i (layer counts are the first d layers of the deepest); the layer-wise supernet maps each
layer to its own position (`mnas.oneshot.layerwise_supernet`).

Contract (what `subnet` promises): `subnet(arch)` is `mnas.models.build_model(arch, num_classes,
in_chans)` with every parameter and BN buffer copied from the supernet's active slices, so its
structure and parameter count are those of the standalone build, and in eval mode it computes what
the supernet computes with `set_active(arch)`. Each copy goes through the dynamic modules' `views`;
a static tensor that no view covers is an error, never left at its random initialisation.

Sharing. By default (`sharing="shared"`) each position keeps one weight set per op family, and a
smaller kernel, expansion or SE ratio is the centre or prefix of the largest (Single-Path NAS's
superkernel). `sharing="separate"` gives each (op, kernel, expansion, SE ratio) candidate its own
weights at every position, as FBNet and ProxylessNAS do; widths stay entangled either way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from mnas.models.builder import MnasNetModel, build_model
from mnas.models.layers import get_act_layer
from mnas.oneshot.dynamic import DynamicConvBn, DynamicLinear, DynamicPosition, Pair
from mnas.space import Arch, BlockSpec, MnasNetSpace, SearchSpace, as_arch

__all__ = ["MnasNetSupernet", "Supernet", "arch_macs", "build_supernet"]

CONFIG_FORMAT = "mnas.supernet-config/1"
SHARINGS = ("shared", "separate")


@dataclass(frozen=True)
class _Active:
    arch: Arch
    plan: tuple[tuple[BlockSpec | None, ...], ...]  # per stage, per position


class Supernet(nn.Module):
    """Base class: subclasses provide `_layout()` (the positions) and `_plan(arch)` (arch -> positions).

    After `set_active(arch)` (or `set_active_tokens`), `forward` runs exactly that sub-network, in
    train or eval mode. A new supernet starts with the space's largest architecture active.
    """

    def __init__(self, space: SearchSpace, in_chans: int = 3, sharing: str = "shared"):
        super().__init__()
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans={in_chans!r}: expected a positive integer")
        if sharing not in SHARINGS:
            raise ValueError(f"sharing={sharing!r}: expected one of {', '.join(SHARINGS)}")
        self.sharing = sharing
        self.space, self.in_chans, self.num_classes = space, in_chans, int(space.num_classes)
        self.act = space.act
        act_layer = get_act_layer(self.act)
        stem_chs, stem_stride, stages, head_chs = self._layout()
        if sharing == "separate":
            candidates = self._candidates()
            stages = [[dict(p, candidates=candidates) for p in stage] for stage in stages]
        self.max_stem, self.stem_stride, self.head_chs = stem_chs, stem_stride, head_chs
        self.conv_stem = DynamicConvBn(in_chans, stem_chs, 3, stem_stride, act_layer=act_layer)
        self.stages = nn.ModuleList(nn.ModuleList(DynamicPosition(act_layer=act_layer, **p) for p in stage)
                                    for stage in stages)
        last = stages[-1][0]["max_out"]
        self.conv_head = DynamicConvBn(last, head_chs, 1, act_layer=act_layer) if head_chs else None
        self.classifier = DynamicLinear(head_chs or last, self.num_classes)
        self._extremes: dict[str, Arch] = {}
        self._active: _Active | None = None
        self.set_active(self.largest_arch())

    # -- what subclasses provide -----------------------------------------------------------------
    def _layout(self) -> tuple[int, int, list[list[dict[str, Any]]], int]:
        """(widest stem, stem stride, per stage a list of DynamicPosition kwargs, head filters)."""
        raise NotImplementedError

    def _plan(self, arch: Arch) -> list[list[BlockSpec | None]]:
        raise NotImplementedError

    def _candidates(self) -> list[tuple[str, int, int, float]]:
        """Every (op family, kernel, expansion, SE ratio) a layer of the space can take (separate sharing)."""
        raise NotImplementedError

    def _plan_tokens(self, tokens: Sequence[int]) -> tuple[Arch, list[list[BlockSpec | None]]]:
        arch = self.space.decode(tokens)
        return arch, self._plan(arch)

    # -- choosing the sub-network ----------------------------------------------------------------
    def set_active(self, arch: Arch | str) -> None:
        """Make `forward` run `arch` (an Arch of the space, or its text). ValueError if it does not fit."""
        arch = as_arch(arch)
        self._active = self._make_active(arch, self._plan(arch))

    def set_active_tokens(self, tokens: Sequence[int]) -> None:
        """Make `forward` run the architecture the space decodes from `tokens`."""
        self._active = self._make_active(*self._plan_tokens(tokens))

    @property
    def active_arch(self) -> Arch:
        return self._active.arch

    def _make_active(self, arch: Arch, plan: list[list[BlockSpec | None]]) -> _Active:
        self._check_globals(arch)
        if len(plan) != len(self.stages) or any(len(p) != len(s) for p, s in zip(plan, self.stages, strict=True)):
            raise ValueError(f"'{arch}' does not fit the supernet: its plan does not match the supernet's positions")
        for stage, specs in zip(self.stages, plan, strict=True):
            for position, spec in zip(stage, specs, strict=True):
                if spec is not None:
                    position.check(spec)
        return _Active(arch, tuple(tuple(p) for p in plan))

    def _check_globals(self, arch: Arch) -> None:
        why = None
        if arch.stem_stride != self.stem_stride:
            why = f"stem stride {arch.stem_stride}, the supernet's is {self.stem_stride}"
        elif arch.stem_chs > self.max_stem:
            why = f"stem of {arch.stem_chs} filters, the supernet's widest is {self.max_stem}"
        elif arch.head_chs != self.head_chs:
            why = f"head of {arch.head_chs} filters, the supernet's is {self.head_chs}"
        elif arch.act != self.act:
            why = f"activation {arch.act}, the supernet's is {self.act}"
        if why:
            raise ValueError(f"'{arch}' does not fit the supernet: {why}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        active = self._active
        x = self.conv_stem(x, active.arch.stem_chs, 3)
        for stage, specs in zip(self.stages, active.plan, strict=True):
            for position, spec in zip(stage, specs, strict=True):
                if spec is not None:
                    x = position(x, spec)
        if self.conv_head is not None:
            x = self.conv_head(x, self.head_chs, 1)
        x = x.mean((2, 3))  # (B, C)
        return self.classifier(F.dropout(x, active.arch.dropout, self.training))

    # -- static sub-networks and warm start --------------------------------------------------------
    def _pairs(self, model: MnasNetModel, active: _Active, classifier: bool = True) -> Iterator[Pair]:
        yield from self.conv_stem.views(model.conv_stem)
        layers = [layer for block in model.blocks for layer in block]
        runs = [(position, spec) for stage, specs in zip(self.stages, active.plan, strict=True)
                for position, spec in zip(stage, specs, strict=True) if spec is not None]
        if len(layers) != len(runs):
            raise ValueError(f"the model has {len(layers)} layers, '{active.arch}' has {len(runs)}")
        for layer, (position, spec) in zip(layers, runs, strict=True):
            yield from position.views(layer, spec)
        if self.conv_head is not None:
            yield from self.conv_head.views(model.conv_head)
        if classifier:
            yield from self.classifier.views(model.classifier)

    def _copy(self, model: MnasNetModel, active: _Active, into_model: bool, classifier: bool = True) -> int:
        """Copy every tensor of `model` from (or into) the supernet; the number of tensors copied."""
        expected = {id(t): name for name, t in model.state_dict(keep_vars=True).items()
                    if classifier or not name.startswith("classifier.")}
        seen = set()
        with torch.no_grad():
            for static, view in self._pairs(model, active, classifier):
                if static.shape != view.shape:
                    raise ValueError(f"{expected.get(id(static), '?')}: shape {tuple(static.shape)} differs from the"
                                     f" supernet's slice {tuple(view.shape)}")
                seen.add(id(static))
                if into_model:
                    static.copy_(view)
                else:
                    view.copy_(static)
        missing = sorted(name for i, name in expected.items() if i not in seen)
        if missing:  # an internal inconsistency between the builder and the dynamic layers
            raise RuntimeError(f"supernet copy left {len(missing)} tensors untouched, e.g. {missing[0]}")
        return len(seen)

    def subnet(self, arch: Arch | str | None = None) -> MnasNetModel:
        """`build_model(arch)` holding the supernet's weights and BN statistics (None: the active one).

        The result is independent of the supernet (copies, not views), on the supernet's device, in
        the supernet's train/eval mode.
        """
        active = self._active if arch is None else self._make_active(as_arch(arch), self._plan(as_arch(arch)))
        device = self.classifier.weight.device
        model = build_model(active.arch, self.num_classes, self.in_chans).to(device)
        self._copy(model, active, into_model=True)
        return model.train(self.training)

    def load_subnet_weights(self, model: nn.Module | dict[str, torch.Tensor], arch: Arch | str | None = None, *,
                            classifier: bool = True) -> int:
        """Warm start: copy a trained standalone model of `arch` into the supernet's slices.

        `model` is a `build_model` module (its own architecture is used when `arch` is None) or its
        state dict (then `arch` is required). Weights outside the slices `arch` uses are left as they
        are. `classifier=False` keeps the supernet's classifier (a model trained for other classes).
        Returns the number of tensors copied.
        """
        if isinstance(model, dict):
            if arch is None:
                raise ValueError("load_subnet_weights: a state dict needs its architecture: pass arch=...")
            classes = int(model["classifier.weight"].shape[0]) if "classifier.weight" in model else self.num_classes
            static = build_model(as_arch(arch), classes, self.in_chans)
            try:
                static.load_state_dict(model)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[1:2] or [str(exc)]
                raise ValueError(f"load_subnet_weights: the state dict is not a model of '{arch}': {first[0].strip()}") from None
            model = static
        if arch is None:
            if not isinstance(model, MnasNetModel):
                raise ValueError(f"load_subnet_weights: a {type(model).__name__} has no architecture: pass arch=...")
            arch = model.arch_string
        arch = as_arch(arch)
        if not isinstance(model, MnasNetModel):
            raise ValueError(f"load_subnet_weights: expected a model from mnas.models.build_model, got {type(model).__name__}")
        if classifier and model.classifier.out_features != self.num_classes:
            raise ValueError(f"load_subnet_weights: the model has {model.classifier.out_features} classes, the supernet"
                             f" {self.num_classes}: pass classifier=False to keep the supernet's classifier")
        return self._copy(model, self._make_active(arch, self._plan(arch)), into_model=False, classifier=classifier)

    # -- the space's extremes, sampling, BN, config -------------------------------------------------
    def largest_arch(self) -> Arch:
        """The space's sub-network with the most MACs (coordinate ascent on an analytic MAC count)."""
        return self._extreme("largest")

    def smallest_arch(self) -> Arch:
        """The space's sub-network with the fewest MACs."""
        return self._extreme("smallest")

    def _extreme(self, which: str) -> Arch:
        if which not in self._extremes:
            sign = 1 if which == "largest" else -1
            size = int(getattr(self.space, "input_size", 224))
            score = lambda t: sign * arch_macs(self.space.decode(t), size, self.num_classes, self.in_chans)  # noqa: E731
            best = max((_coordinate_ascent(self.space.num_choices, score, start) for start in ("first", "last")),
                       key=lambda r: r[1])[0]
            self._extremes[which] = self.space.decode(best)
        return self._extremes[which]

    def sample_arch(self, rng: int | np.random.Generator | None = None) -> Arch:
        """A uniformly random architecture of the space (uniform over its tokens)."""
        return self.space.sample(rng)

    def bn_modules(self) -> list[nn.BatchNorm2d]:
        """Every batch norm of the supernet (all `DynamicBatchNorm2d`, widest shape)."""
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm2d)]

    def config(self) -> dict[str, Any]:
        """JSON dict that rebuilds this supernet (weights aside) with `Supernet.from_config`."""
        config = {"format": CONFIG_FORMAT, "space": {"class": type(self.space).__name__,
                                                      "settings": self.space.settings()}, "in_chans": self.in_chans}
        if self.sharing != "shared":  # configs of shared supernets stay as they were before the option
            config["sharing"] = self.sharing
        return config

    @staticmethod
    def from_config(config: dict[str, Any]) -> Supernet:
        """Inverse of `config()`: a fresh supernet of the same space (random weights)."""
        if not isinstance(config, dict) or not isinstance(config.get("space"), dict):
            raise ValueError("supernet config: expected {'space': {'class': ..., 'settings': ...}, 'in_chans': ...}")
        from mnas import space as space_module
        name = config["space"].get("class")
        cls = getattr(space_module, str(name), None)
        if not (isinstance(cls, type) and issubclass(cls, SearchSpace)) or name not in _BUILDERS:
            raise ValueError(f"supernet config: unknown space class {name!r}: expected one of {', '.join(_BUILDERS)}")
        sharing = config.get("sharing", "shared")
        if sharing not in SHARINGS:
            raise ValueError(f"supernet config: unknown sharing {sharing!r}: expected one of {', '.join(SHARINGS)}")
        return build_supernet(cls(**config["space"].get("settings", {})), in_chans=int(config.get("in_chans", 3)),
                              sharing=sharing)

    def extra_repr(self) -> str:
        extra = f", sharing={self.sharing!r}" if self.sharing != "shared" else ""
        return f"space={self.space!r}, in_chans={self.in_chans}{extra}"


def _coordinate_ascent(sizes: list[int], score, start: str, sweeps: int = 6) -> tuple[list[int], float]:
    tokens = [0] * len(sizes) if start == "first" else [k - 1 for k in sizes]
    best = score(tokens)
    for _ in range(sweeps):
        improved = False
        for i, k in enumerate(sizes):
            for c in range(k):
                if c == tokens[i]:
                    continue
                trial = tokens[:i] + [c] + tokens[i + 1:]
                value = score(trial)
                if value > best:
                    tokens, best, improved = trial, value, True
        if not improved:
            break
    return tokens, best


def _out(res: int, stride: int) -> int:
    return (res - 1) // stride + 1


def arch_macs(arch: Arch, input_size: int, num_classes: int, in_chans: int = 3) -> int:
    """Multiply-accumulates of the convolutions and classifier of `arch` as `build_model` builds it
    (what `mnas.models.count_macs` counts, up to pooling and element-wise work), without building it."""
    res = _out(input_size, arch.stem_stride)
    macs = 9 * in_chans * arch.stem_chs * res * res
    for b in arch.blocks:
        for i in range(b.repeats):
            cin, stride = (b.in_chs, b.stride) if i == 0 else (b.out_chs, 1)
            r, k, cout = _out(res, stride), b.kernel_size, b.out_chs
            if b.op in ("conv", "proj"):
                macs += k * k * cin * cout * r * r
                se_chs = cout
            elif b.op == "ds":
                macs += k * k * cin * r * r + cin * cout * r * r
                se_chs = cin
            else:
                mid = cin * b.exp_ratio
                macs += cin * mid * res * res + k * k * mid * r * r + mid * cout * r * r
                se_chs = mid
            if b.se_ratio > 0:
                macs += 2 * se_chs * max(1, int(cin * b.se_ratio))
            if b.skip == "pool" and cin != cout:
                macs += cin * cout * r * r
            res = r
    last = arch.blocks[-1].out_chs
    if arch.head_chs:
        macs += last * arch.head_chs * res * res
        last = arch.head_chs
    return macs + last * num_classes


class MnasNetSupernet(Supernet):
    """The supernet of an `MnasNetSpace`: stage i holds as many positions as its deepest choice;
    block i of an architecture runs on the first `repeats` of them."""

    space: MnasNetSpace

    def _layout(self):
        space = self.space
        options = space.options
        names = [d.name for d in space.decisions]

        def decode_with(key: str, index: int) -> Arch:  # every block takes choice `index` of `key`
            return space.decode([index if name.endswith("_" + key) else 0 for name in names])

        widths = [decode_with("filters", f).blocks for f in range(len(options["filters"]))]
        depths = [decode_with("layers", d).blocks for d in range(len(options["layers"]))]
        from mnas.space.mnasnet import OPS as MNAS_OPS
        families = sorted({MNAS_OPS[o][0] for o in options["op"]})
        max_exp = max(MNAS_OPS[o][1] for o in options["op"])
        common = {"ops": families, "max_k": max(options["kernel"]), "max_exp": max_exp, "max_se": max(options["se"]),
                  "pool": "pool" in options["skip"]}
        stages, in_max = [], space.stem_chs
        for i in range(len(space.stages)):
            out_max = max(blocks[i].out_chs for blocks in widths)
            depth = max(blocks[i].repeats for blocks in depths)
            stride = space.strides[i + 1]
            stages.append([dict(common, max_in=in_max if j == 0 else out_max, max_out=out_max,
                                stride=stride if j == 0 else 1, pool_proj=j == 0) for j in range(depth)])
            in_max = out_max
        return space.stem_chs, space.strides[0], stages, space.head_chs

    def _candidates(self):
        from mnas.space.mnasnet import OPS as MNAS_OPS
        options = self.space.options
        return [(MNAS_OPS[o][0], int(k), MNAS_OPS[o][1], float(se))
                for o in options["op"] for k in options["kernel"] for se in options["se"]]

    def _plan(self, arch: Arch) -> list[list[BlockSpec | None]]:
        if len(arch.blocks) != len(self.stages):
            raise ValueError(f"'{arch}' does not fit the supernet: {len(arch.blocks)} blocks, the space has {len(self.stages)}")
        plan = []
        for i, (b, stage) in enumerate(zip(arch.blocks, self.stages, strict=True)):
            if b.repeats > len(stage):
                raise ValueError(f"'{arch}' does not fit the supernet: block {i + 1} has {b.repeats} layers, at most"
                                 f" {len(stage)} here")
            specs: list[BlockSpec | None] = [
                BlockSpec(b.op, 1, b.kernel_size, b.stride if j == 0 else 1, b.exp_ratio,
                          b.in_chs if j == 0 else b.out_chs, b.out_chs, b.se_ratio, b.skip) for j in range(b.repeats)]
            plan.append(specs + [None] * (len(stage) - b.repeats))
        return plan


_BUILDERS = ("MnasNetSpace", "LayerwiseSpace")  # the space classes `from_config` rebuilds


def build_supernet(space: SearchSpace, in_chans: int = 3, sharing: str = "shared") -> Supernet:
    """The supernet of `space` (an `MnasNetSpace` or a `LayerwiseSpace`, any settings and options);
    `sharing` is "shared" (one superkernel per op family) or "separate" (weights per candidate)."""
    if isinstance(space, MnasNetSpace):
        return MnasNetSupernet(space, in_chans, sharing)
    from mnas.space import LayerwiseSpace
    if isinstance(space, LayerwiseSpace):
        from mnas.oneshot.layerwise_supernet import LayerwiseSupernet
        return LayerwiseSupernet(space, in_chans, sharing)
    raise ValueError(f"no supernet for a {type(space).__name__}: expected an MnasNetSpace or a LayerwiseSpace")
