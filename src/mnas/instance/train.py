"""Training an instance-aware model as InstaNAS does, resumable after every epoch.

1. Pre-train the one-shot meta-graph. Every module is kept per image with probability `keep`, which
   falls linearly from `keep_start` to `keep_end` over the pre-training epochs (the authors train
   with every module on for half the epochs, then drop modules down to keep 0.5), so every path
   is trained. Uses `mnas.train.Loop` (the "fast" recipe, SGD, cosine).
2. Search epochs, each: one epoch of the controller by policy gradient (`mnas.instance.policy`;
   Adam lr 1e-3, the meta-graph frozen in eval mode), then `finetune_epochs` of the meta-graph on
   policies the controller samples, shuffled across the batch as the authors do (SGD).
   The latency window's upper bound shrinks over the search epochs (the curriculum).

Files in the output directory (atomic writes): ``checkpoint.pt`` after every epoch (everything
needed to continue exactly: both loops' optimiser and schedule, the controller's optimiser, RNG
states, the latency table, history); ``instance.pt`` at the end (config, meta-graph and controller
weights, latency table, normalisation, class names, metrics); ``latency_table.json``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnas._util import check_keys, seed_everything
from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable, build_table
from mnas.instance.metagraph import STAGES, MetaGraph, MetaGraphConfig, canonical_policy
from mnas.instance.policy import curriculum, explore, policy_loss, reward
from mnas.instance.runtime import evaluate_instance
from mnas.train.checkpoint import atomic_save, get_rng_state, load_file, set_rng_state
from mnas.train.config import recipe
from mnas.train.datasets import Dataset
from mnas.train.full import data_identity
from mnas.train.loop import Loop, Timer, epoch_seed, threads
from mnas.train.resumable import EpochRun, check_same_run, checkpoint_path, loop_state, restore_loop

__all__ = ["CHECKPOINT", "MODEL", "InstanceConfig", "load_instance", "train_instance"]

CHECKPOINT, MODEL, TABLE = "checkpoint.pt", "instance.pt", "latency_table.json"
_RESUME_FREE = {"threads"}


@dataclass(frozen=True)
class InstanceConfig:
    """Meta-graph shape, the two training phases and InstaNAS's search constants (REFERENCE.md).

    CPU-sized defaults: width 0.5 (MobileNetV2 x0.5's filters) and the stem at stride 2, so a 32x32
    image runs its first stages at 16x16 (the authors' CIFAR graph keeps the stem and the second
    stage at stride 1; `stem_stride=1` restores that at about twice the cost)."""

    width: float = 0.5
    stem_stride: int = 2
    stage_strides: tuple[int, ...] = tuple(s for _, _, s in STAGES)
    pretrain_epochs: int = 3
    search_epochs: int = 3
    finetune_epochs: float = 1.0
    batch_size: int = 128
    lr_per_256: float = 0.2
    finetune_lr: float = 0.01
    controller_lr: float = 1e-3
    controller_width: int = 8
    controller_downsample: int = 2
    keep_start: float = 1.0
    keep_end: float = 0.5
    alpha: float = 0.8
    entropy: float = 0.8
    pos_reward: float = 10.0
    neg_reward: float = -10.0
    window_start: float = 0.7
    window_end: float = 0.5
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"{name}={getattr(self, name)!r}: expected {expected}")

        for name in ("pretrain_epochs", "seed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise bad(name, "an integer >= 0")
        for name in ("search_epochs", "batch_size", "controller_width", "controller_downsample", "stem_stride"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise bad(name, "a positive integer")
        for name in ("lr_per_256", "finetune_lr", "controller_lr", "width"):
            if not getattr(self, name) > 0:
                raise bad(name, "a positive number")
        if not self.finetune_epochs >= 0:
            raise bad("finetune_epochs", "a number >= 0")
        for name in ("keep_start", "keep_end"):
            if not 0 < getattr(self, name) <= 1:
                raise bad(name, "a number in (0, 1]")
        if not 0.5 <= self.alpha <= 1:
            raise bad("alpha", "a number in [0.5, 1]")
        if len(self.stage_strides) != len(STAGES) or any(s not in (1, 2) for s in self.stage_strides):
            raise bad("stage_strides", f"{len(STAGES)} strides of 1 or 2")
        object.__setattr__(self, "stage_strides", tuple(int(s) for s in self.stage_strides))

    def meta_config(self, data: Dataset) -> MetaGraphConfig:
        stages = tuple((f, r, s) for (f, r, _), s in zip(STAGES, self.stage_strides, strict=True))
        return MetaGraphConfig(width=self.width, input_size=data.input_size, num_classes=data.num_classes,
                               in_chans=data.channels, stem_stride=self.stem_stride, stages=stages)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["stage_strides"] = list(self.stage_strides)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InstanceConfig:
        known = {f.name for f in fields(cls)}
        check_keys(data, known, lambda key: f"unknown instance setting {key!r}: expected one of {', '.join(sorted(known))}")
        data = dict(data)
        if "stage_strides" in data:
            data["stage_strides"] = tuple(data["stage_strides"])
        return cls(**data)


class _RandomPaths(nn.Module):
    """The meta-graph with every module kept per image with probability `keep` while training;
    every module on in eval mode. A `Loop` trains it like any model."""

    def __init__(self, meta: MetaGraph):
        super().__init__()
        self.meta, self.keep, self.generator = meta, 1.0, torch.Generator()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.keep >= 1.0:
            return self.meta(x)
        policy = torch.rand((x.shape[0], self.meta.num_layers, 5), generator=self.generator) < self.keep
        return self.meta(x, policy)


class _ControllerPaths(nn.Module):
    """The meta-graph on policies the controller samples (explored, shuffled across the batch) while
    training; on its thresholded policies in eval mode. The controller is not a sub-module, so the
    loop's optimiser leaves it alone."""

    def __init__(self, meta: MetaGraph, controller: Controller, alpha: float):
        super().__init__()
        self.meta, self.alpha, self.generator = meta, alpha, torch.Generator()
        object.__setattr__(self, "controller", controller)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            self.controller.eval()
            probs = self.controller(x)
        if not self.training:
            return self.meta(x, probs >= 0.5)
        policy = torch.bernoulli(explore(probs, self.alpha), generator=self.generator)
        policy = policy[torch.randperm(x.shape[0], generator=self.generator)]
        return self.meta(x, policy)


def _log_default(_: str) -> None: ...


def train_instance(data: Dataset, config: InstanceConfig, out: str | Path, *, resume: bool = False,
                   table: LatencyTable | None = None, stop_after: int | None = None,
                   log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Pre-train the meta-graph, then alternate controller and meta-graph epochs; see the module docstring.

    `table`: the per-module latency table (default: measured here on ONNX Runtime, 1 thread).
    `stop_after` ends this call after that many epochs (of either phase) with a resumable checkpoint.
    Returns the final metrics (or ``{"stopped": True, ...}``)."""
    out, log = Path(out), log or _log_default
    ckpt_path = checkpoint_path(out, resume, name=CHECKPOINT, what="an instance checkpoint")
    if len(data.y_val) == 0:
        raise ValueError(f"{data.name}: the validation split is empty (load the data with val_fraction > 0)")
    with threads(config.threads), torch.random.fork_rng(devices=[]):
        seed_everything(config.seed)
        meta = MetaGraph(config.meta_config(data))
        controller = Controller(meta.num_layers, in_chans=data.channels, downsample=config.controller_downsample,
                                width=config.controller_width)
        bs = min(config.batch_size, len(data.y_train))
        steps = len(data.y_train) // bs
        ft_steps = max(1, round(config.finetune_epochs * steps)) if config.finetune_epochs > 0 else 0
        pre_cfg = recipe("fast", epochs=max(1, config.pretrain_epochs), batch_size=bs, lr=config.lr_per_256 * bs / 256,
                         seed=config.seed, device="cpu", warmup_epochs=min(1.0, config.pretrain_epochs / 3))
        ft_cfg = recipe("fast", epochs=1, batch_size=bs, lr=config.finetune_lr, seed=config.seed + 1, device="cpu",
                        warmup_epochs=0.0)
        pre = Loop(_RandomPaths(meta), data, pre_cfg, total_steps=max(1, config.pretrain_epochs * steps))
        ft = Loop(_ControllerPaths(meta, controller, config.alpha), data, ft_cfg,
                  total_steps=max(1, config.search_epochs * ft_steps))
        controller.to(memory_format=torch.channels_last if ft.channels_last else torch.contiguous_format)
        optimizer = torch.optim.Adam(controller.parameters(), lr=config.controller_lr)
        total = config.pretrain_epochs + config.search_epochs
        run = EpochRun(ckpt_path, total, stop_after)
        if resume:
            state = load_file(ckpt_path)
            check_same_run(state, ckpt_path, format="mnas.instance.checkpoint/1", what="instance",
                           data=data_identity(data), config=config.to_dict(), free=_RESUME_FREE)
            meta.load_state_dict(state["meta"])
            controller.load_state_dict(state["controller"])
            optimizer.load_state_dict(state["controller_optimizer"])
            for loop, key in ((pre, "pretrain"), (ft, "finetune")):
                restore_loop(loop, state[key])
            run.resume(state["epochs_done"], state)
            table = LatencyTable.from_dict(state["table"])
            set_rng_state(state["rng"])
            log(f"resumed {ckpt_path} after {run.start} of {total} epochs")
        elif table is None:
            timer = Timer()
            table = build_table(meta, controller, log=log)
            log(f"latency table measured in {timer():.0f}s")
        out.mkdir(parents=True, exist_ok=True)
        table.save(out / TABLE)
        eta = _Eta(config, run.history)

        def checkpoint(done: int) -> dict[str, Any]:
            return _checkpoint(meta, controller, optimizer, pre, ft, data, config, done, run.history, run.seconds, table)

        for epoch in run.epochs():
            timer = Timer()
            if epoch < config.pretrain_epochs:
                metrics = _pretrain_epoch(pre, config, epoch, log, eta)
            else:
                metrics = _search_epoch(ft, meta, controller, optimizer, table, config, epoch - config.pretrain_epochs,
                                        ft_steps, log, eta)
            run.end_epoch(epoch, metrics, timer(), checkpoint)
            log(_format(metrics, total) + f"  eta {_hms(eta.left(epoch + 1))}")
            if (stopped := run.stopped(epoch)) is not None:
                return stopped
        history, seconds = run.history, run.seconds
        final = evaluate_instance(meta, controller, data, "test", table, ft.transform) if len(data.y_test) else {}
        final = {k: v for k, v in final.items() if k not in ("routes", "correct", "labels", "latency_ms")}
        final.update({"seconds": seconds, "epochs": total, "history": history, "model": str(out / MODEL),
                      "table_backend": table.backend.get("backend"), "num_train": len(data.y_train)})
        atomic_save({"format": "mnas.instance/1", "config": config.to_dict(), "meta_config": meta.config.to_dict(),
                     "controller": {"width": controller.width, "downsample": controller.downsample},
                     "meta_state": _cpu(meta.state_dict()), "controller_state": _cpu(controller.state_dict()),
                     "table": table.to_dict(), "normalization": {"mean": list(data.mean), "std": list(data.std)},
                     "class_names": list(data.class_names), "data": data_identity(data),
                     "metrics": {k: v for k, v in final.items() if k != "history"}, "history": history}, out / MODEL)
        return final


class _Eta:
    """Time left: seconds per epoch of each phase, from the history (the current rate before that)."""

    def __init__(self, config: InstanceConfig, history: list[dict[str, Any]]):
        self.config, self.history = config, history

    def per_epoch(self, phase: str) -> float | None:
        times = [h["epoch_seconds"] for h in self.history if h["phase"] == phase]
        return times[-1] if times else None

    def left(self, done: int, current: tuple[str, float] | None = None) -> float:
        pre_left = max(0, self.config.pretrain_epochs - done)
        search_left = self.config.pretrain_epochs + self.config.search_epochs - done - pre_left
        rates = {p: self.per_epoch(p) for p in ("pretrain", "search")}
        if current:
            rates[current[0]] = rates[current[0]] or current[1]
        return pre_left * (rates["pretrain"] or rates["search"] or 0) + search_left * (rates["search"] or 0)


def _pretrain_epoch(loop: Loop, config: InstanceConfig, epoch: int, log: Callable[[str], None], eta: _Eta) -> dict:
    wrapper = loop.model
    frac = epoch / (config.pretrain_epochs - 1) if config.pretrain_epochs > 1 else 1.0
    wrapper.keep = config.keep_start + (config.keep_end - config.keep_start) * frac
    batches = loop.epoch_batches(epoch)
    wrapper.generator.manual_seed(epoch_seed(config.seed + 3, epoch))
    timer, images, correct, loss_sum = Timer(), 0, 0, 0.0
    for i, idx in enumerate(batches, 1):
        loss_sum += loop.train_step(idx)
        images, correct = images + len(idx), correct + loop.last_correct
        _step_log(log, "pretrain", epoch, i, len(batches), images, timer(), eta, loss_sum / i)
    epoch_seconds = timer()
    val_accuracy, _ = loop.evaluate("val")
    return {"phase": "pretrain", "epoch": epoch + 1, "keep": wrapper.keep, "train_loss": loss_sum / len(batches),
            "train_accuracy": correct / images, "val_accuracy_all_on": val_accuracy,
            "images_per_second": images / epoch_seconds, "epoch_seconds": epoch_seconds}


def _search_epoch(ft: Loop, meta: MetaGraph, controller: Controller, optimizer: torch.optim.Optimizer,
                  table: LatencyTable, config: InstanceConfig, epoch: int, ft_steps: int,
                  log: Callable[[str], None], eta: _Eta) -> dict:
    lower, upper = curriculum(epoch, config.search_epochs, table.bounds(), config.window_start, config.window_end)
    modules_ms = torch.tensor(table.array, dtype=torch.float32)
    skippable = meta.skippable
    gen = torch.Generator().manual_seed(epoch_seed(config.seed + 2, epoch))
    torch.manual_seed(epoch_seed(config.seed + 2, epoch))
    n, bs = len(ft.y_train), ft.batch_size
    perm = torch.randperm(n, generator=gen)[: (n // bs) * bs].view(-1, bs)
    timer, stats = Timer(), {"reward": 0.0, "correct": 0.0, "latency": 0.0, "advantage": 0.0, "modules": 0.0}
    meta.eval()
    for i, idx in enumerate(perm, 1):
        controller.train()
        x = ft.transform(ft.x_train[idx], train=True, generator=gen)  # (B, C, S, S)
        y = ft.y_train[idx]
        # oneDNN's CPU kernels corrupt memory in this controller's backward at the tiny feature maps of
        # small inputs (glibc 'double free', torch 2.13); the controller is small, so run it without them.
        with torch.backends.mkldnn.flags(enabled=False):
            probs = controller(x)  # (B, L, 5)
            explored = explore(probs, config.alpha)
            sample = torch.bernoulli(explored.detach(), generator=gen)
            greedy = (probs.detach() >= 0.5).float()
            with torch.no_grad():
                rewards = []
                for policy in (sample, greedy):
                    correct = meta(x, policy).argmax(1) == y
                    latency = (canonical_policy(policy, skippable).float() * modules_ms).sum((1, 2))  # (B,)
                    rewards.append(reward(correct, latency, lower, upper, config.pos_reward, config.neg_reward))
                advantage = rewards[0] - rewards[1]
            loss = policy_loss(explored, sample, advantage, config.entropy)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        for key, value in (("reward", rewards[1].mean()), ("correct", correct.float().mean()),
                           ("latency", latency.mean()), ("advantage", advantage.mean()), ("modules", greedy.sum((1, 2)).mean())):
            stats[key] += float(value)
        _step_log(log, "controller", epoch, i, len(perm), i * bs, timer(), eta, loss.item())
    controller_seconds = timer()
    metrics = {"phase": "search", "epoch": config.pretrain_epochs + epoch + 1, "window_ms": [lower, upper],
               **{f"greedy_{k}": v / len(perm) for k, v in stats.items()},
               "controller_images_per_second": len(perm) * bs / controller_seconds}
    if ft_steps:
        ft_timer, batches = Timer(), ft.epoch_batches(epoch)
        batches = (batches * math.ceil(ft_steps / len(batches)))[:ft_steps]
        ft.model.generator.manual_seed(epoch_seed(config.seed + 4, epoch))
        loss_sum = 0.0
        for i, idx in enumerate(batches, 1):
            loss_sum += ft.train_step(idx)
            _step_log(log, "finetune", epoch, i, len(batches), i * bs, ft_timer(), eta, loss_sum / i)
        metrics.update({"finetune_loss": loss_sum / len(batches), "finetune_images_per_second":
                        len(batches) * bs / ft_timer()})
    val = evaluate_instance(meta, controller, ft.data, "val", table, ft.transform)
    metrics.update({"val_accuracy": val["accuracy"], "val_latency_ms": val["mean_latency_ms"],
                    "val_routes": val["distinct_routes"], "epoch_seconds": timer()})
    return metrics


def _step_log(log: Callable[[str], None], phase: str, epoch: int, i: int, steps: int, images: int, elapsed: float,
              eta: _Eta, loss: float) -> None:
    every = max(1, steps // 5)
    if i % every == 0 or i == steps:
        rate = images / max(elapsed, 1e-9)
        log(f"  {phase} epoch {epoch + 1} step {i}/{steps}  loss {loss:.3f}  {rate:.0f} img/s"
            f"  epoch left {_hms(elapsed / i * (steps - i))}")


def _format(m: dict[str, Any], total: int) -> str:
    if m["phase"] == "pretrain":
        return (f"epoch {m['epoch']}/{total} pretrain keep {m['keep']:.2f}  loss {m['train_loss']:.3f}"
                f"  val acc (all on) {m['val_accuracy_all_on']:.4f}  {m['images_per_second']:.0f} img/s")
    lo, hi = m["window_ms"]
    return (f"epoch {m['epoch']}/{total} search window [{lo:.3f}, {hi:.3f}] ms  val acc {m['val_accuracy']:.4f}"
            f"  val latency (total) {m['val_latency_ms']:.3f} ms  routes {m['val_routes']}"
            f"  {m['controller_images_per_second']:.0f} img/s (controller)")


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def _checkpoint(meta: MetaGraph, controller: Controller, optimizer: torch.optim.Optimizer, pre: Loop, ft: Loop,
                data: Dataset, config: InstanceConfig, epochs_done: int, history: list, seconds: float,
                table: LatencyTable) -> dict[str, Any]:
    return {"format": "mnas.instance.checkpoint/1", "config": config.to_dict(), "data": data_identity(data),
            "epochs_done": epochs_done, "meta": meta.state_dict(), "controller": controller.state_dict(),
            "controller_optimizer": optimizer.state_dict(),
            **{key: loop_state(loop) for key, loop in (("pretrain", pre), ("finetune", ft))},
            "rng": get_rng_state(), "history": history, "seconds": seconds, "table": table.to_dict()}


def load_instance(path: str | Path) -> tuple[MetaGraph, Controller, dict[str, Any]]:
    """The meta-graph and controller saved by `train_instance` (``instance.pt``), in eval mode, and the file's dict."""
    path = Path(path)
    if path.is_dir():
        path = path / MODEL
    info = load_file(path)
    if info.get("format") != "mnas.instance/1":
        raise ValueError(f"{path}: not a mnas instance model (format {info.get('format')!r}, expected 'mnas.instance/1')")
    meta = MetaGraph(MetaGraphConfig.from_dict(info["meta_config"]))
    meta.load_state_dict(info["meta_state"])
    controller = Controller(meta.num_layers, in_chans=meta.config.in_chans, **info["controller"])
    controller.load_state_dict(info["controller_state"])
    return meta.eval(), controller.eval(), info
