"""`ProxyEvaluator`: the built-in evaluation — latency on a backend in the driver, accuracy from
proxy training on data in a worker (`train_candidate`, a top-level function that pickles)."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from typing import Any

from mnas.evaluate.base import Evaluator
from mnas.space import Arch, get_arch, is_zoo_name
from mnas.space.zoo import for_space

__all__ = ["ProxyEvaluator", "resolve_reference", "train_candidate"]


def train_candidate(arch: str, data: Any, config: Any, seed: int | None = None,
                    quant: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker side: build `arch` for `data`, count params and MACs, train it on the proxy task.

    With `seed`, weights, data order, augmentation and dropout are all seeded from it (it replaces
    `config.seed`), so the same architecture and seed give the same accuracy on CPU. Returns plain
    values (it crosses process boundaries). A model that fails to train (NaN loss) comes back with
    ``ok=False`` and the reason; an exception propagates to the driver, which fails the trial.

    `quant` ({"runtime", "calibration", "score"}): after training, the network is quantized to int8
    for that runtime and scored there too (`mnas.evaluate.quantized`); ``accuracy_fp32`` and
    ``accuracy_int8`` are returned (the trial keeps them) and ``accuracy`` is the one `score` names.
    """
    from mnas._util import seed_everything
    from mnas.models import build_model, count_macs, count_params
    from mnas.train import train_proxy

    started = time.perf_counter()
    if seed is not None:
        config = dataclasses.replace(config, seed=int(seed))
    seed_everything(int(getattr(config, "seed", 0) or 0))  # weight init; the trainer reseeds the rest
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    params, macs = count_params(model), count_macs(model, data.input_size, data.channels)
    result = train_proxy(model, data, config)
    out = {
        "ok": result.ok, "accuracy": result.accuracy, "failure": result.failure, "params": params, "macs": macs,
        "train_seconds": time.perf_counter() - started, "val_loss": result.loss,
        "images_per_second": result.images_per_second, "truncated": result.truncated,
    }
    if quant and result.ok:
        from mnas.evaluate.quantized import int8_scores

        out.update(int8_scores(model, data, quant, result.accuracy, config.input_size or data.input_size))
        out["train_seconds"] = time.perf_counter() - started
    return out


class ProxyEvaluator(Evaluator):
    """Latency of each candidate on `latency` (a `mnas.latency` backend: ONNX Runtime, PyTorch, a
    device server or a lookup table), measured in the driver; accuracy from proxy training on `data`
    (a `mnas.data` Dataset) with `proxy` (a `TrainConfig`; default `mnas.train.ProxyConfig()`).

    `score="int8"`: after training, each candidate is quantized to int8 (static, per-channel, calibrated
    on `calibration` training images) for the latency backend's runtime (`int8_runtime` overrides it)
    and scored there; the reward uses that accuracy and the trial also keeps the float one.
    `record_int8=True` with ``score="fp32"`` records both and rewards the float one."""

    accuracy_source = "proxy"
    latency_in_driver = True

    def __init__(self, data: Any, latency: Any, proxy: Any = None, *, score: str = "fp32", record_int8: bool = False,
                 int8_runtime: str | None = None, calibration: int = 100) -> None:
        if data is None or latency is None:
            raise ValueError("proxy evaluation needs data= (a mnas.data Dataset) and latency= (a latency backend)")
        from mnas.evaluate.quantized import quant_settings

        self.quant = quant_settings(latency, score, record_int8, int8_runtime, calibration)
        if proxy is None:
            from mnas.train import ProxyConfig

            proxy = ProxyConfig()
        self.data, self.latency, self.config = data, latency, proxy

    @property
    def input_size(self) -> int:
        return int(self.config.input_size or self.data.input_size)

    def check_space(self, space: Any) -> None:
        classes = getattr(space, "num_classes", self.data.num_classes)
        if classes != self.data.num_classes:
            raise ValueError(f"the space is for {classes} classes but the data has {self.data.num_classes}")

    def measure_latency(self, arch: Arch) -> tuple[float, float, dict[str, Any]]:
        """(median ms, seconds spent, details) for `arch` at the data's resolution and classes."""
        started = time.perf_counter()
        result = self.latency.measure(arch, self.input_size, self.data.num_classes, in_chans=self.data.channels)
        details = {"latency_cv": _finite_or_none(result.cv), "latency_iqr_ms": _finite_or_none(result.iqr_ms)}
        return float(result.median_ms), time.perf_counter() - started, details

    def reference_latency(self, name: str, space: Any = None) -> float:
        return resolve_reference(name, self.latency, self.input_size, self.data.num_classes, self.data.channels,
                                 strides=getattr(space, "strides", None))

    def job(self, arch: Arch, seed: int | None = None) -> tuple[Callable[..., dict[str, Any]], tuple]:
        if self.quant:
            return train_candidate, (str(arch), self.data, self.config, seed, dict(self.quant))
        return train_candidate, (str(arch), self.data, self.config, seed)

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "latency": self.latency.describe(), "accuracy_source": self.accuracy_source}

    def identity(self) -> dict[str, Any]:
        """What must not change when a study is resumed: trials measured or trained otherwise are not
        comparable. Thread counts and the device do not change results, so they are left out; runtime
        versions are recorded by `describe` but not compared. (Unchanged since the first studies, so
        they still resume.)"""
        proxy = {k: v for k, v in self.config.to_dict().items() if k not in ("threads", "device", "eval_batch_size")}
        ident = {"kind": "builtin", "latency": self.latency.key(), "proxy": proxy,
                 "data": {"num_classes": self.data.num_classes, "input_size": self.data.input_size,
                          "channels": self.data.channels, "name": getattr(self.data, "name", None)}}
        if self.quant and self.quant["score"] == "int8":  # only then do scores differ (fp32 studies resume as before)
            ident["score"] = dict(self.quant)
        return ident

    def __repr__(self) -> str:
        return f"ProxyEvaluator(data={getattr(self.data, 'name', '?')!r}, latency={self.latency!r})"


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def resolve_reference(name: str, latency: Any, input_size: int, num_classes: int, in_chans: int = 3,
                      strides: Any = None) -> float:
    """Latency (ms) of a zoo model on `latency`, laid out as the space's candidates are
    (`mnas.space.zoo.for_space`: the space's `strides`, else the stride rule for `input_size`), so
    that a target such as "mobilenetv2" means "as fast as MobileNetV2 here"."""
    if not is_zoo_name(name):
        raise ValueError(f"unknown reference model {name!r} in the target: expected a zoo name (see 'mnas models')")
    if latency is None:
        raise ValueError(f"a target relative to {name!r} needs a latency backend to measure it; give a target in ms")
    arch = for_space(get_arch(name), input_size, strides)
    return float(latency.measure(arch, input_size, num_classes, in_chans=in_chans).median_ms)
