"""Training configuration (`TrainConfig`, alias `ProxyConfig`) and the named recipes.

The defaults are a short proxy run (one SGD epoch, batch 32, lr 0.1, warm-up and cosine decay);
`recipe("proxy")` is exactly what `mnas search` trains each candidate with by default;
`recipe("paper")` is MnasNet's final-training recipe (REFERENCE.md); `recipe("fast")` is a shorter
recipe that suits small data sets on a CPU.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from mnas._util import check_keys

__all__ = ["PROXY_VAL_FRACTION", "RECIPES", "ProxyConfig", "TrainConfig", "auto_threads", "recipe"]

OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "exponential")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """How to train one model. `lr` is the learning rate at `batch_size` (not per 256 images).

    Budget: `steps` if given, else `epochs` (may be fractional); `max_seconds` caps the wall clock
    of the training loop (the run then stops early and reports ``truncated``).
    `bn_momentum=None` (PyTorch convention) raises the model's batch-norm momentum to at least 0.1
    and to 4 / steps for very short runs (see loop.py); a number sets it exactly.
    `channels_last=None` picks the layout that was faster on CPU here (see trainer.py), and is always
    on for CUDA. `amp` is mixed precision on CUDA only. `threads=None` leaves torch's setting alone.
    """

    epochs: float = 1.0
    steps: int | None = None
    max_seconds: float | None = None
    batch_size: int = 32
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 4e-5
    rms_decay: float = 0.9
    eps: float = 1e-3
    warmup_epochs: float = 0.1
    schedule: str = "cosine"
    decay_rate: float = 0.97
    decay_epochs: float = 2.4
    label_smoothing: float = 0.1
    ema_decay: float | None = None
    bn_momentum: float | None = None
    augment: bool = True
    input_size: int | None = None
    channels_last: bool | None = None
    amp: bool = True
    device: str = "auto"
    threads: int | None = None
    seed: int = 0
    eval_batch_size: int = 500

    def __post_init__(self) -> None:
        def bad(name: str, expected: str) -> ValueError:
            return ValueError(f"{name}={getattr(self, name)!r}: expected {expected}")

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not is_num(self.epochs) or self.epochs <= 0:
            raise bad("epochs", "a positive number")
        for name in ("steps", "threads", "input_size"):
            v = getattr(self, name)
            if v is not None and (not is_int(v) or v < 1):
                raise bad(name, "a positive integer or None")
        for name in ("batch_size", "eval_batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                raise bad(name, "a positive integer")
        if self.max_seconds is not None and (not is_num(self.max_seconds) or self.max_seconds <= 0):
            raise bad("max_seconds", "a positive number of seconds or None")
        if self.optimizer not in OPTIMIZERS:
            raise bad("optimizer", " or ".join(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            raise bad("schedule", " or ".join(SCHEDULES))
        if self.device not in DEVICES and not str(self.device).startswith("cuda:"):
            raise bad("device", "auto, cpu, cuda or cuda:N")
        if not is_num(self.lr) or self.lr <= 0:
            raise bad("lr", "a positive number")
        for name in ("momentum", "rms_decay", "label_smoothing"):
            if not is_num(getattr(self, name)) or not 0 <= getattr(self, name) < 1:
                raise bad(name, "a number in [0, 1)")
        for name in ("weight_decay", "warmup_epochs"):
            if not is_num(getattr(self, name)) or getattr(self, name) < 0:
                raise bad(name, "a number >= 0")
        if not is_num(self.eps) or self.eps <= 0:
            raise bad("eps", "a positive number")
        if not is_num(self.decay_rate) or not 0 < self.decay_rate <= 1:
            raise bad("decay_rate", "a number in (0, 1]")
        if not is_num(self.decay_epochs) or self.decay_epochs <= 0:
            raise bad("decay_epochs", "a positive number")
        if self.bn_momentum is not None and (not is_num(self.bn_momentum) or not 0 < self.bn_momentum <= 1):
            raise bad("bn_momentum", "a number in (0, 1] or None")
        if self.ema_decay is not None and (not is_num(self.ema_decay) or not 0 < self.ema_decay < 1):
            raise bad("ema_decay", "a number in (0, 1) or None")
        if not is_int(self.seed) or self.seed < 0:
            raise bad("seed", "an integer >= 0")

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        check_keys(data, known, lambda key: f"unknown training setting {key!r}: expected one of {', '.join(sorted(known))}")
        return cls(**data)


ProxyConfig = TrainConfig

# Learning rates are given per 256 images and scaled linearly with the batch size by `recipe`.
RECIPES: dict[str, dict[str, Any]] = {
    # MnasNet's reference recipe (REFERENCE.md): RMSProp decay 0.9, momentum 0.9, eps 1e-3,
    # wd 1e-5, lr 0.016 per 256 images, 5-epoch warm-up, then x0.97 every 2.4 epochs,
    # weight EMA 0.9999, label smoothing 0.1, BN momentum 0.01 (TF's 0.99); dropout comes from the
    # arch (0.2 for the zoo).
    "paper": dict(optimizer="rmsprop", bn_momentum=0.01, lr_per_256=0.016, momentum=0.9, rms_decay=0.9, eps=1e-3,
                  weight_decay=1e-5, warmup_epochs=5.0, schedule="exponential", decay_rate=0.97,
                  decay_epochs=2.4, ema_decay=0.9999, label_smoothing=0.1, batch_size=128, epochs=350),
    # Small data on a CPU: SGD with Nesterov momentum, 1-epoch warm-up, cosine to zero, no EMA
    # (an EMA of 0.9999 averages over more steps than a short run has).
    "fast": dict(optimizer="sgd", lr_per_256=0.2, momentum=0.9, nesterov=True, weight_decay=5e-5,
                 warmup_epochs=1.0, schedule="cosine", ema_decay=None, label_smoothing=0.1,
                 batch_size=128, epochs=30),
    # What `mnas search` trains each candidate with by default (its --epochs, --batch-size, --lr and
    # --threads defaults; tests/train/test_proxy_recipe.py keeps the two equal): 3 epochs of batch 32
    # at a fixed lr 0.05 (not scaled with the batch size, as the search's --lr is not), one thread.
    # With PROXY_VAL_FRACTION and `mnas.evaluate.trial_seed`, `mnas train ARCH --recipe proxy --seed S`
    # reproduces the accuracy `mnas search --seed S` recorded for ARCH.
    "proxy": dict(lr=0.05, batch_size=32, epochs=3.0, threads=1),
}

# The share of training data `mnas search` holds out for validation (its --val-fraction default).
PROXY_VAL_FRACTION = 0.2


def recipe(name: str, **overrides: Any) -> TrainConfig:
    """A named recipe with `overrides` (any TrainConfig field, or `lr_per_256`). For recipes given per
    256 images the learning rate scales linearly with the batch size (lr = lr_per_256 * batch_size /
    256) unless `lr` is given; "proxy" has a fixed lr, as the search's."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}: expected one of {', '.join(RECIPES)}")
    settings = dict(RECIPES[name])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    per_256 = settings.pop("lr_per_256", None)
    if "lr" not in settings:
        settings["lr"] = per_256 * settings["batch_size"] / 256
    return TrainConfig.from_dict(settings)


def auto_threads(max_threads: int = 4) -> int:
    """Training threads when none are given (the CLI's default): the cores this process may run on
    that the 1-minute load average leaves idle, at least 1 and at most `max_threads`.

    Why: torch's default (one thread per core) on a machine whose cores are busy makes its threads
    wait for each other at every op; a proxy run of MobileNetV2 x0.5 on a busy 2-core machine did
    43 img/s against 546 img/s on one thread (issue 13). Small CNNs at CIFAR sizes gain little
    beyond 4 threads, which is the cap (docs/design/inputs.md has the measurements)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(max_threads, cores, int(cores - busy + 0.5)))
