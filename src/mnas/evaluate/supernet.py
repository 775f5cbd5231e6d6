"""`SupernetEvaluator`: inherited accuracy from a trained supernet, latency as for proxy training.

Each candidate is taken out of the supernet, its batch norm recalibrated on fixed training images,
and scored on the validation split (`mnas.oneshot.evaluate.evaluate_subnet`): seconds, not the
minutes of proxy training. Trials record ``accuracy_source = "supernet"``, so inherited accuracy is
never mistaken for trained accuracy. With ``metric="likelihood"`` the score the reward sees is the
inherited likelihood, exp(-mean cross-entropy) on the same images (the top-1 accuracy is kept beside
it as ``inherited_accuracy``): it ranked NAS-Bench-Macro better than top-1 (docs/design/nbmacro.md).
Latency is measured (or predicted) in the driver on the latency backend, exactly as `ProxyEvaluator`
does.

Workers keep the loaded supernet: a module-level cache keyed by the checkpoint's path and
modification time, so a process pool loads each checkpoint once per process, not once per trial.
Given a supernet object instead of a path, the job carries the object itself (free in-process,
pickled per trial by a process pool: pass a checkpoint path there).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnas.evaluate.base import Evaluator
from mnas.evaluate.proxy import ProxyEvaluator

__all__ = ["SupernetEvaluator", "evaluate_inherited"]

METRICS = ("accuracy", "likelihood")
_NETS: dict[tuple[str, int], Any] = {}


def _load(path: str) -> Any:
    key = (str(Path(path).resolve()), os.stat(path).st_mtime_ns)
    net = _NETS.get(key)
    if net is None:
        from mnas.oneshot.train import load_supernet

        _NETS.clear()  # one supernet per worker: a new checkpoint replaces the old one
        net = _NETS[key] = load_supernet(path)[0].eval()
    return net


def evaluate_inherited(net_or_path: Any, data: Any, arch: str, settings: dict[str, Any],
                       searched: str | None = None, quant: dict[str, Any] | None = None) -> dict[str, Any]:
    """Worker side: inherited accuracy of `arch` (plain values; crosses process boundaries). `searched`:
    the network the search asked for when `arch` is its stand-in in a narrower supernet (its params
    and MACs are reported). `quant`: also score the sub-network, BN recalibrated on the same images,
    in int8 (`mnas.evaluate.quantized.int8_scores`)."""
    import math

    from mnas.oneshot.evaluate import evaluate_subnet
    from mnas.oneshot.sampling import estimate_macs
    from mnas.space import as_arch

    started = time.perf_counter()
    settings = dict(settings)
    metric = settings.pop("metric", "accuracy")
    net = _load(net_or_path) if isinstance(net_or_path, (str, Path)) else net_or_path
    result = evaluate_subnet(net, arch, data, **settings)
    size = settings.get("input_size") or data.input_size
    out = {"ok": True, "accuracy": result.accuracy, "params": result.params,
           "macs": int(estimate_macs(as_arch(arch), size, data.num_classes, data.channels)),
           "train_seconds": time.perf_counter() - started, "val_loss": result.loss,
           "calibration_images": result.num_images, "calibrate_seconds": result.calibrate_seconds}
    if metric == "likelihood":  # the reward's score; top-1 kept beside it
        out.update(accuracy=math.exp(-result.loss), inherited_accuracy=result.accuracy, score_metric="likelihood")
    if searched is not None:
        from mnas.models import build_model, count_params

        out.update(params=count_params(build_model(as_arch(searched), data.num_classes, data.channels)),
                   macs=int(estimate_macs(as_arch(searched), size, data.num_classes, data.channels)), proxy_arch=arch)
    if quant:
        from mnas.evaluate.quantized import int8_scores

        out.update(int8_scores(_recalibrated(net, arch, data, settings, size), data, quant, result.accuracy, size))
        out["train_seconds"] = time.perf_counter() - started
    return out


def _recalibrated(net: Any, arch: str, data: Any, settings: dict[str, Any], size: int) -> Any:
    """The sub-network of `arch` with its BN statistics re-estimated on the images `evaluate_subnet` uses."""
    import numpy as np
    import torch

    from mnas.oneshot.evaluate import DEFAULT_CALIBRATION_IMAGES, calibration_indices, recalibrate_bn
    from mnas.train.augment import BatchTransform
    from mnas.train.datasets import NO_AUGMENT

    num_images = int(settings.get("num_images") or DEFAULT_CALIBRATION_IMAGES)
    batch = int(settings.get("batch_size") or 250)
    idx = calibration_indices(data, num_images, int(settings.get("seed") or 0))
    tf = BatchTransform(data.mean, data.std, NO_AUGMENT, size, "cpu", False)
    x = data.x_train[idx]
    with torch.no_grad():
        batches = [tf(torch.from_numpy(np.ascontiguousarray(x[i:i + batch])), train=False) for i in range(0, len(x), batch)]
    sub = net.subnet(arch).cpu()
    recalibrate_bn(sub, batches)
    return sub.eval()


class SupernetEvaluator(Evaluator):
    """Accuracy inherited from a supernet (a checkpoint path from `mnas supernet train`, or a
    `mnas.oneshot.Supernet`), latency on `latency` (any `mnas.latency` backend) in the driver.

    `num_images`: BN recalibration images (default `mnas.oneshot.evaluate.DEFAULT_CALIBRATION_IMAGES`),
    `seed`: which ones; `metric`: the score each trial hands the reward, "accuracy" (top-1 on the
    validation split) or "likelihood" (exp(-mean cross-entropy) on it, top-1 recorded beside it);
    `batch_size`, `threads`, `device`: how the evaluation runs (not part of the identity: they do not
    change the figures beyond float rounding).

    Width proxy: a search space of the supernet's class with the same decisions (the same choices in
    the same order) but other settings — typically a wider network than the supernet was trained at —
    is accepted by `check_space`: each candidate is then scored by the supernet's sub-network of the
    same tokens, while latency, parameters and MACs are the searched network's. A supernet at width
    0.5 thus ranks NAS-Bench-Macro's full-width networks (`benchmarks/nbmacro_search.py`)."""

    accuracy_source = "supernet"
    latency_in_driver = True

    def __init__(self, checkpoint_or_net: Any, data: Any, latency: Any, *, num_images: int | None = None,
                 seed: int = 0, batch_size: int = 250, threads: int | None = 1, device: str = "cpu",
                 score: str = "fp32", record_int8: bool = False, int8_runtime: str | None = None,
                 calibration: int = 100, metric: str = "accuracy") -> None:
        from mnas.oneshot.evaluate import DEFAULT_CALIBRATION_IMAGES
        from mnas.train.checkpoint import file_digest

        if data is None or latency is None:
            raise ValueError("supernet evaluation needs data= (a mnas.data Dataset) and latency= (a latency backend)")
        from mnas.evaluate.quantized import quant_settings

        if metric not in METRICS:
            raise ValueError(f"metric={metric!r}: expected {' or '.join(METRICS)}")
        if metric != "accuracy" and score == "int8":
            raise ValueError("the int8 score is a top-1 accuracy: score='int8' goes with metric='accuracy'")
        self.metric = metric
        self.quant = quant_settings(latency, score, record_int8, int8_runtime, calibration)  # as ProxyEvaluator
        self.data, self.latency = data, latency
        self.num_images = int(num_images or DEFAULT_CALIBRATION_IMAGES)
        self.seed, self.batch_size, self.threads, self.device = int(seed), int(batch_size), threads, device
        if isinstance(checkpoint_or_net, (str, Path)):
            path = Path(checkpoint_or_net)
            if not path.is_file():
                raise FileNotFoundError(f"supernet checkpoint not found: {path}")
            self.path: str | None = str(path)
            self.net = _load(self.path)  # validates the file now, not in the first trial
            self.digest = file_digest(path)
        else:
            self.path, self.net = None, checkpoint_or_net
            self.digest = None
        self.space = self.net.space
        self.search_space: Any = None  # set by check_space for a width proxy
        self._proxy = ProxyEvaluator(data, latency)  # latency and reference models exactly as proxy training

    @property
    def input_size(self) -> int:
        return int(self.data.input_size)

    def check_space(self, space: Any) -> None:
        classes = getattr(space, "num_classes", self.data.num_classes)
        if classes != self.data.num_classes:
            raise ValueError(f"the space is for {classes} classes but the data has {self.data.num_classes}")
        if type(space) is not type(self.space):
            raise ValueError(f"the search space is a {type(space).__name__}, the supernet's a {type(self.space).__name__}:"
                             " search the space the supernet was trained on")
        if space.settings() == self.space.settings():
            self.search_space = None
            return
        if [tuple(d.choices) for d in space.decisions] != [tuple(d.choices) for d in self.space.decisions]:
            raise ValueError("the search space differs from the supernet's: search the space the supernet was trained"
                             " on (the same --space, width, strides, head and options), or one with the same decisions")
        self.search_space = space  # width proxy: the same tokens in the supernet's space

    def measure_latency(self, arch: Any) -> tuple[float, float, dict[str, Any]]:
        return self._proxy.measure_latency(arch)

    def reference_latency(self, name: str, space: Any = None) -> float:
        return self._proxy.reference_latency(name, space)

    def settings(self) -> dict[str, Any]:
        out = {"num_images": self.num_images, "seed": self.seed, "batch_size": self.batch_size,
               "threads": self.threads, "device": self.device}
        if self.metric != "accuracy":
            out["metric"] = self.metric
        return out

    def job(self, arch: Any, seed: int | None = None) -> tuple[Callable[..., dict[str, Any]], tuple]:
        # `seed` (the trial's training seed) does not apply: nothing is trained, and the BN images
        # are the same for every candidate so that their accuracies are comparable.
        if self.search_space is not None:
            from mnas.space import as_arch

            stand_in = str(self.space.decode(self.search_space.encode(as_arch(arch))))
            args = (self.path or self.net, self.data, stand_in, self.settings(), str(arch))
        else:
            args = (self.path or self.net, self.data, str(arch), self.settings())
        if self.quant:
            args = args + ((None,) if len(args) == 4 else ()) + (dict(self.quant),)
        return evaluate_inherited, args

    def identity(self) -> dict[str, Any]:
        proxy = {} if self.search_space is None else {"width_proxy_for": self.search_space.settings()}
        ident = {"kind": "supernet", "latency": self.latency.key(), "supernet": self.digest or "in-memory", **proxy,
                 "space": self.net.config(), "num_images": self.num_images, "seed": self.seed,
                 "data": {"num_classes": self.data.num_classes, "input_size": self.data.input_size,
                          "channels": self.data.channels, "name": getattr(self.data, "name", None)}}
        if self.quant and self.quant["score"] == "int8":  # only then do scores differ (float studies resume as before)
            ident["score"] = dict(self.quant)
        if self.metric != "accuracy":  # likewise: a study scored on top-1 keeps its identity
            ident["metric"] = self.metric
        return ident

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "metric": self.metric, "checkpoint": self.path,
                "latency_backend": self.latency.describe(), "accuracy_source": self.accuracy_source}

    def __repr__(self) -> str:
        return f"SupernetEvaluator({self.path or type(self.net).__name__!r}, latency={self.latency!r})"
