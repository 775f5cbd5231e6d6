"""Layer 4: the one place that combines model, latency, training and reward for a candidate.

Latency is measured by the driver (one device, measurements serialised, results cached by
architecture); training runs wherever the executor puts it, as `train_candidate`, a top-level
function that pickles to a process pool or a Ray worker. A user-defined evaluator
(`callable(arch) -> {"accuracy": ..., "latency_ms": ..., ...}`) replaces both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mnas.space import Arch, as_arch, get_arch, is_zoo_name
from mnas.space.zoo import adapt_strides

__all__ = ["Evaluator", "UserEvaluator", "check_user_result", "resolve_reference", "train_candidate"]


def train_candidate(arch: str, data: Any, config: Any) -> dict[str, Any]:
    """Worker side: build `arch` for `data`, count params and MACs, train it on the proxy task.

    Returns plain values (it crosses process boundaries). A model that fails to train (NaN loss)
    comes back with ``ok=False`` and the reason; an exception propagates to the driver, which
    records the trial as failed with that exception's message.
    """
    from mnas.models import build_model, count_macs, count_params
    from mnas.train import train_proxy

    started = time.perf_counter()
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    params, macs = count_params(model), count_macs(model, data.input_size, data.channels)
    result = train_proxy(model, data, config)
    return {
        "ok": result.ok, "accuracy": result.accuracy, "failure": result.failure, "params": params, "macs": macs,
        "train_seconds": time.perf_counter() - started, "val_loss": result.loss,
        "images_per_second": result.images_per_second, "truncated": result.truncated,
    }


@dataclass
class Evaluator:
    """The built-in evaluation: latency on `latency` (a LatencyBackend) in the driver, accuracy from
    proxy training on `data` with `config` (a TrainConfig) in a worker."""

    data: Any
    latency: Any
    config: Any

    @property
    def input_size(self) -> int:
        return int(self.config.input_size or self.data.input_size)

    def measure_latency(self, arch: Arch) -> tuple[float, float, dict[str, Any]]:
        """(median ms, seconds spent, details) for `arch` at the data's resolution and classes."""
        started = time.perf_counter()
        result = self.latency.measure(arch, self.input_size, self.data.num_classes, in_chans=self.data.channels)
        details = {"latency_cv": _finite_or_none(result.cv), "latency_iqr_ms": _finite_or_none(result.iqr_ms)}
        return float(result.median_ms), time.perf_counter() - started, details

    def job(self, arch: Arch) -> tuple[Callable[..., dict[str, Any]], tuple]:
        return train_candidate, (str(arch), self.data, self.config)

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "latency": self.latency.describe()}

    def identity(self) -> dict[str, Any]:
        """What must not change when a study is resumed: trials measured or trained otherwise are not
        comparable. Thread counts and the device do not change results, so they are left out; runtime
        versions are recorded by `describe` but not compared."""
        proxy = {k: v for k, v in self.config.to_dict().items() if k not in ("threads", "device", "eval_batch_size")}
        return {"kind": "builtin", "latency": self.latency.key(), "proxy": proxy,
                "data": {"num_classes": self.data.num_classes, "input_size": self.data.input_size,
                         "channels": self.data.channels, "name": getattr(self.data, "name", None)}}


@dataclass
class UserEvaluator:
    """Wraps `fn(arch) -> {"accuracy", "latency_ms", ...}`; it runs wherever the executor puts it
    (for a process pool or Ray, `fn` must be picklable: define it at module level)."""

    fn: Callable[[Arch], Mapping[str, Any]]

    def job(self, arch: Arch) -> tuple[Callable[..., dict[str, Any]], tuple]:
        return _run_user_evaluator, (self.fn, str(arch))

    def describe(self) -> dict[str, Any]:
        return self.identity()

    def identity(self) -> dict[str, Any]:
        return {"kind": "user", "callable": getattr(self.fn, "__qualname__", repr(self.fn))}


def _run_user_evaluator(fn: Callable[[Arch], Mapping[str, Any]], arch: str) -> dict[str, Any]:
    started = time.perf_counter()
    result = check_user_result(fn(as_arch(arch)))
    result.setdefault("train_seconds", time.perf_counter() - started)
    result["ok"] = True
    return result


def check_user_result(result: Any) -> dict[str, Any]:
    """Validate what a user-defined evaluator returned; ValueError saying what is wrong."""
    if not isinstance(result, Mapping):
        raise ValueError(f"the evaluator returned {type(result).__name__}: expected a dict with 'accuracy' and 'latency_ms'")
    result = dict(result)
    for key, lo, hi in (("accuracy", 0.0, 1.0), ("latency_ms", 0.0, math.inf)):
        value = result.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"the evaluator's {key!r} is {value!r}: expected a finite number")
        if not lo <= value <= hi or (key == "latency_ms" and value <= 0):
            raise ValueError(f"the evaluator's {key!r} = {value!r} is out of range: expected "
                             + ("a fraction in [0, 1]" if key == "accuracy" else "milliseconds > 0"))
        result[key] = float(value)
    return result


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def resolve_reference(name: str, latency: Any, input_size: int, num_classes: int, in_chans: int = 3) -> float:
    """Latency (ms) of a zoo model on `latency`, adapted to `input_size` by the space's stride rule,
    so that a target such as "mobilenetv2" means "as fast as MobileNetV2 here"."""
    if not is_zoo_name(name):
        raise ValueError(f"unknown reference model {name!r} in the target: expected a zoo name (see 'mnas models')")
    if latency is None:
        raise ValueError(f"a target relative to {name!r} needs a latency backend to measure it; give a target in ms")
    arch = adapt_strides(get_arch(name), input_size)
    return float(latency.measure(arch, input_size, num_classes, in_chans=in_chans).median_ms)
