"""Differentiable cell search: DARTS (Liu et al., ICLR 2019) and GDAS (Dong & Yang, CVPR 2019).

`search_darts(space, data, config, out=...)` relaxes `NB201Space` or `DartsSpace` into a search
network (`mnas.oneshot.mixed`), alternates an architecture step on a validation batch with a
weight step on a training batch, and derives a discrete cell from the alphas:

- NB201: the arg-max op on each edge, without ``none`` (DARTS's rule: the CPU default,
  ``derive_none=False``) or with it (``derive_none=True``, as the NAS-Bench-201 paper derives);
- DARTS: per intermediate node the two inputs with the largest best non-``none`` weight, each with
  that op (the DARTS code's ``genotype()``).

The data: DARTS's split, the training split of `data` halved (seeded), one half training the
weights and the other the alphas; `data`'s own validation and test splits are not read.
`train_images` caps the training split first (a stratified-enough seeded subset for CPU runs).

Architecture step: first order (the gradient of the validation loss at the current weights), or
second order (the unrolled one-step weights w' = w - lr (momentum + grad + wd w), with the
Hessian-vector product by central finite differences, eps = 0.01 / ||dw'||, as in the paper).
GDAS (``strategy="gdas"``) samples one op per edge per forward (Gumbel hard one-hot, straight
through), temperature linear from `tau_max` to `tau_min`, first order. `stop_param_free` is the
optional early stop (the collapse remedy): once the derived cell's share of parameter-free ops
exceeds it, the search stops and returns the last cell below it.

When to stop (issue 22): `epochs` is the most epochs a search runs (the learning-rate and
temperature schedules span it). Every epoch records the alphas' mean entropy next to that of
uniform weights and how many edges of the derived cell changed since the previous epoch; the
search stops once the derived cell has not changed for `stop_unchanged` epochs *and* the mean
entropy is at most `stop_entropy` of the uniform one (a cell that is stable and decided), and
otherwise at `epochs` (`DartsResult.stop_reason`: "stable", "param_free" or "max_epochs"). The
first `warmup_epochs` train the weights only, the alphas frozen (uniform mixture / uniform
sampling), so untrained convolutions do not lose their first comparisons to parameter-free ops.

Remedies against the collapse to parameter-free cells (issue 22; the CPU default has `aux_skip=1.0`,
`skip_dropout` off, `DartsConfig.paper()` neither; both decay
linearly over the epoch cap, the value of epoch e (0-based) being v0 (1 - e / epochs)):

- `aux_skip` (DARTS-, Chu et al., ICLR 2021): every edge whose output has its input's shape gets an
  auxiliary skip connection outside the mixture, beta x added to the edge's output, so the
  skip_connect op no longer owns the residual path the untrained network needs;
- `skip_dropout` (P-DARTS, Chen et al., ICCV 2019): dropout of rate p on the output of every
  identity skip_connect op, in the weight and the architecture steps alike (P-DARTS decays it
  exponentially within a stage; here linearly over the cap).

Each epoch ends with an atomic checkpoint ``out/search.pt``; `resume=True` continues from it
exactly (each epoch reseeds the data order, augmentation and Gumbel noise from (seed, epoch)).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnas.oneshot.mixed import DartsSearchNet, MixedOp, NB201SearchNet
from mnas.space.cells.darts import DartsGenotype
from mnas.space.cells.nb201 import NB201Cell
from mnas.space.cells.spaces import DartsSpace, NB201Space
from mnas.train.augment import BatchTransform
from mnas.train.checkpoint import atomic_save, load_file
from mnas.train.datasets import Dataset
from mnas.train.loop import epoch_seed, threads

__all__ = ["LEGACY_FIELDS", "PARAM_FREE", "DartsConfig", "DartsResult", "arch_gradient", "cell_edges", "derive",
           "param_free_share", "search_darts", "stop_reason"]

PARAM_FREE = frozenset({"none", "skip_connect", "avg_pool_3x3", "max_pool_3x3"})
# The fields added after a config could first be saved, at the values a config without them ran at (off):
# a checkpoint or study stored before they existed is read with these, not with today's defaults.
LEGACY_FIELDS = {"aux_skip": 0.0, "skip_dropout": 0.0, "derive_none": True, "op_affine": True,
                 "w_sampling": "gumbel", "sample_none": True}
_VERSION = 1


@dataclass(frozen=True)
class DartsConfig:
    """A search recipe. The default is CPU-sized; `DartsConfig.paper()` is DARTS's (REFERENCE.md)."""

    strategy: str = "darts"  # "darts" (softmax mixture) or "gdas" (Gumbel hard sampling, first order)
    order: int = 1  # 1 or 2 (DARTS only)
    # The most epochs; the stopping rule below ends a search earlier once its cell is stable and decided
    # (issue 22: at 5 fixed epochs the alphas had barely moved and the derived cell still changed).
    epochs: int = 30
    batch_size: int = 32  # CPU default: twice the paper's steps per image (the alphas need steps, see a_lr)
    train_images: int | None = 2000  # cap on the training split before halving; None = all
    channels: int | None = 8  # search network's initial channels; None = the space's
    nb201_cells: int | None = 1  # cells per stage of the NB201 search net; None = the space's
    darts_layers: int | None = 5  # cells of the DARTS search net; None = the space's
    w_lr: float = 0.025
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # CPU default 3e-2, not the paper's 3e-4: Adam moves a logit by at most about lr per step, and the
    # paper's 50 x 391 steps allow 5.9; 5 x 31 steps allow 4.7 at 3e-2 (0.05 at 3e-4, measured: the
    # alphas stayed uniform, entropy 1.609393 vs ln 5 = 1.609438). Whether they *settle* depends on the
    # number of steps, not on lr (drift N lr s against noise sqrt(N) lr sigma): hence the stopping rule.
    a_lr: float = 3e-2
    a_betas: tuple[float, float] = (0.5, 0.999)
    a_weight_decay: float = 1e-3
    tau_max: float = 10.0
    tau_min: float = 0.1
    stop_param_free: float | None = None
    # The stopping rule: the derived cell unchanged for `stop_unchanged` epochs and the mean entropy at
    # most `stop_entropy` x that of uniform weights (None: run all `epochs`, as the papers do).
    stop_unchanged: int | None = 3
    stop_entropy: float = 0.8
    warmup_epochs: int = 0  # epochs of weight training only (alphas frozen) before the architecture steps
    # Collapse remedies (module docstring), each at its epoch-0 value, decaying linearly to 0 over `epochs`.
    # The CPU default has DARTS-'s auxiliary skip on and derives NB201 without `none` (issue 22: over 10
    # seeds its DARTS cells beat the median random cell by 0.026 +- 0.005; without them by 0.002, darts.md).
    aux_skip: float = 1.0  # DARTS-'s auxiliary skip coefficient beta (DARTS-: 1.0; 0 = off)
    skip_dropout: float = 0.0  # P-DARTS's dropout rate on the skip_connect ops
    # NB201: derive each edge's arg-max with ``none`` among the candidates (the NAS-Bench-201 paper's way) or,
    # False, without it (DARTS's way: `derive`); the stopping rule watches the cell so derived.
    derive_none: bool = False
    # Affine batch norm inside the candidate ops of the search net. DARTS's and GDAS's own search nets
    # have none (affine=False: a learnable per-op scale would duplicate the architecture weight); the CPU
    # default keeps it (True): measured on GDAS, dropping it made the collapse to parameter-free cells
    # faster, not slower (issue 22, darts.md).
    op_affine: bool = True
    # GDAS: which op of an edge the weight step trains: "gumbel" (GDAS: the op sampled from the alphas) or
    # "uniform" (each op equally often, as a single-path supernet trains; the alpha step still samples).
    w_sampling: str = "gumbel"
    # GDAS on NB201: whether a sample may draw ``none`` (GDAS: yes). Without it (False) the search samples
    # only the ops a cell derived without ``none`` (derive_none=False) can hold.
    sample_none: bool = True
    fd_eps: float = 0.01  # second order: finite-difference step over ||dw'|| (the paper's 0.01)
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.strategy not in ("darts", "gdas"):
            raise ValueError(f"strategy={self.strategy!r}: expected 'darts' or 'gdas'")
        if self.order not in (1, 2):
            raise ValueError(f"order={self.order!r}: expected 1 (first order) or 2 (second order)")
        if self.strategy == "gdas" and self.order != 1:
            raise ValueError("GDAS updates the alphas first order: pass order=1 with strategy='gdas'")
        for name in ("epochs", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}={v!r}: expected a positive integer")
        if self.train_images is not None and self.train_images < 4:
            raise ValueError(f"train_images={self.train_images!r}: expected at least 4 (or None for all)")
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"tau_min={self.tau_min}, tau_max={self.tau_max}: expected 0 < tau_min <= tau_max")
        if self.stop_param_free is not None and not 0.0 <= self.stop_param_free < 1.0:
            raise ValueError(f"stop_param_free={self.stop_param_free!r}: expected a share in [0, 1) or None")
        if self.stop_unchanged is not None and (isinstance(self.stop_unchanged, bool)
                                                or not isinstance(self.stop_unchanged, int) or self.stop_unchanged < 1):
            raise ValueError(f"stop_unchanged={self.stop_unchanged!r}: expected a number of epochs >= 1, or None"
                             " to run all epochs")
        if isinstance(self.stop_entropy, bool) or not isinstance(self.stop_entropy, (int, float)) \
                or not 0.0 < self.stop_entropy <= 1.0:
            raise ValueError(f"stop_entropy={self.stop_entropy!r}: expected a share of the uniform entropy in (0, 1]")
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) \
                or not 0 <= self.warmup_epochs < self.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs!r}: expected 0 <= warmup_epochs < epochs"
                             f" ({self.epochs})")
        for name, top, what in (("aux_skip", 1.0, "a coefficient in [0, 1]"),
                                ("skip_dropout", 0.99, "a dropout rate in [0, 0.99]")):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= top:
                raise ValueError(f"{name}={v!r}: expected {what}")
        if self.w_sampling not in ("gumbel", "uniform"):
            raise ValueError(f"w_sampling={self.w_sampling!r}: expected 'gumbel' or 'uniform'")
        if self.w_sampling == "uniform" and self.strategy != "gdas":
            raise ValueError("w_sampling='uniform' samples one op per edge: it goes with strategy='gdas'")
        for name in ("derive_none", "op_affine", "sample_none"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}={getattr(self, name)!r}: expected True or False")
        if not self.sample_none and (self.strategy != "gdas" or self.derive_none):
            raise ValueError("sample_none=False goes with strategy='gdas' and derive_none=False")
        object.__setattr__(self, "a_betas", tuple(self.a_betas))

    @classmethod
    def paper(cls, **overrides: Any) -> DartsConfig:
        """DARTS's CIFAR-10 search: 50 epochs, batch 64, 16 channels, 8 cells (NB201: its 5 per stage), all data."""
        base = cls(epochs=50, batch_size=64, train_images=None, channels=None, nb201_cells=None, darts_layers=None,
                   a_lr=3e-4, stop_unchanged=None, warmup_epochs=0, aux_skip=0.0, skip_dropout=0.0, derive_none=True,
                   op_affine=False)
        return replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["a_betas"] = list(self.a_betas)
        return d


@dataclass
class DartsResult:
    arch: NB201Cell | DartsGenotype
    history: list[dict[str, Any]] = field(default_factory=list)
    alphas: dict[str, list[list[float]]] = field(default_factory=dict)
    stopped_early: bool = False  # the collapse remedy (stop_param_free) ended the search
    seconds: float = 0.0
    stop_reason: str = ""  # "stable" (the stopping rule), "param_free" (stop_param_free) or "max_epochs"
    cpu_seconds: float = 0.0  # CPU time of this process (all its threads) in the search's epochs

    @property
    def converged(self) -> bool:
        """Whether the search stopped on a stable, decided cell (not at its epoch cap)."""
        return self.stop_reason == "stable"


def search_ops(space: NB201Space | DartsSpace) -> tuple[str, ...]:
    """The candidate ops of the relaxation: the space's, plus DARTS's ``none`` (searched, never derived)."""
    if isinstance(space, DartsSpace):
        return space.ops if "none" in space.ops else ("none", *space.ops)
    return space.ops


def build_search_net(space: NB201Space | DartsSpace, config: DartsConfig, in_chans: int = 3) -> nn.Module:
    if isinstance(space, NB201Space):
        net = NB201SearchNet(space.ops, config.channels or space.channels, config.nb201_cells or space.cells_per_stage,
                             space.num_classes, in_chans)
    elif isinstance(space, DartsSpace):
        net = DartsSearchNet(search_ops(space), config.channels or space.channels, config.darts_layers or space.layers,
                             space.steps, space.num_classes, in_chans)
    else:
        raise ValueError(f"differentiable search needs an NB201Space or a DartsSpace, got {type(space).__name__}")
    if not config.op_affine:
        drop_op_affine(net)
    return net


def drop_op_affine(net: nn.Module) -> None:
    """Batch norm without a learnable scale and shift inside every candidate op of `net` (`MixedOp`s), as
    DARTS's and GDAS's search nets build them; the stem, reductions and head keep theirs."""
    for mixed in net.modules():
        if not isinstance(mixed, MixedOp):
            continue
        for bn in mixed.modules():
            if isinstance(bn, nn.modules.batchnorm._BatchNorm) and bn.affine:
                bn.affine = False
                bn.register_parameter("weight", None)
                bn.register_parameter("bias", None)


def derive(space: NB201Space | DartsSpace, alphas: dict[str, torch.Tensor], none: bool = True) -> NB201Cell | DartsGenotype:
    """The discrete cell of `alphas` (logits per edge) in `space`'s macro settings (see the module docstring).

    NB201: `none=False` takes the arg-max over the ops other than ``none`` (as DARTS's own derivation
    does: the zero op's weight only scales a node, so it says little about the op's use); DARTS never
    derives ``none``."""
    if isinstance(space, NB201Space):
        a = alphas["alpha"].detach().clone()
        if not none and "none" in space.ops:
            a[:, space.ops.index("none")] = -math.inf
        return space.decode(a.argmax(-1).tolist())
    ops = search_ops(space)
    cells = []
    for name in ("alpha_normal", "alpha_reduce"):
        w = F.softmax(alphas[name].detach().float(), dim=-1)
        edges, start = [], 0
        for k in range(space.steps):
            rows = w[start:start + k + 2]
            best = []  # (weight, input, op) of each input's best non-none op
            for j, row in enumerate(rows.tolist()):
                o = max((i for i, name_ in enumerate(ops) if name_ != "none"), key=lambda i: row[i])
                best.append((row[o], j, ops[o]))
            top = sorted(best, key=lambda t: -t[0])[:2]
            edges += [(op, j) for _, j, op in sorted(top, key=lambda t: t[1])]
            start += k + 2
        cells.append(tuple(edges))
    concat = tuple(range(2, space.steps + 2))
    arch = DartsGenotype(cells[0], concat, cells[1], concat, space.channels, space.layers, space.auxiliary,
                         space.drop_path)
    space.encode(arch)  # in the space by construction; fail loudly if not
    return arch


def cell_edges(arch: NB201Cell | DartsGenotype) -> list[Any]:
    """The derived cell's edges in a fixed order: NB201's op per edge; DARTS's (op, input) per kept edge,
    normal cell then reduction cell. Two cells are the same iff their edges are."""
    return list(arch.ops) if isinstance(arch, NB201Cell) else [*arch.normal, *arch.reduce]


def stop_reason(record: dict[str, Any], config: DartsConfig, last: bool) -> str:
    """Why the search stops after the epoch of `record` ("" = it goes on): "param_free" (the collapse
    remedy), "stable" (the derived cell unchanged for `stop_unchanged` epochs and the mean entropy at
    most `stop_entropy` of uniform weights'), "max_epochs" (the cap, `last`)."""
    if config.stop_param_free is not None and record["param_free"] > config.stop_param_free:
        return "param_free"
    if (config.stop_unchanged is not None and record["unchanged_epochs"] >= config.stop_unchanged
            and record["entropy"] <= config.stop_entropy * record["entropy_max"]):
        return "stable"
    return "max_epochs" if last else ""


def param_free_share(arch: NB201Cell | DartsGenotype) -> float:
    """Share of the cell's (both cells', for DARTS) edges whose op has no parameters."""
    ops = list(arch.ops) if isinstance(arch, NB201Cell) else [op for op, _ in (*arch.normal, *arch.reduce)]
    return sum(op in PARAM_FREE for op in ops) / len(ops)


def arch_gradient(net: nn.Module, train_batch: tuple[torch.Tensor, torch.Tensor],
                  val_batch: tuple[torch.Tensor, torch.Tensor], w_optim: torch.optim.SGD, second_order: bool,
                  fd_eps: float = 0.01) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
    """d L_val / d alpha (first order), or DARTS's second-order approximation; returns (grads, val loss, logits).

    The finite-difference step is `fd_eps` / ||dw'|| (DARTS: 0.01). The weights end as they began."""
    alphas, weights = net.arch_parameters(), net.weight_parameters()
    xv, yv = val_batch
    if not second_order:
        logits = net(xv)
        loss = F.cross_entropy(logits, yv)
        return list(torch.autograd.grad(loss, alphas)), loss.detach(), logits.detach()
    xt, yt = train_batch
    group = w_optim.param_groups[0]
    eta, mom, wd = group["lr"], group["momentum"], group["weight_decay"]
    g = torch.autograd.grad(F.cross_entropy(net(xt), yt), weights, allow_unused=True)
    backup = [w.detach().clone() for w in weights]
    with torch.no_grad():
        for w, gw in zip(weights, g, strict=True):
            step = (torch.zeros_like(w) if gw is None else gw) + wd * w
            buf = w_optim.state.get(w, {}).get("momentum_buffer")
            if buf is not None:
                step = step + mom * buf
            w.sub_(eta * step)  # w' = w - eta (momentum + grad + wd w)
    logits = net(xv)
    loss = F.cross_entropy(logits, yv)
    grads = torch.autograd.grad(loss, alphas + weights, allow_unused=True)
    ga = list(grads[:len(alphas)])
    dw = [torch.zeros_like(w) if d is None else d for w, d in zip(weights, grads[len(alphas):], strict=True)]
    r = fd_eps / torch.cat([d.flatten() for d in dw]).norm().clamp_min(1e-12)

    def train_alpha_grad(sign: float) -> tuple[torch.Tensor, ...]:
        with torch.no_grad():
            for w, b, d in zip(weights, backup, dw, strict=True):
                w.copy_(b + sign * r * d)
        return torch.autograd.grad(F.cross_entropy(net(xt), yt), alphas)

    plus, minus = train_alpha_grad(1.0), train_alpha_grad(-1.0)
    with torch.no_grad():
        for w, b in zip(weights, backup, strict=True):
            w.copy_(b)
    hvp = [(p - m) / (2 * r) for p, m in zip(plus, minus, strict=True)]
    return [a - eta * h for a, h in zip(ga, hvp, strict=True)], loss.detach(), logits.detach()


def _entropy(alphas: dict[str, torch.Tensor]) -> float:
    ents = [-(F.softmax(a, -1) * F.log_softmax(a, -1)).sum(-1) for a in alphas.values()]
    return float(torch.cat(ents).mean())


def _sampled(alphas: dict[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """The alphas of the ops a search can draw (without the one `net.exclude` names)."""
    ex = getattr(net, "exclude", None)
    if ex is None:
        return alphas
    return {k: torch.cat([v[:, :ex], v[:, ex + 1:]], dim=-1) for k, v in alphas.items()}


def _max_entropy(alphas: dict[str, torch.Tensor]) -> float:
    """The mean entropy of uniform weights over the same rows (ln of the number of ops)."""
    sizes = [a.shape[-1] for a in alphas.values() for _ in range(a.shape[0])]
    return sum(math.log(n) for n in sizes) / len(sizes)


def _stability(arch: NB201Cell | DartsGenotype, history: list[dict[str, Any]], warm: bool) -> tuple[int | None, int]:
    """(edges changed since the previous epoch's derived cell (None: no previous one), epochs the cell has
    not changed). A warm-up epoch (alphas frozen) counts for neither."""
    prev = history[-1] if history else None
    if warm or prev is None or prev.get("warmup"):
        return None, 0
    before = cell_edges(type(arch).parse(prev["arch"]))
    changed = sum(a != b for a, b in zip(before, cell_edges(arch), strict=True))
    return changed, (int(prev.get("unchanged_epochs", 0)) + 1 if changed == 0 else 0)


def remedy_value(v0: float, epoch: int, config: DartsConfig) -> float:
    """A remedy's value at 0-based `epoch`: v0 decaying linearly to 0 over the epoch cap."""
    return float(v0) * (1.0 - epoch / config.epochs)


class _Remedies:
    """DARTS-'s auxiliary skip and P-DARTS's skip dropout, attached to a search net by forward hooks (the
    search net's modules stay the standalone ones); `beta` and `p` are set per epoch."""

    def __init__(self, net: nn.Module, config: DartsConfig):
        self.beta, self.p = 0.0, 0.0
        self.handles = []
        if config.aux_skip > 0:
            for m in net.modules():
                if isinstance(m, MixedOp):
                    self.handles.append(m.register_forward_hook(self._aux))
        if config.skip_dropout > 0:
            skip = net.op_names.index("skip_connect") if "skip_connect" in net.op_names else None
            for m in net.modules():
                if isinstance(m, MixedOp) and skip is not None and isinstance(m.ops[skip], nn.Identity):
                    self.handles.append(m.ops[skip].register_forward_hook(self._drop))

    def _aux(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        x = inputs[0]
        if self.beta == 0.0 or x.shape != output.shape:  # a stride-2 edge of a DARTS reduction cell: no identity
            return None
        return output + self.beta * x

    def _drop(self, module: nn.Module, inputs: tuple[Any, ...], output: torch.Tensor) -> torch.Tensor | None:
        if self.p == 0.0:
            return None
        return F.dropout(output, self.p, training=True)

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _split(data: Dataset, config: DartsConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = data.x_train, data.y_train
    order = np.random.default_rng(config.seed).permutation(len(y))
    if config.train_images is not None:
        order = order[:config.train_images]
    half = len(order) // 2
    if half < 1:
        raise ValueError(f"{data.name} has {len(y)} training images: DARTS needs at least 2 (half train, half validation)")
    return x[order[:half]], y[order[:half]], x[order[half:2 * half]], y[order[half:2 * half]]


def search_darts(space: NB201Space | DartsSpace, data: Dataset, config: DartsConfig | None = None, *,
                 out: str | Path | None = None, resume: bool = False, progress: Any = None) -> DartsResult:
    """Run the search (see the module docstring); `progress(record)` is called after each epoch."""
    config = config or DartsConfig()
    if data.num_classes != space.num_classes:
        raise ValueError(f"the space has {space.num_classes} classes, {data.name} has {data.num_classes}:"
                         f" build the space with num_classes={data.num_classes}")
    ckpt = Path(out) / "search.pt" if out is not None else None
    with threads(config.threads):
        torch.manual_seed(config.seed)
        net = build_search_net(space, config, data.channels)
        if isinstance(net, DartsSearchNet) and min(data.image_shape[:2]) % 4:
            raise ValueError(f"DARTS's search net halves the input twice: {data.image_shape[:2]} is not divisible by 4")
        w_optim = torch.optim.SGD(net.weight_parameters(), lr=config.w_lr, momentum=config.w_momentum,
                                  weight_decay=config.w_weight_decay)
        a_optim = torch.optim.Adam(net.arch_parameters(), lr=config.a_lr, betas=config.a_betas,
                                   weight_decay=config.a_weight_decay)
        net.mode = "gumbel" if config.strategy == "gdas" else "softmax"
        if not config.sample_none:
            if not isinstance(net, NB201SearchNet) or "none" not in net.op_names:
                raise ValueError("sample_none=False is for NB201 spaces with the 'none' op")
            net.exclude = net.op_names.index("none")
        remedies = _Remedies(net, config)
        history: list[dict[str, Any]] = []
        start, best, reason, seconds, cpu = 0, None, "", 0.0, 0.0
        if resume and ckpt is not None and ckpt.is_file():
            state = load_file(ckpt)
            # a field the saving version did not have ran at its legacy value (off: the old behaviour)
            saved = {**DartsConfig().to_dict(), **LEGACY_FIELDS, **state.get("config", {})}
            if state.get("space") != space.settings():
                raise ValueError(f"{ckpt}: saved by a search of another space; use a fresh out directory")
            now = config.to_dict()
            differ = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k))
            if differ:  # name them: the saved values resume it (e.g. an older paper() checkpoint: op_affine=True)
                shown = ", ".join(f"{k}={saved.get(k)!r}" for k in differ)
                raise ValueError(f"{ckpt}: saved by a search with {shown}; resume with those values, or use a fresh"
                                 " out directory")
            net.load_state_dict(state["net"])
            w_optim.load_state_dict(state["w_optim"])
            a_optim.load_state_dict(state["a_optim"])
            history, start, seconds = state["history"], state["epoch"], state["seconds"]
            best, reason, cpu = state["best"], state.get("stop_reason", ""), state.get("cpu_seconds", 0.0)
        xt, yt, xv, yv = _split(data, config)
        transform = BatchTransform(data.mean, data.std, data.augment)
        b = min(config.batch_size, len(yt))
        steps = len(yt) // b
        for epoch in range(start, config.epochs):
            if reason:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            warm = epoch < config.warmup_epochs  # weights only: the alphas keep their initial (near uniform) values
            gen = torch.Generator().manual_seed(epoch_seed(config.seed, epoch))
            torch.manual_seed(epoch_seed(config.seed, epoch) + 1)
            lr = config.w_lr_min + 0.5 * (config.w_lr - config.w_lr_min) * (1 + math.cos(math.pi * epoch / config.epochs))
            for group in w_optim.param_groups:
                group["lr"] = lr
            frac = epoch / max(1, config.epochs - 1)
            net.tau = config.tau_max - (config.tau_max - config.tau_min) * frac
            remedies.beta = remedy_value(config.aux_skip, epoch, config)
            remedies.p = remedy_value(config.skip_dropout, epoch, config)
            pt = torch.randperm(len(yt), generator=gen)
            pv = torch.randperm(len(yv), generator=gen)
            sums = np.zeros(6)  # train loss, correct, n; val loss, correct, n
            net.train()
            for s in range(steps):
                it, iv = pt[s * b:(s + 1) * b].numpy(), pv[s * b:(s + 1) * b].numpy()
                bt = (transform(torch.from_numpy(xt[it]), True, gen), torch.from_numpy(yt[it]))
                bv = (transform(torch.from_numpy(xv[iv]), True, gen), torch.from_numpy(yv[iv]))
                if warm:
                    vloss, vlogits = torch.tensor(math.nan), None
                else:
                    a_optim.zero_grad(set_to_none=True)
                    grads, vloss, vlogits = arch_gradient(net, bt, bv, w_optim, config.order == 2, config.fd_eps)
                    for a, g in zip(net.arch_parameters(), grads, strict=True):
                        a.grad = g
                    a_optim.step()
                w_optim.zero_grad(set_to_none=True)
                if config.w_sampling == "uniform":
                    net.mode = "uniform"
                logits = net(bt[0])
                net.mode = "gumbel" if config.strategy == "gdas" else "softmax"
                loss = F.cross_entropy(logits, bt[1])
                loss.backward()
                for a in net.arch_parameters():
                    a.grad = None
                nn.utils.clip_grad_norm_(net.weight_parameters(), config.grad_clip)
                w_optim.step()
                n = len(it)
                val_correct = math.nan if vlogits is None else int((vlogits.argmax(1) == bv[1]).sum())
                sums += [float(loss.detach()) * n, int((logits.argmax(1) == bt[1]).sum()), n,
                         float(vloss) * n, val_correct, n]
            alphas = {k: v.detach() for k, v in net.alphas().items()}
            arch = derive(space, alphas, config.derive_none)
            share = param_free_share(arch)
            changed, unchanged = _stability(arch, history, warm)
            seconds += time.perf_counter() - t0
            cpu += time.process_time() - c0
            record = {"epoch": epoch + 1, "train_loss": float(sums[0] / sums[2]), "train_acc": float(sums[1] / sums[2]),
                      "val_loss": None if warm else float(sums[3] / sums[5]),
                      "val_acc": None if warm else float(sums[4] / sums[5]), "lr": float(lr),
                      "tau": float(net.tau), "aux_skip": remedies.beta, "skip_dropout": remedies.p,
                      "softmax": {k: F.softmax(v, -1).tolist() for k, v in alphas.items()},
                      "entropy": _entropy(_sampled(alphas, net)), "entropy_max": _max_entropy(_sampled(alphas, net)),
                      "arch": str(arch),
                      "changed": changed, "unchanged_epochs": unchanged, "param_free": share,
                      "seconds": seconds, "cpu_seconds": cpu, **({"warmup": True} if warm else {})}
            history.append(record)
            if not warm:  # (warmup_epochs < epochs: the last epoch is never a warm-up one)
                reason = stop_reason(record, config, epoch + 1 == config.epochs)
                if reason != "param_free":
                    best = str(arch)  # param_free keeps `best`: the last cell below the threshold (None if none was)
            if ckpt is not None:
                atomic_save({"version": _VERSION, "config": config.to_dict(), "space": space.settings(),
                             "epoch": epoch + 1, "net": net.state_dict(), "w_optim": w_optim.state_dict(),
                             "a_optim": a_optim.state_dict(), "history": history, "seconds": seconds,
                             "cpu_seconds": cpu, "best": best, "stop_reason": reason}, ckpt)
            if progress is not None:
                progress(record)
        remedies.remove()
    final = derive(space, net.alphas(), config.derive_none)
    if best is not None:
        final = type(final).parse(best)
    return DartsResult(final, history, {k: v.detach().tolist() for k, v in net.alphas().items()},
                       reason == "param_free", seconds, reason or "max_epochs", cpu)
