"""The proxy trainer: train a candidate briefly, report its validation accuracy.

`train_proxy(model, data, config)` never raises for a failure of the candidate itself: a NaN or
infinite loss stops the run at once, and a runtime error (out of memory, an input too small for
the network) ends it; both come back as ``Result(ok=False, failure=reason)``. Bad arguments (a
malformed config, a data set without a validation split) are still ValueErrors.

Same seed, same result on CPU: the caller seeds before building the model (`seed_everything`),
the trainer reseeds data order, augmentation and dropout from ``config.seed`` (see loop.py), and
restores the caller's global RNG state afterwards.

On layout: channels_last is the CPU default because it was faster where it matters. Training
steps of batch 128 at 32x32 on this project's 2-core x86 CPU, torch 2.13, 1 thread, median CPU time
per step: MnasNet-B1 x0.5 1642 ms NCHW vs 975 ms channels_last (1.68x), MobileNetV2 x0.5 2047 vs
1318 ms (1.55x). For tiny networks on 8x8 digits it was ~15% slower, a case where every step takes
milliseconds anyway. ``python benchmarks/train.py`` measures both layouts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from mnas.train.config import TrainConfig
from mnas.train.datasets import Dataset
from mnas.train.loop import Loop, NonFiniteLoss, Timer, threads

__all__ = ["Result", "TrainResult", "evaluate", "train_proxy"]


@dataclass(frozen=True)
class TrainResult:
    """What a proxy run reports. `accuracy` and `loss` are on the validation split (loss without
    label smoothing); `images_per_second` counts training images over training time only."""

    ok: bool
    accuracy: float | None
    loss: float | None
    train_loss: float | None
    images_per_second: float
    seconds: float
    train_seconds: float
    steps: int
    epochs: float
    failure: str | None = None
    truncated: bool = False
    device: str = "cpu"
    threads: int = 1
    channels_last: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


Result = TrainResult


def train_proxy(model: nn.Module, data: Dataset, config: TrainConfig | None = None) -> TrainResult:
    """Train `model` on `data`'s training split within the config's budget; evaluate on validation."""
    config = config or TrainConfig()
    if not isinstance(data, Dataset):
        raise ValueError(f"data must be a mnas Dataset (from mnas.data.load), got {type(data).__name__}")
    if not len(data.y_val):
        raise ValueError(f"{data.name}: no validation split to score on: load the data with val_fraction > 0")
    total = Timer()
    with threads(config.threads), torch.random.fork_rng(devices=_cuda_devices(config)):
        loop = Loop(model, data, config)
        n_threads = torch.get_num_threads()
        failure, truncated, losses, train_seconds = None, False, [], 0.0
        epoch = 0
        try:
            while loop.step < loop.total_steps and not truncated:
                for idx in loop.epoch_batches(epoch):
                    t = Timer()
                    losses.append(loop.train_step(idx))
                    train_seconds += t()
                    if loop.step >= loop.total_steps:
                        break
                    if config.max_seconds is not None and total() >= config.max_seconds:
                        truncated = True
                        break
                epoch += 1
            if loop.device.type == "cuda":
                torch.cuda.synchronize(loop.device)
            accuracy, loss = loop.evaluate("val")
        except NonFiniteLoss as exc:
            failure = str(exc)
        except RuntimeError as exc:  # out of memory, shape errors of an odd candidate, ...
            failure = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            if loop.device.type == "cuda":
                torch.cuda.empty_cache()
    images = loop.step * loop.batch_size
    tail = losses[-max(1, loop.steps_per_epoch // 4):] if losses else []
    return TrainResult(
        ok=failure is None,
        accuracy=None if failure else accuracy,
        loss=None if failure else loss,
        train_loss=sum(tail) / len(tail) if tail and not failure else None,
        images_per_second=images / train_seconds if train_seconds > 0 else 0.0,
        seconds=total(), train_seconds=train_seconds, steps=loop.step,
        epochs=loop.step / loop.steps_per_epoch, failure=failure, truncated=truncated,
        device=str(loop.device), threads=n_threads, channels_last=loop.channels_last,
    )


def evaluate(model: nn.Module, data: Dataset, split: str = "test", config: TrainConfig | None = None) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of `model` on a split of `data`, without training it."""
    config = config or TrainConfig()
    with threads(config.threads):
        return Loop(model, data, config, total_steps=1, train=False).evaluate(split, model)


def _cuda_devices(config: TrainConfig) -> list[int]:
    if config.device == "cpu" or not torch.cuda.is_available():
        return []
    return [torch.device(config.device).index or 0] if config.device.startswith("cuda:") else [torch.cuda.current_device()]
