"""The training loop shared by the proxy trainer and full training.

Reproducibility: each epoch reseeds one CPU generator (data order and augmentation) and the global
torch RNG (dropout) from (seed, epoch), so the same seed gives the same run on CPU, and a run
resumed at an epoch boundary continues exactly as if it had never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from mnas.train.augment import BatchTransform
from mnas.train.config import TrainConfig
from mnas.train.datasets import NO_AUGMENT, Dataset
from mnas.train.optim import LRSchedule, ModelEma, make_optimizer

__all__ = ["CPU_CHANNELS_LAST", "Loop", "NonFiniteLoss", "resolve_device", "threads"]

# channels_last trained MnasNet-B1 x0.5 and MobileNetV2 x0.5 1.5-1.7x faster than NCHW on this
# project's 2-core x86 CPU (figures in trainer.py's docstring), so it is the CPU default.
CPU_CHANNELS_LAST = True


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available: use device='cpu' or 'auto'")
    return torch.device(name)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """`torch.set_num_threads(n)` for the duration, then the previous setting."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 12345) % (2**63 - 1)


class Loop:
    """A model, its optimiser, schedule, optional EMA, and the data as tensors, ready to step."""

    def __init__(self, model: nn.Module, data: Dataset, config: TrainConfig, total_steps: int | None = None,
                 train: bool = True):
        if len(data.y_train) == 0:
            raise ValueError(f"{data.name}: the training split is empty")
        self.config, self.data = config, data
        self.device = resolve_device(config.device)
        cuda = self.device.type == "cuda"
        self.channels_last = True if cuda else (CPU_CHANNELS_LAST if config.channels_last is None
                                                else config.channels_last)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        self.model = model.to(self.device, memory_format=fmt)
        # (N, H, W, C) uint8, shared with NumPy; arrays that arrive read-only (Ray's zero-copy
        # deserialisation) are copied, since torch does not support read-only tensors.
        self.x_train = torch.from_numpy(_writable(data.x_train))
        self.y_train = torch.from_numpy(_writable(data.y_train))
        if cuda:  # small data sets live on the GPU: no host-to-device copy per batch
            self.x_train, self.y_train = self.x_train.to(self.device), self.y_train.to(self.device)
        n = len(self.y_train)
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = n // self.batch_size
        self.total_steps = total_steps or config.steps or max(1, math.ceil(config.epochs * self.steps_per_epoch))
        self.transform = BatchTransform(data.mean, data.std, data.augment if config.augment else NO_AUGMENT,
                                        config.input_size, self.device, self.channels_last)
        if train:
            _set_bn_momentum(self.model, config.bn_momentum, self.total_steps)
        self.optimizer = make_optimizer(self.model, config)
        self.schedule = LRSchedule.from_config(config, self.total_steps, self.steps_per_epoch)
        self.ema = ModelEma(self.model, config.ema_decay) if config.ema_decay else None
        self.criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
        self.amp_dtype = None
        if cuda and config.amp:
            self.amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)
        self.step, self.last_correct = 0, 0
        self.generator = torch.Generator()

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def epoch_batches(self, epoch: int) -> list[torch.Tensor]:
        """Reseed for `epoch`; the shuffled index batches of that epoch (the last partial batch dropped)."""
        seed = epoch_seed(self.config.seed, epoch)
        self.generator.manual_seed(seed)
        torch.manual_seed(seed)  # dropout
        perm = torch.randperm(len(self.y_train), generator=self.generator)
        return list(perm[: self.steps_per_epoch * self.batch_size].view(self.steps_per_epoch, self.batch_size))

    def train_step(self, idx: torch.Tensor) -> float:
        """One optimiser step on the images `idx`; the loss, or NonFiniteLoss."""
        idx = idx.to(self.x_train.device)
        x = self.transform(self.x_train[idx], train=True, generator=self.generator)  # (B, C, S, S)
        y = self.y_train[idx].to(self.device, non_blocking=True)
        self.schedule.apply(self.optimizer)
        with self.autocast():
            logits = self.model(x)
            loss = self.criterion(logits, y)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(f"loss became {value} at step {self.step + 1}")
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        self.last_correct = int((logits.detach().argmax(1) == y).sum())
        return value

    def eval_model(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def evaluate(self, split: str = "val", model: nn.Module | None = None) -> tuple[float, float]:
        """(accuracy in [0, 1], mean cross-entropy) on a split, with the EMA weights when there are any."""
        model = model or self.eval_model()
        x_all, y_all = (_writable(a) for a in self.data.split(split))
        if not len(y_all):
            raise ValueError(f"{self.data.name}: the {split} split is empty (load the data with val_fraction > 0)")
        was_training = model.training
        model.eval()
        correct, loss_sum = 0, 0.0
        try:
            for i in range(0, len(y_all), self.config.eval_batch_size):
                x = self.transform(torch.from_numpy(x_all[i:i + self.config.eval_batch_size]), train=False)
                y = torch.from_numpy(y_all[i:i + self.config.eval_batch_size]).to(self.device)
                with self.autocast():
                    logits = model(x).float()
                loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        finally:
            model.train(was_training)
        return correct / len(y_all), loss_sum / len(y_all)


def _set_bn_momentum(model: nn.Module, momentum: float | None, total_steps: int) -> None:
    """Batch-norm momentum for this run: `momentum` if given, else at least 0.1 and at least 4 / steps.

    MnasNet's 0.01 (TF 0.99) averages over ~100 steps, which suits 350 ImageNet epochs but lags far
    behind the weights in a short run at a high learning rate: after 3 of 30 epochs on the CIFAR-10
    subset, MobileNetV2 x0.5 scored 10.2% on validation with its running statistics and 36.8% with
    statistics recomputed from 2,048 training images. With momentum >= 4 / steps the initial values
    weigh under 2% at the end of even a 20-step proxy run.
    """
    wanted = momentum if momentum is not None else min(0.5, max(0.1, 4.0 / max(1, total_steps)))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None:
            m.momentum = wanted if momentum is not None else max(m.momentum, wanted)


class Timer:
    """Wall-clock seconds since construction."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self) -> float:
        return time.perf_counter() - self.start


def _writable(array: np.ndarray) -> np.ndarray:
    return array if array.flags.writeable else array.copy()
