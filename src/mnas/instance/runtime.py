"""Routed inference in PyTorch, evaluation of the instance-aware model and of fixed routes, and
latency measured on the target backend per route.

`RoutedRuntime` computes the controller's policies for a batch, groups the images by route and
runs each group through a plain network holding only that route's modules (cached per route):
no module an image does not use is computed. `evaluate_instance` scores a split under a QoS knob;
`measure_routes` exports each route's network (and the controller) to ONNX and times it on the
backend at batch 1, so the per-image latency is controller + route, measured.
"""

from __future__ import annotations

import copy
import math
from collections import Counter, OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable
from mnas.instance.metagraph import MetaGraph, RoutedNet
from mnas.instance.qos import budget_policy, check_qos, threshold_policy
from mnas.instance.routes import policy_bits, route_string
from mnas.latency.base import LatencyBackend
from mnas.train.augment import BatchTransform
from mnas.train.datasets import NO_AUGMENT, Dataset

__all__ = ["RoutedRuntime", "evaluate_instance", "evaluate_route", "measure_routes", "recalibrate_bn", "route_policies"]


def route_policies(probs: np.ndarray, table: LatencyTable, threshold: float | None = None,
                   budget_ms: float | None = None) -> np.ndarray:
    """(B, L, 5) probabilities -> (B, L) canonical route masks under the QoS knob (threshold 0.5 by
    default; `budget_ms` is a budget on the whole predicted latency, controller, stem and head included)."""
    check_qos(threshold, budget_ms)
    if budget_ms is not None:
        share = budget_ms - table.stem_head_ms - table.controller_ms
        policy = budget_policy(probs, table.array, table.skippable, max(share, 1e-9))
    else:
        policy = threshold_policy(probs, 0.5 if threshold is None else threshold)
    return policy_bits(policy, table.skippable)


def _transform(data: Dataset, size: int | None = None) -> BatchTransform:
    return BatchTransform(data.mean, data.std, NO_AUGMENT, size)


@torch.no_grad()
def evaluate_instance(meta: MetaGraph, controller: Controller, data: Dataset, split: str, table: LatencyTable,
                      transform: BatchTransform | None = None, threshold: float | None = None,
                      budget_ms: float | None = None, batch_size: int = 500) -> dict[str, Any]:
    """Accuracy (with its binomial standard error), predicted latency and routes on a split.

    Returns per image ``routes`` (text), ``correct``, ``labels`` and ``latency_ms`` (the table's
    prediction, controller included) besides the summary figures."""
    x_all, y_all = data.split(split)
    if not len(y_all):
        raise ValueError(f"{data.name}: the {split} split is empty")
    transform = transform or _transform(data)
    was = meta.training, controller.training
    meta.eval(), controller.eval()
    routes, correct = [], []
    try:
        for i in range(0, len(y_all), batch_size):
            x = transform(torch.from_numpy(np.ascontiguousarray(x_all[i:i + batch_size])), train=False)
            bits = route_policies(controller(x).float().cpu().numpy(), table, threshold, budget_ms)  # (B, L)
            policy = torch.from_numpy(((bits[:, :, None] >> np.arange(5)) & 1).astype(bool))
            pred = meta(x, policy).argmax(1).cpu().numpy()
            correct.append(pred == y_all[i:i + batch_size])
            routes.extend(route_string(b) for b in bits)
    finally:
        meta.train(was[0]), controller.train(was[1])
    correct_arr = np.concatenate(correct)
    latency = np.array([_route_ms(table, r) for r in routes])
    acc = float(correct_arr.mean())
    return {"split": split, "n": int(len(correct_arr)), "accuracy": acc,
            "accuracy_se": math.sqrt(acc * (1 - acc) / len(correct_arr)),
            "mean_latency_ms": float(latency.mean()), "distinct_routes": len(set(routes)),
            "threshold": threshold if budget_ms is None else None, "budget_ms": budget_ms,
            "routes": routes, "correct": correct_arr, "labels": np.asarray(y_all), "latency_ms": latency}


def _route_ms(table: LatencyTable, text: str) -> float:
    from mnas.instance.routes import parse_route

    return table.route_ms(parse_route(text))


def recalibrate_bn(net: nn.Module, data: Dataset, images: int = 2000, batch_size: int = 200, seed: int = 0) -> nn.Module:
    """Batch-norm statistics of `net` recomputed on `images` training images (OFA's recipe), in place; eval mode."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    transform = _transform(data)
    idx = np.random.default_rng(seed).permutation(len(data.y_train))[:images]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    net.train()
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            net(transform(torch.from_numpy(data.x_train[np.sort(idx[i:i + batch_size])]), train=False))
    return net.eval()


@torch.no_grad()
def evaluate_route(meta: MetaGraph, route: Iterable[int], data: Dataset, split: str = "test",
                   recalibrate: int = 2000, batch_size: int = 500) -> dict[str, Any]:
    """One route as a single architecture for every image: accuracy (and s.e.) of its plain network,
    after recomputing batch-norm statistics on `recalibrate` training images (0: the meta-graph's)."""
    net = meta.route_net(tuple(route))
    if recalibrate:
        recalibrate_bn(net, data, recalibrate)
    net.eval()
    transform = _transform(data)
    x_all, y_all = data.split(split)
    correct = 0
    for i in range(0, len(y_all), batch_size):
        x = transform(torch.from_numpy(np.ascontiguousarray(x_all[i:i + batch_size])), train=False)
        correct += int((net(x).argmax(1).numpy() == y_all[i:i + batch_size]).sum())
    acc = correct / len(y_all)
    return {"route": route_string(net.route), "n": len(y_all), "accuracy": acc,
            "accuracy_se": math.sqrt(acc * (1 - acc) / len(y_all))}


class RoutedRuntime:
    """Instance-aware inference in PyTorch: per batch, the controller's routes, images grouped by
    route, each group through that route's plain network (an LRU cache of `max_nets` networks)."""

    def __init__(self, meta: MetaGraph, controller: Controller, table: LatencyTable, threshold: float | None = None,
                 budget_ms: float | None = None, max_nets: int = 256):
        check_qos(threshold, budget_ms)
        self.meta, self.controller, self.table = meta.eval(), controller.eval(), table
        self.threshold, self.budget_ms, self.max_nets = threshold, budget_ms, max_nets
        self._nets: OrderedDict[tuple[int, ...], RoutedNet] = OrderedDict()
        self.route_counts: Counter[str] = Counter()

    def net(self, route: tuple[int, ...]) -> RoutedNet:
        net = self._nets.get(route)
        if net is None:
            net = self._nets[route] = self.meta.route_net(route).eval()
            while len(self._nets) > self.max_nets:
                self._nets.popitem(last=False)
        self._nets.move_to_end(route)
        return net

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
        """Logits (B, classes) and each image's route text, for a normalised batch (B, C, H, W)."""
        bits = route_policies(self.controller(x).float().numpy(), self.table, self.threshold, self.budget_ms)
        logits: torch.Tensor | None = None
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, row in enumerate(bits):
            groups.setdefault(tuple(int(b) for b in row), []).append(i)
        for route, members in groups.items():
            idx = torch.tensor(members)
            y = self.net(route)(x.index_select(0, idx))
            if logits is None:
                logits = y.new_zeros((x.shape[0], y.shape[1]))
            logits[idx] = y
        texts = [route_string(r) for r in bits]
        self.route_counts.update(texts)
        return logits, texts


def measure_routes(meta: MetaGraph, controller: Controller, routes: Iterable[str],
                   backend: LatencyBackend | None = None, log: Any = None) -> dict[str, Any]:
    """Median batch-1 latency of the controller and of every route's network on `backend` (default
    ONNX Runtime, 1 thread), each exported to ONNX as the runner would run it."""
    from mnas.instance.routes import parse_route
    from mnas.latency.base import Protocol
    from mnas.latency.export import calibrate_bn

    if backend is None:
        from mnas.latency.ort import OnnxRuntime

        backend = OnnxRuntime(threads=1, protocol=Protocol(max_time_s=1.0, target_rse=0.02))
    cfg = meta.config
    shape = (1, cfg.in_chans, cfg.input_size, cfg.input_size)
    # Weights as trained (batch-norm folded in the export); calibrate only the controller copy if untrained
    # statistics could hold denormals -- trained ones do not.
    ctrl = backend.measure_model(copy.deepcopy(controller).eval(), shape)
    out = {"controller_ms": ctrl.median_ms, "controller_iqr_ms": ctrl.iqr_ms, "routes": {}, "backend": backend.describe()}
    unique = list(dict.fromkeys(routes))
    for k, text in enumerate(unique, 1):
        net = meta.route_net(parse_route(text, meta.num_layers)).eval()
        if not any(isinstance(m, nn.BatchNorm2d) and m.num_batches_tracked > 0 for m in net.modules()):
            calibrate_bn(net, shape)  # an untrained meta-graph (tests): keep denormals out of the timing
        res = backend.measure_model(net, shape)
        out["routes"][text] = {"median_ms": res.median_ms, "iqr_ms": res.iqr_ms, "n": res.n}
        if log and (k % 10 == 0 or k == len(unique)):
            log(f"measured {k}/{len(unique)} routes")
    return out
