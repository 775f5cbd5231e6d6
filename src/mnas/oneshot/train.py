"""Supernet training: warm-up on the largest sub-network, then the sandwich rule with in-place
distillation (Yu et al. 2020, BigNAS; REFERENCE.md).

Every step after the warm-up trains, on the same batch, the largest sub-network on the labels, then
the smallest and `num_random` sampled ones on the largest's softened, detached output; gradients of
all of them are summed before one optimiser step. With ``sandwich=False`` a step trains only the
sampled sub-networks, on the labels (single-path one-shot). The data pipeline, optimiser, schedule,
channels_last and mixed precision are those of the proxy trainer (`mnas.train.loop.Loop`).

Reproducibility: data order and augmentation are reseeded per epoch (as in `mnas.train`), and the
sub-networks of step `s` are drawn from a generator seeded by (seed, s). So a run resumed from an
epoch checkpoint continues exactly, and every rank of a distributed run trains the same
sub-networks on its share of the same global batch (augmented whole, then sliced, so that the
images do not depend on the number of processes).

Distributed: under `torchrun` (or any initialised default process group) the net is wrapped in
`DistributedDataParallel(find_unused_parameters=True)` — each sub-network leaves parts of the
supernet unused — and every rank takes its slice of each global batch; rank 0 writes the
checkpoints. Each sub-network's backward all-reduces its gradients; the accumulated sum equals the
one-process sum because what was reduced before is already identical on every rank.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mnas._util import check_keys, seed_everything
from mnas.oneshot.sampling import FairSampler, StratifiedSampler, UniformSampler
from mnas.train.checkpoint import atomic_save, get_rng_state, load_file, set_rng_state
from mnas.train.config import TrainConfig, recipe
from mnas.train.datasets import Dataset
from mnas.train.full import Progress, Stopped, data_identity
from mnas.train.loop import Loop, NonFiniteLoss, Timer, threads

__all__ = ["CHECKPOINT_FORMAT", "SupernetTrainConfig", "Stopped", "load_supernet", "train_supernet"]

CHECKPOINT_FORMAT = "mnas.supernet/1"
SAMPLERS = ("uniform", "stratified", "fair")
# Settings that may change between a run and its resumption without changing the result.
_RESUME_FREE = {"threads", "eval_batch_size", "device"}


def _default_train() -> TrainConfig:
    # BigNAS trains supernets with the standalone recipe; here the CPU "fast" recipe (SGD, cosine).
    return recipe("fast", epochs=10, batch_size=128)


@dataclass(frozen=True)
class SupernetTrainConfig:
    """How to train a supernet. `train` holds the optimiser, schedule, batch, epochs, device and
    threads (a `mnas.train.TrainConfig`); the rest is the one-shot part.

    `warmup_epochs`: epochs of the largest sub-network alone before the sandwich rule starts.
    `num_random`: sampled sub-networks per step besides the largest and the smallest.
    `sandwich`: False trains only the `num_random` sampled sub-networks each step, all on the labels
    (single-path one-shot, Guo et al. 2020): no step is spent on the two extremes, so every op family
    and width is trained as often as the sampler draws it (the sandwich rule's largest and smallest
    are fixed networks, half the sub-networks of a default step).
    `distill`: the smaller sub-networks learn the largest's output (soft targets at `temperature`)
    instead of the labels (with the sandwich rule only: without it there is no teacher).
    `sampler`: "uniform" over tokens, "stratified" in `bands` bands of predicted latency, or "fair"
    (FairNAS's strict fairness: a step's `num_random` sub-networks draw every choice of every decision
    equally often; only with ``sandwich=False``, whose extremes would undo it; see sampling.py).
    `micro_batches`: split each batch to save memory (the gradients are accumulated; with batch norm,
    the statistics are per micro-batch).
    `eval_images`: BN recalibration images for the per-epoch check of the largest and smallest
    sub-networks (0 skips the check). `reduction`: "mean" divides each sub-network's loss by the
    number trained per step, so the recipe's learning rate keeps its meaning; "sum" is BigNAS's
    accumulation, whose step is that many times larger (at lr 0.1, batch 128, it diverged on digits
    where "mean" trained: train loss 2.56 -> 13.2 after the warm-up epoch, against 2.07 -> 1.36).
    """

    train: TrainConfig = field(default_factory=_default_train)
    warmup_epochs: float = 1.0
    num_random: int = 2
    sandwich: bool = True
    distill: bool = True
    temperature: float = 1.0
    sampler: str = "uniform"
    bands: int = 5
    tries: int = 30
    micro_batches: int = 1
    eval_images: int = 500
    reduction: str = "mean"

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise ValueError(f"train={self.train!r}: expected a mnas.train.TrainConfig")
        if self.train.epochs != int(self.train.epochs) or self.train.steps is not None:
            raise ValueError(f"supernet training runs whole epochs: epochs={self.train.epochs!r}, steps={self.train.steps!r}")
        if not 0 <= self.warmup_epochs <= self.train.epochs:
            raise ValueError(f"warmup_epochs={self.warmup_epochs!r}: expected a number in [0, epochs={self.train.epochs:g}]")
        for name in ("num_random", "eval_images"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected an integer >= 0")
        for name in ("bands", "tries", "micro_batches"):
            if isinstance(getattr(self, name), bool) or not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: expected a positive integer")
        if not self.sandwich and self.num_random < 1:
            raise ValueError("sandwich=False trains only the sampled sub-networks: num_random must be at least 1")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"sampler={self.sampler!r}: expected {' or '.join(SAMPLERS)}")
        if self.sampler == "fair" and self.sandwich:
            raise ValueError("sampler='fair' balances the ops only without the sandwich rule (it adds the largest and"
                             " the smallest sub-network every step): pass sandwich=False (--no-sandwich) and num_random"
                             " = the number of op choices")
        if self.reduction not in ("mean", "sum"):
            raise ValueError(f"reduction={self.reduction!r}: expected mean or sum")
        if not self.temperature > 0:
            raise ValueError(f"temperature={self.temperature!r}: expected a positive number")

    @property
    def epochs(self) -> int:
        return int(self.train.epochs)

    def replace(self, **changes: Any) -> SupernetTrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["train"] = self.train.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SupernetTrainConfig:
        known = {f.name for f in fields(cls)}
        check_keys(data, known,
                   lambda key: f"unknown supernet training setting {key!r}: expected one of {', '.join(sorted(known))}")
        data = dict(data)
        if isinstance(data.get("train"), dict):
            data["train"] = TrainConfig.from_dict(data["train"])
        return cls(**data)


def _dist() -> tuple[int, int]:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def soft_cross_entropy(logits: torch.Tensor, soft: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of -sum(soft * log_softmax(logits / T)), times T^2 (Hinton et al.'s scale)."""
    logp = F.log_softmax(logits.float() / temperature, dim=1)
    return -(soft * logp).sum(1).mean() * temperature ** 2


class _Trainer:
    """The state of one supernet training run (kept out of `train_supernet` so that it reads flat)."""

    def __init__(self, net: nn.Module, data: Dataset, config: SupernetTrainConfig, latency: Any = None):
        self.net, self.data, self.config = net, data, config
        self.rank, self.world = _dist()
        tc = config.train
        if tc.batch_size % (self.world * config.micro_batches):
            raise ValueError(f"batch_size={tc.batch_size} must divide into {self.world} processes x"
                             f" {config.micro_batches} micro-batches")
        n = len(data.y_train)
        steps_per_epoch = n // min(tc.batch_size, n)
        self.loop = Loop(net, data, tc, total_steps=config.epochs * steps_per_epoch)
        self.model: nn.Module = self.loop.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.loop.device.index or 0] if self.loop.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.loop.model, device_ids=ids, find_unused_parameters=True)
        self.largest, self.smallest = net.largest_arch(), net.smallest_arch()
        if config.sampler == "stratified":
            self.sampler: Any = StratifiedSampler.for_space(net.space, self.smallest, self.largest, latency,
                                                            data.channels, config.bands, config.tries)
        elif config.sampler == "fair":
            self.sampler = FairSampler(net.space)
        else:
            self.sampler = UniformSampler(net.space)
        self.warmup_steps = int(round(config.warmup_epochs * self.loop.steps_per_epoch))
        self.criterion = self.loop.criterion

    def archs_for(self, step: int) -> list[Any]:
        """The sub-networks of optimiser step `step` (0-based): a pure function of (seed, step)."""
        if step < self.warmup_steps:
            return [self.largest]
        rng = np.random.default_rng([self.config.train.seed, step, 0x5a4d])
        if isinstance(self.sampler, FairSampler):
            sampled = self.sampler.sample_group(rng, self.config.num_random)
        else:
            sampled = [self.sampler.sample(rng) for _ in range(self.config.num_random)]
        return [self.largest, self.smallest] + sampled if self.config.sandwich else sampled

    def step(self, idx: torch.Tensor) -> tuple[float, int, int]:
        """One step on the global batch `idx`: (the first sub-network's loss, its correct count, images
        here); the first is the largest in a sandwich step, the first sampled one without the sandwich."""
        loop, cfg = self.loop, self.config
        idx = idx.to(loop.x_train.device)
        x = loop.transform(loop.x_train[idx], train=True, generator=loop.generator)  # (B, C, S, S), whole batch
        y = loop.y_train[idx].to(loop.device, non_blocking=True)
        share = len(idx) // self.world
        x, y = x[self.rank * share:(self.rank + 1) * share], y[self.rank * share:(self.rank + 1) * share]
        archs = self.archs_for(loop.step)
        loop.schedule.apply(loop.optimizer)
        loop.optimizer.zero_grad(set_to_none=True)
        chunk = share // cfg.micro_batches
        scale = cfg.micro_batches * (len(archs) if cfg.reduction == "mean" else 1)
        first_loss, correct = 0.0, 0
        distill = cfg.distill and cfg.sandwich  # the teacher is the largest, trained first in a sandwich step
        for m in range(cfg.micro_batches):
            xm, ym = x[m * chunk:(m + 1) * chunk], y[m * chunk:(m + 1) * chunk]
            soft = None
            for j, arch in enumerate(archs):
                self.net.set_active(arch)
                with loop.autocast():
                    logits = self.model(xm)
                    if j == 0 or not distill:
                        loss = self.criterion(logits, ym)
                    else:
                        loss = soft_cross_entropy(logits, soft, cfg.temperature)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise NonFiniteLoss(f"loss became {value} at step {loop.step + 1} (sub-network {j})")
                if j == 0:
                    first_loss += value / cfg.micro_batches
                    correct += int((logits.detach().argmax(1) == ym).sum())
                    if distill:
                        soft = F.softmax(logits.detach().float() / cfg.temperature, dim=1)
                loop.scaler.scale(loss / scale).backward()
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
        loop.step += 1
        self.net.set_active(self.largest)
        return first_loss, correct, len(y)

    def state(self, epoch: int, history: list, seconds: float) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "config": self.net.config(), "state_dict": self.net.state_dict(),
            "train_config": self.config.to_dict(), "data": data_identity(self.data), "epoch": epoch,
            "step": self.loop.step, "optimizer": self.loop.optimizer.state_dict(),
            "schedule": self.loop.schedule.state_dict(), "scaler": self.loop.scaler.state_dict(),
            "rng": get_rng_state(), "history": history, "seconds": seconds, "world_size": self.world,
        }


def train_supernet(net: nn.Module, data: Dataset, config: SupernetTrainConfig | None = None,
                   out: str | Path | None = None, *, resume: bool = False, stop_after: int | None = None,
                   latency: Any = None, progress: Progress | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train `net` (a `mnas.oneshot.Supernet`) on `data`; checkpoint to `out` after every epoch.

    With `resume`, continue from `out` (same settings; on CPU the weights end up identical to an
    uninterrupted run). `stop_after` ends this call after that many epochs with a resumable
    checkpoint and returns ``{"stopped": True, ...}``. `latency` is the stratified sampler's
    predictor (a LookupTable, a latency backend or a callable; default: MACs). Returns the
    history and timing; `net` holds the trained weights.
    """
    config = config or SupernetTrainConfig()
    progress, log = progress or Progress(), log or (lambda _: None)
    out = Path(out) if out is not None else None
    if out is not None and out.suffix == "":
        out = out / "supernet.pt"
    if out is not None and out.exists() and not resume:
        raise ValueError(f"{out} already exists: resume it (--resume) or choose another output file")
    if resume and (out is None or not out.exists()):
        raise FileNotFoundError(f"nothing to resume: {out} does not exist")
    if not len(data.y_train):
        raise ValueError(f"{data.name}: the training split is empty")
    tc = config.train
    with threads(tc.threads), torch.random.fork_rng(devices=[]):
        seed_everything(tc.seed)
        trainer = _Trainer(net, data, config, latency)
        loop = trainer.loop
        start, history, seconds = 0, [], 0.0
        if resume:
            state = load_file(out)
            _check_resumable(state, net, data, config, out)
            net.load_state_dict(state["state_dict"])
            loop.optimizer.load_state_dict(state["optimizer"])
            loop.schedule.load_state_dict(state["schedule"])
            loop.scaler.load_state_dict(state["scaler"])
            loop.step, start, history, seconds = state["step"], state["epoch"], state["history"], state["seconds"]
            set_rng_state(state["rng"])
            log(f"resumed {out} after epoch {start} of {config.epochs}")
        for epoch in range(start, config.epochs):
            timer, images, correct, loss_sum = Timer(), 0, 0, 0.0
            batches = loop.epoch_batches(epoch)
            progress.start_epoch(epoch, config.epochs, len(batches))
            for i, idx in enumerate(batches, 1):
                loss, ok, n = trainer.step(idx)
                loss_sum, correct, images = loss_sum + loss, correct + ok, images + n * trainer.world
                progress.step(loss_sum / i, correct * trainer.world / images, images / max(timer(), 1e-9))
            train_seconds = timer()
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum / len(batches),
                       "train_accuracy": correct * trainer.world / images, "images_per_second": images / train_seconds,
                       "subnets_per_step": len(trainer.archs_for(loop.step - 1)),
                       "lr": loop.schedule.lr_at(loop.step - 1), "train_seconds": train_seconds}
            if config.eval_images and len(data.y_val) and trainer.rank == 0:
                from mnas.oneshot.evaluate import evaluate_subnet

                for name, arch in (("largest", trainer.largest), ("smallest", trainer.smallest)):
                    r = evaluate_subnet(net, arch, data, num_images=config.eval_images, threads=None,
                                        device=str(loop.device))
                    metrics[f"val_accuracy_{name}"] = r.accuracy
                metrics["val_accuracy"] = metrics["val_accuracy_largest"]
            seconds += timer()
            metrics["seconds"] = seconds
            remaining = config.epochs - epoch - 1
            metrics["eta_seconds"] = seconds / (epoch + 1 - start) * remaining if epoch + 1 > start else 0.0
            history.append(metrics)
            if out is not None and trainer.rank == 0:
                atomic_save(trainer.state(epoch + 1, history, seconds), out)
            progress.end_epoch(metrics)
            if stop_after is not None and epoch + 1 - start >= stop_after and epoch + 1 < config.epochs:
                return {"stopped": True, "epoch": epoch + 1, "epochs": config.epochs,
                        "checkpoint": str(out) if out else None, "history": history}
        return {"stopped": False, "epochs": config.epochs, "steps": loop.step, "seconds": seconds,
                "images_per_second": (sum(h["images_per_second"] for h in history[start:]) / max(1, len(history) - start)),
                "warmup_steps": trainer.warmup_steps, "checkpoint": str(out) if out else None,
                "sampler": trainer.sampler.describe(), "device": str(loop.device), "world_size": trainer.world,
                "threads": torch.get_num_threads(), "channels_last": loop.channels_last,
                "amp": str(loop.amp_dtype) if loop.amp_dtype else None, "history": history}


def _check_resumable(state: dict[str, Any], net: nn.Module, data: Dataset, config: SupernetTrainConfig,
                     path: Path) -> None:
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a mnas supernet checkpoint (format {state.get('format')!r})")
    if state["config"] != net.config():
        raise ValueError(f"{path} holds a supernet of another space: pass the same space options to resume")
    if state["data"] != data_identity(data):
        raise ValueError(f"{path} was trained on different data ({state['data']['name']}, {state['data']['train']}"
                         " training images): pass the same --data, --val-fraction and --seed to resume")
    saved, now = state["train_config"], config.to_dict()
    saved_train, now_train = saved.pop("train"), now.pop("train")
    defaults = {f.name: f.default for f in fields(SupernetTrainConfig) if f.name != "train"}
    saved = {**defaults, **saved}  # a checkpoint from before a setting existed trained with its default
    diff = sorted(k for k in now if saved.get(k) != now[k])
    diff += sorted(k for k in now_train if k not in _RESUME_FREE and saved_train.get(k) != now_train[k])
    if diff:
        k = diff[0]
        old, new = (saved.get(k), now[k]) if k in now else (saved_train.get(k), now_train[k])
        raise ValueError(f"{path} was trained with {k}={old!r}, now {k}={new!r}: resume with the checkpoint's"
                         " settings, or start a new run with another output file")


def load_supernet(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The supernet saved by `train_supernet`, rebuilt and loaded; and the checkpoint's dict."""
    from mnas.oneshot import Supernet

    state = load_file(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a mnas supernet checkpoint (format {state.get('format')!r},"
                         f" expected {CHECKPOINT_FORMAT!r})")
    net = Supernet.from_config(state["config"])
    net.load_state_dict(state["state_dict"])
    return net, state
