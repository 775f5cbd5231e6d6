"""Latency-aware gradient search on a weight-sharing supernet (FBNet, Wu et al. 2019; ProxylessNAS,
Cai et al. 2019), with a target-seeking latency term and a measured closed loop.

`search_fbnet(net, data, target_ms, table, measure=OnnxRuntime(threads=1))`:

- one logit vector per decision of the space (`space.decisions`: per block op, kernel, SE, skip,
  filters, layers in the MnasNet space; per layer the op in the layer-wise space);
- each step alternates a *logit step* on a validation batch and a *weight step* on a training
  batch (FBNet's split: `val_share` of the training images move the logits, the rest the weights);
- logit step: a Gumbel-max sample of every decision, run through the supernet (`set_active_tokens`,
  one path: the cost of one sub-network), its output multiplied by the product of the
  straight-through hard weights (value 1, gradient of the tempered Gumbel-softmax at the chosen
  index: GDAS's estimator); loss = cross-entropy + ``latency_weight * |E[LAT] / T - 1|`` (TuNAS's
  absolute term) + ``entropy_weight * sum of the decisions' entropies``, E[LAT] the exact
  softmax-expected table latency (`mnas.oneshot.fbnet_latency`);
- weight step: a Gumbel-max sample (uniform during `warmup_epochs`) trained on the labels;
- temperature exponential from `tau_max` to `tau_min` over the first round's search epochs.

Closing the loop. The arg-max architecture's latency differs from the expectation, and the table
from the device. After a round the arg-max architecture is derived and measured (`measure`); if
``|measured / target - 1| > tolerance`` the table target is rescaled by ``target / measured`` and
the search continues for `round_epochs` more epochs, at most `max_rounds` rounds in all.

Each epoch ends with an atomic checkpoint ``out/fbnet.pt``; `resume=True` continues exactly (data
order, augmentation, Gumbel noise and dropout are reseeded from (seed, epoch)). A measurement is
stored in the checkpoint, so a resumed run does not measure again.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnas._util import check_keys
from mnas.latency.base import LatencyBackend
from mnas.latency.lut import LookupTable
from mnas.oneshot.fbnet_latency import ExpectedLatency, expected_latency_model
from mnas.space import Arch, SearchSpace, as_arch
from mnas.train.augment import BatchTransform
from mnas.train.checkpoint import atomic_save, load_file
from mnas.train.datasets import Dataset
from mnas.train.loop import CPU_CHANNELS_LAST, epoch_seed, threads

__all__ = ["FBNetConfig", "FBNetResult", "derive_arch", "search_fbnet"]

_VERSION = 1


@dataclass(frozen=True)
class FBNetConfig:
    """A search recipe; the default is CPU-sized (a few minutes on one core at 32x32, width 0.25)."""

    epochs: int = 4  # search epochs of the first round (after the warm-up)
    round_epochs: int = 2  # epochs of each correction round
    max_rounds: int = 4  # derive + measure at most this many times (1 = no correction)
    tolerance: float = 0.05  # accepted |measured / target - 1|
    warmup_epochs: int = 0  # weight-only epochs with uniform sampling first (> 0 for a fresh supernet)
    steps_per_epoch: int | None = None  # cap on the steps of an epoch; None = one pass over the weight split
    batch_size: int = 64
    train_images: int | None = 4000  # cap on the training split (seeded subset) before the split; None = all
    val_share: float = 0.2  # share of those images for the logit steps (FBNet: 20%)
    w_lr: float = 0.01
    w_momentum: float = 0.9
    w_weight_decay: float = 4e-5
    grad_clip: float = 5.0
    a_lr: float = 0.05
    a_weight_decay: float = 0.0
    tau_max: float = 5.0
    tau_min: float = 0.5
    latency_weight: float = 2.0  # beta of beta * |E[LAT] / T - 1|
    entropy_weight: float = 0.2  # weight of each decision's entropy (summed), ramped from 0 over each round
    restart_entropy: float = 0.5  # a correction round first softens the logits to this mean entropy (0: off)
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "round_epochs", "max_rounds", "batch_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"FBNetConfig.{name}={v!r}: expected a positive integer")
        for name, low, optional in (("warmup_epochs", 0, False), ("steps_per_epoch", 1, True), ("train_images", 4, True),
                                    ("threads", 1, True)):
            v = getattr(self, name)
            if (v is None and not optional) or v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
                raise ValueError(f"FBNetConfig.{name}={v!r}: expected an integer >= {low}{' or None' if optional else ''}")
        for name in ("tolerance", "w_lr", "a_lr", "latency_weight", "entropy_weight", "grad_clip", "w_momentum", "w_weight_decay",
                     "a_weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"FBNetConfig.{name}={v!r}: expected a finite number >= 0")
        if not 0 <= self.restart_entropy:
            raise ValueError(f"FBNetConfig.restart_entropy={self.restart_entropy!r}: expected a mean entropy >= 0 (nats)")
        if not 0 < self.val_share < 1:
            raise ValueError(f"FBNetConfig.val_share={self.val_share!r}: expected a share in (0, 1)")
        if not 0 < self.tau_min <= self.tau_max:
            raise ValueError(f"FBNetConfig tau_min={self.tau_min}, tau_max={self.tau_max}: expected 0 < tau_min <= tau_max")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FBNetConfig:
        """The config of `data` (as `to_dict` writes it); ValueError names an unknown field."""
        known = {f.name for f in fields(cls)}
        check_keys(data, known, lambda key: f"unknown FBNetConfig field {key!r}: expected some of {', '.join(sorted(known))}")
        return cls(**data)


@dataclass
class FBNetResult:
    """The derived architecture, its latencies, and the search's records (see /docs/design/fbnet.md)."""

    arch: Arch
    history: list[dict[str, Any]] = field(default_factory=list)
    alphas: dict[str, list[float]] = field(default_factory=dict)
    measured_ms: float = math.nan
    predicted_ms: float = math.nan
    expected_ms: float = math.nan
    target_ms: float = math.nan
    table_target_ms: float = math.nan
    rounds: int = 0
    within_tolerance: bool = False
    seconds: float = 0.0
    rounds_log: list[dict[str, Any]] = field(default_factory=list)


def derive_arch(space: SearchSpace, logits: list[torch.Tensor]) -> Arch:
    """The arg-max architecture of the logits (one vector per decision of `space`)."""
    return space.decode(_argmax(logits))


def _argmax(logits: list[torch.Tensor]) -> list[int]:
    return [int(a.detach().argmax()) for a in logits]


def _entropy(logits: list[torch.Tensor]) -> float:
    return float(np.mean([float(-(F.softmax(a.detach(), -1) * F.log_softmax(a.detach(), -1)).sum()) for a in logits]))


def _as_supernet(obj: Any) -> nn.Module:
    from mnas.oneshot.supernet import Supernet, build_supernet

    if isinstance(obj, Supernet):
        return obj
    if isinstance(obj, SearchSpace):
        return build_supernet(obj)
    if isinstance(obj, (str, Path)):
        from mnas.oneshot.train import load_supernet

        return load_supernet(obj)[0]
    raise ValueError(f"search_fbnet needs a Supernet, a supernet checkpoint path or a block space, got {type(obj).__name__}")


def _measure_fn(measure: Any, net: nn.Module) -> Callable[[Arch], float] | None:
    if measure is None:
        return None
    if isinstance(measure, LatencyBackend):
        space = net.space
        return lambda arch: float(measure.measure(arch, space.input_size, space.num_classes, 1, net.in_chans).median_ms)
    if callable(measure):
        return lambda arch: float(measure(arch))
    raise ValueError(f"measure={measure!r}: expected a LatencyBackend, a callable arch -> ms, or None")


def _table_id(table: LookupTable) -> str:
    blob = json.dumps([sorted(table.entries.items()), table.scale, table.overhead_ms], separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _split(data: Dataset, config: FBNetConfig) -> tuple[np.ndarray, ...]:
    order = np.random.default_rng(config.seed).permutation(len(data.y_train))
    if config.train_images is not None:
        order = order[:config.train_images]
    n_val = int(round(len(order) * config.val_share))
    if n_val < 1 or len(order) - n_val < 1:
        raise ValueError(f"{data.name}: {len(order)} training images cannot be split {1 - config.val_share:.0%} /"
                         f" {config.val_share:.0%} (weights / logits): use more images or another val_share")
    w, a = order[n_val:], order[:n_val]
    return data.x_train[w], data.y_train[w], data.x_train[a], data.y_train[a]


def _gumbel(logits: list[torch.Tensor], gen: torch.Generator) -> list[torch.Tensor]:
    return [-torch.log(-torch.log(torch.rand(len(a), generator=gen).clamp(1e-10, 1.0 - 1e-7))) for a in logits]


class _Search:
    """The state of one search (kept out of `search_fbnet` so that it reads flat)."""

    def __init__(self, net: nn.Module, data: Dataset, target_ms: float, table: LookupTable, config: FBNetConfig,
                 model: ExpectedLatency):
        self.net, self.data, self.target, self.table, self.config, self.model = net, data, target_ms, table, config, model
        self.space = net.space
        self.logits = [torch.zeros(len(d), dtype=torch.float64, requires_grad=True) for d in self.space.decisions]
        self.w_optim = torch.optim.SGD(net.parameters(), lr=config.w_lr, momentum=config.w_momentum,
                                       weight_decay=config.w_weight_decay)
        self.a_optim = torch.optim.Adam(self.logits, lr=config.a_lr, weight_decay=config.a_weight_decay)
        self.epoch, self.round, self.round_end = 0, 1, config.warmup_epochs + config.epochs
        self.table_target, self.done, self.seconds = float(target_ms), False, 0.0
        self.history: list[dict[str, Any]] = []
        self.rounds_log: list[dict[str, Any]] = []
        self.xt, self.yt, self.xv, self.yv = _split(data, config)
        self.transform = BatchTransform(data.mean, data.std, data.augment, size=self.space.input_size,
                                        channels_last=CPU_CHANNELS_LAST)

    def identity(self) -> dict[str, Any]:
        return {"version": _VERSION, "config": self.config.to_dict(), "space": self.space.settings(),
                "target_ms": self.target, "table": _table_id(self.table), "data": [self.data.name, len(self.data.y_train)]}

    def state(self) -> dict[str, Any]:
        return {**self.identity(), "net": self.net.state_dict(), "logits": [a.detach().clone() for a in self.logits],
                "w_optim": self.w_optim.state_dict(), "a_optim": self.a_optim.state_dict(), "epoch": self.epoch,
                "round": self.round, "round_end": self.round_end, "table_target": self.table_target,
                "done": self.done, "seconds": self.seconds, "history": self.history, "rounds_log": self.rounds_log}

    def load(self, state: dict[str, Any], path: Path) -> None:
        mine = self.identity()
        diff = next((k for k in mine if state.get(k) != mine[k]), None)
        if diff is not None:
            raise ValueError(f"{path}: saved by a search with another {diff} ({state.get(diff)!r}, now {mine[diff]!r});"
                             " use a fresh out directory or the same settings")
        self.net.load_state_dict(state["net"])
        with torch.no_grad():
            for a, saved in zip(self.logits, state["logits"], strict=True):
                a.copy_(saved)
        self.w_optim.load_state_dict(state["w_optim"])
        self.a_optim.load_state_dict(state["a_optim"])
        for key in ("epoch", "round", "round_end", "done", "seconds", "history", "rounds_log"):
            setattr(self, key, state[key])
        self.table_target = state["table_target"]

    def tau(self, epoch: int) -> float:
        c = self.config
        k = epoch - c.warmup_epochs
        frac = min(1.0, max(0.0, k / max(1, c.epochs - 1)))
        return c.tau_max * (c.tau_min / c.tau_max) ** frac

    def entropy_weight(self, epoch: int) -> float:
        c = self.config
        if self.round == 1:
            return c.entropy_weight * min(1.0, max(0.0, (epoch - c.warmup_epochs) / max(1, c.epochs - 1)))
        return c.entropy_weight * (epoch - (self.round_end - c.round_epochs) + 1) / c.round_epochs

    def soften(self) -> None:
        """Scale all logits by one factor (the arg-max is kept) to a mean entropy of `restart_entropy`, and
        restart Adam: saturated softmaxes cannot follow a new table target otherwise."""
        want = self.config.restart_entropy
        if want <= 0 or _entropy(self.logits) >= want:
            return
        lo, hi = 0.0, 1.0
        saved = [a.detach().clone() for a in self.logits]
        for _ in range(40):  # the mean entropy falls as the factor grows
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _entropy([mid * a for a in saved]) > want else (lo, mid)
        with torch.no_grad():
            for a, b in zip(self.logits, saved, strict=True):
                a.copy_(lo * b)
        self.a_optim.state.clear()

    def probs(self) -> list[torch.Tensor]:
        return [F.softmax(a, -1) for a in self.logits]

    def run_epoch(self) -> dict[str, Any]:
        c, net, epoch = self.config, self.net, self.epoch
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(epoch_seed(c.seed, epoch))
        torch.manual_seed(epoch_seed(c.seed, epoch) + 1)  # dropout
        warm = epoch < c.warmup_epochs
        tau, ent_w = self.tau(epoch), self.entropy_weight(epoch)
        b = min(c.batch_size, len(self.yt))
        steps = len(self.yt) // b if c.steps_per_epoch is None else min(c.steps_per_epoch, len(self.yt) // b)
        bv = min(c.batch_size, len(self.yv))
        pt, pv = torch.randperm(len(self.yt), generator=gen), torch.randperm(len(self.yv), generator=gen)
        sums = np.zeros(6)  # train loss, correct, n; val loss, correct, n
        net.train()
        for s in range(steps):
            if not warm:  # logit step on a validation batch
                iv = pv[(torch.arange(bv) + s * bv) % len(self.yv)].numpy()
                xv, yv = self.transform(torch.from_numpy(self.xv[iv]), True, gen), torch.from_numpy(self.yv[iv])
                noise = _gumbel(self.logits, gen)
                soft = [F.softmax((a + g) / tau, -1) for a, g in zip(self.logits, noise, strict=True)]
                picks = [int(w.detach().argmax()) for w in soft]
                gate = torch.ones((), dtype=torch.float64)
                for w, i in zip(soft, picks, strict=True):
                    gate = gate * (w[i] - w[i].detach() + 1.0)  # 1 forward, d w_i / d logits backward
                net.set_active_tokens(picks)
                with torch.no_grad():  # the net's weights do not move here: only d loss / d output is needed
                    z = net(xv)
                out = z * gate.float()
                ce = F.cross_entropy(out, yv)
                probs = self.probs()
                expected = self.model(probs)
                loss = ce + c.latency_weight * (expected / self.table_target - 1.0).abs()
                if ent_w:  # sharpen the distributions so that the arg-max's latency approaches the expectation
                    loss = loss - ent_w * torch.stack([(p * torch.log(p.clamp_min(1e-30))).sum() for p in probs]).sum()
                self.a_optim.zero_grad(set_to_none=True)
                loss.backward()
                self.a_optim.step()
                sums[3:] += [float(ce.detach()) * len(yv), int((z.argmax(1) == yv).sum()), len(yv)]
            it = pt[s * b:(s + 1) * b].numpy()  # weight step on a training batch
            xt, yt = self.transform(torch.from_numpy(self.xt[it]), True, gen), torch.from_numpy(self.yt[it])
            noise = _gumbel(self.logits, gen)
            base = [torch.zeros_like(a) for a in self.logits] if warm else [a.detach() for a in self.logits]
            net.set_active_tokens([int((a + g).argmax()) for a, g in zip(base, noise, strict=True)])
            logits = net(xt)
            loss = F.cross_entropy(logits, yt)
            if not math.isfinite(float(loss.detach())):
                raise ValueError(f"the weight loss became {float(loss.detach())} at epoch {epoch + 1}: lower w_lr")
            self.w_optim.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_([p for p in net.parameters() if p.grad is not None], c.grad_clip)
            self.w_optim.step()
            sums[:3] += [float(loss.detach()) * len(yt), int((logits.detach().argmax(1) == yt).sum()), len(yt)]
        self.seconds += time.perf_counter() - t0
        self.epoch += 1
        return self.record(epoch, tau, ent_w, sums)

    def record(self, epoch: int, tau: float, ent_w: float, sums: np.ndarray) -> dict[str, Any]:
        arch = derive_arch(self.space, self.logits)
        with torch.no_grad():
            expected = float(self.model(self.probs()))
        val = (lambda i: float(sums[i] / sums[5])) if sums[5] else (lambda i: None)
        return {"epoch": epoch + 1, "round": self.round, "tau": tau, "lambda": self.config.latency_weight,
                "entropy_weight": ent_w,
                "lr": self.config.w_lr, "train_loss": float(sums[0] / sums[2]), "train_acc": float(sums[1] / sums[2]),
                "val_loss": val(3), "val_acc": val(4), "entropy": _entropy(self.logits),
                "softmax": {d.name: F.softmax(a.detach(), -1).tolist() for d, a in zip(self.space.decisions, self.logits,
                                                                                          strict=True)},
                "arch": str(arch), "expected_ms": expected, "predicted_ms": self.table.predict(arch),
                "target_ms": self.target, "table_target_ms": self.table_target, "measured_ms": None,
                "seconds": self.seconds}

    def close_round(self, record: dict[str, Any], measure: Callable[[Arch], float] | None) -> None:
        """Derive, measure, and either stop or rescale the table target for another round."""
        t0 = time.perf_counter()
        arch = derive_arch(self.space, self.logits)
        predicted = self.table.predict(arch)
        measured = predicted if measure is None else measure(arch)
        error = measured / self.target - 1.0
        self.rounds_log.append({"round": self.round, "table_target_ms": self.table_target, "arch": str(arch),
                                "predicted_ms": predicted, "measured_ms": measured, "error": error})
        record["measured_ms"] = measured
        if abs(error) <= self.config.tolerance or self.round >= self.config.max_rounds:
            self.done = True
        else:
            self.table_target *= self.target / measured
            self.round += 1
            self.round_end = self.epoch + self.config.round_epochs
            self.soften()
        self.seconds += time.perf_counter() - t0
        record["seconds"] = self.seconds

    def result(self) -> FBNetResult:
        last = self.rounds_log[-1]
        with torch.no_grad():
            expected = float(self.model(self.probs()))
        return FBNetResult(as_arch(last["arch"]),
                           self.history, {d.name: a.detach().tolist() for d, a in zip(self.space.decisions, self.logits,
                                                                                     strict=True)},
                           last["measured_ms"], last["predicted_ms"], expected, self.target, self.table_target,
                           len(self.rounds_log), abs(last["error"]) <= self.config.tolerance, self.seconds, self.rounds_log)


def search_fbnet(supernet_or_space: Any, data: Dataset, target_ms: float, latency: LookupTable,
                 config: FBNetConfig | None = None, *, measure: Any = None, out: str | Path | None = None,
                 resume: bool = False, progress: Callable[[dict[str, Any]], None] | None = None) -> FBNetResult:
    """Search for the architecture that meets `target_ms` (see the module docstring).

    `supernet_or_space`: a Supernet (fine-tuned in place), a `mnas supernet train` checkpoint path, or
    an `MnasNetSpace` / `LayerwiseSpace` (a fresh supernet: use `warmup_epochs`). `latency`: the
    target device's lookup table for that space. `measure`: a LatencyBackend or a callable
    arch -> ms that closes the loop (None: the table's prediction stands in). `out`: a directory
    for the checkpoint ``fbnet.pt``. `progress(record)` after every epoch.
    """
    config = config or FBNetConfig()
    if isinstance(target_ms, bool) or not isinstance(target_ms, (int, float)) or not math.isfinite(target_ms) or target_ms <= 0:
        raise ValueError(f"target_ms={target_ms!r}: expected a latency in ms > 0")
    net = _as_supernet(supernet_or_space)
    if data.num_classes != net.num_classes or data.channels != net.in_chans:
        raise ValueError(f"the supernet has {net.num_classes} classes and {net.in_chans} input channels, {data.name}"
                         f" {data.num_classes} and {data.channels}: build the space for this data")
    model = expected_latency_model(net.space, latency, net.in_chans)
    measure_fn = _measure_fn(measure, net)
    ckpt = Path(out) / "fbnet.pt" if out is not None else None
    with threads(config.threads):
        torch.manual_seed(config.seed)
        search = _Search(net, data, float(target_ms), latency, config, model)
        if resume and ckpt is not None and ckpt.is_file():
            search.load(load_file(ckpt), ckpt)
        while not search.done:
            record = search.run_epoch()
            if search.epoch >= search.round_end:
                search.close_round(record, measure_fn)
            search.history.append(record)
            if ckpt is not None:
                atomic_save(search.state(), ckpt)
            if progress is not None:
                progress(record)
        net.set_active(search.result().arch)
        return search.result()
