"""Full training of a chosen architecture, with a resumable checkpoint every epoch.

Files written to the output directory (each atomically: temporary file, fsync, rename):

``checkpoint.pt`` — after every epoch; everything needed to continue exactly::

    {"format": "mnas.checkpoint/1", "arch": str, "num_classes": int, "in_chans": int,
     "input_size": int, "config": TrainConfig.to_dict(), "data": {source, sizes, ...},
     "epoch": completed epochs, "step": optimiser steps, "model": state_dict,
     "optimizer": state_dict, "schedule": LRSchedule.state_dict(), "ema": ModelEma.state_dict() | None,
     "rng": {"python", "numpy", "torch"[, "cuda"]}, "history": [per-epoch metrics],
     "seconds": training wall time so far}

``model.pt`` — the trained model, for ``mnas export`` and for inference::

    {"format": "mnas.model/1",
     "arch": str(arch),                 # canonical arch string: mnas.space.as_arch(...) rebuilds it
     "num_classes": int, "in_chans": int, "input_size": int,   # input_size: the training resolution
     "state_dict": {...},               # for mnas.models.build_model(arch, num_classes, in_chans);
                                        # the EMA weights when the recipe keeps an EMA
     "normalization": {"mean": [...], "std": [...]},  # per channel, on pixels scaled to [0, 1]
     "class_names": [...],
     "metrics": {"test_accuracy", "test_loss", "val_accuracy", "epochs", "seconds", ...},
     "config": TrainConfig.to_dict()}

Both load with ``torch.load(path, weights_only=True)`` (plain tensors and Python values only);
`load_model(path)` returns the built model and that dictionary. ``metrics.json`` holds the final
figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnas._util import seed_everything
from mnas.models import build_model
from mnas.space import Arch, as_arch
from mnas.train.checkpoint import atomic_save, atomic_write_json, get_rng_state, load_file, set_rng_state
from mnas.train.config import TrainConfig
from mnas.train.datasets import Dataset
from mnas.train.loop import Loop, Timer, threads
from mnas.train.resumable import EpochRun, check_same_run, checkpoint_path, loop_state, restore_loop

__all__ = ["CHECKPOINT", "METRICS", "MODEL", "Progress", "Stopped", "data_identity", "load_model", "train_full"]

CHECKPOINT, MODEL, METRICS = "checkpoint.pt", "model.pt", "metrics.json"
# Settings that may differ between a run and its resumption without changing the result.
_RESUME_FREE = {"threads", "eval_batch_size"}


class Progress:
    """Hooks for progress display; the default does nothing."""

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None: ...

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None: ...

    def end_epoch(self, metrics: dict[str, Any]) -> None: ...


class Stopped(Exception):
    """Raised by a `Progress` hook (or `stop_after`) to end a run after a checkpoint; resume later."""


def train_full(arch: Arch | str, data: Dataset, config: TrainConfig, out: str | Path, *, resume: bool = False,
               stop_after: int | None = None, progress: Progress | None = None,
               log: Callable[[str], None] | None = None,
               init: Mapping[str, torch.Tensor] | None = None) -> dict[str, Any]:
    """Train `arch` on `data` for `config.epochs` epochs, checkpointing to `out` after every epoch.

    With `resume`, continue from ``out/checkpoint.pt`` (same arch and settings; weights end up
    identical to an uninterrupted run on CPU). `stop_after` ends this call after that many epochs
    with a resumable checkpoint and returns ``{"stopped": True, ...}``. Finishes with the test
    accuracy and ``out/model.pt``; returns the final metrics.

    `init`: a state dict of `arch`'s model to start from instead of the random initialisation
    (fine-tuning, e.g. weights inherited from a supernet). It is saved as an epoch-0 checkpoint
    before the first step, so a run killed in its first epoch resumes from it; not allowed with `resume`.
    """
    arch, out, progress, log = as_arch(arch), Path(out), progress or Progress(), log or (lambda _: None)
    epochs = config.epochs
    if epochs != int(epochs) or config.steps is not None:
        raise ValueError(f"full training runs whole epochs: epochs={epochs!r}, steps={config.steps!r}")
    epochs = int(epochs)
    ckpt_path = checkpoint_path(out, resume, name=CHECKPOINT, what="a training checkpoint")
    if resume and init is not None:
        raise ValueError("init= starts a training from given weights; a resumed one continues its checkpoint's")
    input_size = config.input_size or data.input_size
    with threads(config.threads), torch.random.fork_rng(devices=[]):
        seed_everything(config.seed)
        model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
        if init is not None:
            try:
                model.load_state_dict(init)
            except RuntimeError as exc:
                raise ValueError(f"init= does not fit '{arch}': {str(exc).splitlines()[0]}") from None
        loop = Loop(model, data, config, total_steps=epochs * (len(data.y_train) // min(config.batch_size,
                                                                                           len(data.y_train))))
        run = EpochRun(ckpt_path, epochs, stop_after)

        def state(done: int) -> dict[str, Any]:
            return _checkpoint(loop, arch, data, config, done, run.history, run.seconds, input_size)

        if init is not None:
            atomic_save(state(0), ckpt_path)
        if resume:
            saved = load_file(ckpt_path)
            check_same_run(saved, ckpt_path, format="mnas.checkpoint/1", what="training", arch=str(arch),
                           data=data_identity(data), config=config.to_dict(), free=_RESUME_FREE)
            loop.model.load_state_dict(saved["model"])
            restore_loop(loop, saved)
            run.resume(saved["epoch"], saved)
            set_rng_state(saved["rng"])
            log(f"resumed {ckpt_path} after epoch {run.start} of {epochs}")
        for epoch in run.epochs():
            timer, images, correct, loss_sum = Timer(), 0, 0, 0.0
            batches = loop.epoch_batches(epoch)
            progress.start_epoch(epoch, epochs, len(batches))
            for i, idx in enumerate(batches, 1):
                loss_sum += loop.train_step(idx)
                images += len(idx)
                correct += loop.last_correct
                progress.step(loss_sum / i, correct / images, images / max(timer(), 1e-9))
            train_seconds = timer()
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum / len(batches), "train_accuracy": correct / images,
                       "images_per_second": images / train_seconds, "lr": loop.schedule.lr_at(loop.step - 1)}
            if len(data.y_val):
                metrics["val_accuracy"], metrics["val_loss"] = loop.evaluate("val")
            run.end_epoch(epoch, metrics, timer(), state)
            progress.end_epoch(metrics)
            if (stopped := run.stopped(epoch)) is not None:
                return stopped
        test_accuracy, test_loss = loop.evaluate("test") if len(data.y_test) else (math.nan, math.nan)
        history, seconds = run.history, run.seconds
        final = {
            "arch": str(arch), "data": data.name, "epochs": epochs, "steps": loop.step,
            "test_accuracy": test_accuracy, "test_loss": test_loss,
            "val_accuracy": history[-1].get("val_accuracy") if history else None,
            "train_loss": history[-1]["train_loss"] if history else None,
            "images_per_second": sum(h["images_per_second"] for h in history) / max(1, len(history)),
            "seconds": seconds, "num_train": len(data.y_train), "num_val": len(data.y_val),
            "num_test": len(data.y_test), "device": str(loop.device), "threads": torch.get_num_threads(),
            "channels_last": loop.channels_last, "ema": loop.ema is not None, "input_size": input_size,
            "model": str(out / MODEL), "history": history,
        }
        state_dict = {k: v.detach().cpu().contiguous() for k, v in loop.eval_model().state_dict().items()}
        atomic_save({
            "format": "mnas.model/1", "arch": str(arch), "num_classes": data.num_classes, "in_chans": data.channels,
            "input_size": input_size, "state_dict": state_dict,
            "normalization": {"mean": list(data.mean), "std": list(data.std)},
            "class_names": list(data.class_names),
            "metrics": {k: v for k, v in final.items() if k != "history"}, "config": config.to_dict(),
        }, out / MODEL)
        atomic_write_json(final, out / METRICS)
        return final


def _checkpoint(loop: Loop, arch: Arch, data: Dataset, config: TrainConfig, epoch: int, history: list,
                seconds: float, input_size: int) -> dict[str, Any]:
    return {
        "format": "mnas.checkpoint/1", "arch": str(arch), "num_classes": data.num_classes, "in_chans": data.channels,
        "input_size": input_size, "config": config.to_dict(), "data": data_identity(data),
        "epoch": epoch, **loop_state(loop), "model": loop.model.state_dict(),
        "ema": loop.ema.state_dict() if loop.ema is not None else None, "rng": get_rng_state(),
        "history": history, "seconds": seconds,
    }


def data_identity(data: Dataset) -> dict[str, Any]:
    """What must match for a resumed run to see the same data."""
    return {"name": data.name, "source": dict(data.source), "train": len(data.y_train), "val": len(data.y_val),
            "test": len(data.y_test), "image_shape": list(data.image_shape), "class_names": list(data.class_names)}


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """The model saved by `train_full` (``model.pt``), built and loaded, in eval mode; and the file's dict."""
    info = load_file(path)
    if info.get("format") != "mnas.model/1":
        raise ValueError(f"{path}: not a mnas model file (format {info.get('format')!r}, expected 'mnas.model/1')")
    model = build_model(as_arch(info["arch"]), num_classes=info["num_classes"], in_chans=info["in_chans"])
    model.load_state_dict(info["state_dict"])
    return model.eval(), info
