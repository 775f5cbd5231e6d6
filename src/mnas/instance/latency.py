"""The per-module latency table the controller's reward uses, measured on the target backend.

Every module of every layer is timed alone at its input shape (batch 1), as InstaNAS profiles its
modules; so are the stem with the head (conv, pool, classifier) and the controller. A policy's
predicted latency is ``controller + stem_head + sum of the modules it runs`` (the default module
counted where a shape-changing layer has none on). The reward and the curriculum use the modules'
share only, as the authors' code does. `LatencyTable.from_macs` is a stand-in proportional to
multiply-adds (for tests and dry runs); its `backend` says so, and nothing reports it as measured.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mnas.instance.controller import Controller
from mnas.instance.metagraph import MetaGraph
from mnas.instance.qos import policy_ms
from mnas.instance.routes import fixed_routes
from mnas.latency.base import LatencyBackend, Protocol
from mnas.latency.export import calibrate_bn
from mnas.models.profile import count_macs

__all__ = ["LatencyTable", "build_table"]

FORMAT = "mnas.instance.latency/1"


@dataclass
class LatencyTable:
    """Milliseconds per (layer, module), for the stem with the head, and for the controller."""

    modules_ms: list[list[float]]
    stem_head_ms: float
    controller_ms: float
    skippable: list[bool]
    backend: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        table = np.asarray(self.modules_ms, dtype=float)
        if table.ndim != 2 or table.shape[0] != len(self.skippable) or not np.all(np.isfinite(table)):
            raise ValueError(f"latency table of shape {table.shape}: expected ({len(self.skippable)}, 5) finite numbers")

    @property
    def array(self) -> np.ndarray:
        return np.asarray(self.modules_ms, dtype=float)

    def policy_ms(self, policy: np.ndarray) -> np.ndarray:
        """(B,) modules' share of each policy's latency."""
        return policy_ms(policy, self.array, self.skippable)

    def route_ms(self, route: Sequence[int], total: bool = True) -> float:
        """Predicted latency of a route; with `total`, controller, stem and head included."""
        bits = np.asarray(route, dtype=np.int64)[None, :, None] >> np.arange(self.array.shape[1])
        share = float(self.policy_ms(bits & 1)[0])
        return share + (self.stem_head_ms + self.controller_ms if total else 0.0)

    def bounds(self) -> dict[str, float]:
        """Modules' share of the meta-graph's fixed routes: ``all``, ``k3e6`` (MobileNetV2's), ``min``."""
        routes = fixed_routes(self.skippable)
        return {name: self.route_ms(routes[name], total=False) for name in ("all", "k3e6", "min")}

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "modules_ms": self.modules_ms, "stem_head_ms": self.stem_head_ms,
                "controller_ms": self.controller_ms, "skippable": self.skippable, "backend": self.backend}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyTable:
        if data.get("format") != FORMAT:
            raise ValueError(f"not an instance latency table (format {data.get('format')!r}, expected {FORMAT!r})")
        return cls([list(map(float, r)) for r in data["modules_ms"]], float(data["stem_head_ms"]),
                   float(data["controller_ms"]), [bool(s) for s in data["skippable"]], dict(data.get("backend", {})))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> LatencyTable:
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_macs(cls, meta: MetaGraph, controller: Controller, ms_per_mmac: float = 0.01) -> LatencyTable:
        """A stand-in table proportional to multiply-adds (not a measurement)."""
        def ms(module: nn.Module, shape: tuple[int, ...]) -> float:
            return count_macs(module, (shape[2], shape[3]), shape[1]) / 1e6 * ms_per_mmac

        modules, stem_head = _units(meta)
        table = [[ms(m, s) for m, s in row] for row in modules]
        cfg = meta.config
        return cls(table, sum(ms(m, s) for m, s in stem_head), ms(controller, (1, cfg.in_chans, cfg.input_size,
                                                                              cfg.input_size)),
                   meta.skippable, {"backend": "macs", "ms_per_mmac": ms_per_mmac, "measured": False})


class _Head(nn.Module):
    def __init__(self, meta: MetaGraph):
        super().__init__()
        self.conv_head, self.classifier = copy.deepcopy(meta.conv_head), copy.deepcopy(meta.classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.conv_head(x).mean((2, 3)))


def _units(meta: MetaGraph) -> tuple[list[list[tuple[nn.Module, tuple[int, ...]]]], list[tuple[nn.Module, tuple]]]:
    cfg = meta.config
    modules = [[(layer.ops[str(i)], (1, s.in_chs, s.res, s.res)) for i in range(len(layer.ops))]
               for layer, s in zip(meta.layers, meta.shapes, strict=True)]
    res = cfg.final_res
    stem_head = [(meta.conv_stem, (1, cfg.in_chans, cfg.input_size, cfg.input_size)),
                 (_Head(meta), (1, meta.shapes[-1].out_chs, res, res))]
    return modules, stem_head


def build_table(meta: MetaGraph, controller: Controller, backend: LatencyBackend | None = None,
                protocol: Protocol | None = None, log: Any = None) -> LatencyTable:
    """Time every module, the stem with the head, and the controller on `backend` (default: ONNX
    Runtime, 1 thread) at batch 1. Each unit is a copy with batch norm calibrated on random data
    (`mnas.latency.export.calibrate_bn`), so no denormals skew the figures."""
    if backend is None:
        from mnas.latency.ort import OnnxRuntime

        backend = OnnxRuntime(threads=1, protocol=protocol or Protocol(max_time_s=1.0, target_rse=0.02))

    def ms(module: nn.Module, shape: tuple[int, ...]) -> float:
        unit = calibrate_bn(copy.deepcopy(module).float().to(memory_format=torch.contiguous_format), shape)
        return float(backend.measure_model(unit, shape).median_ms)

    modules, stem_head = _units(meta)
    table = []
    for i, row in enumerate(modules):
        table.append([ms(m, s) for m, s in row])
        if log:
            log(f"latency table: layer {i + 1}/{len(modules)} " + " ".join(f"{v:.3f}" for v in table[-1]) + " ms")
    cfg = meta.config
    stem_head_ms = sum(ms(m, s) for m, s in stem_head)
    controller_ms = ms(controller, (1, cfg.in_chans, cfg.input_size, cfg.input_size))
    return LatencyTable(table, stem_head_ms, controller_ms, meta.skippable,
                        {**backend.describe(), "measured": True, "batch_size": 1})
