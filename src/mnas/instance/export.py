"""Export for deployment: the controller and one ONNX network per route, with a manifest.

Layout of the export directory::

    manifest.json        {"format": "mnas.instance.export/1", "input_size", "in_chans", "mean", "std",
                          "class_names", "skippable", "modules", "table" (latency table, for budgets),
                          "threshold", "controller": "controller.onnx",
                          "routes": {route text: "routes/<text>.onnx"}, "route_counts": {...}}
    controller.onnx      input (N, C, H, W) normalised image -> output (N, layers, 5) probabilities
    routes/<text>.onnx   input (N, C, H, W) -> logits (N, classes): only that route's modules

`mnas.instance.runner.InstanceRunner` runs it with NumPy and ONNX Runtime alone. A route the
controller picks at run time that was not exported runs on the nearest exported route (fewest
module switches apart); the runner counts those fallbacks.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable
from mnas.instance.metagraph import MetaGraph
from mnas.instance.routes import MODULES, parse_route
from mnas.latency.export import onnx_bytes
from mnas.train.checkpoint import atomic_write_text

__all__ = ["EXPORT_FORMAT", "export_instance"]

EXPORT_FORMAT = "mnas.instance.export/1"
_DYNAMIC = {"input": {0: "batch"}, "output": {0: "batch"}}


def export_instance(meta: MetaGraph, controller: Controller, routes: Iterable[str], out: str | Path, *,
                    table: LatencyTable, mean: list[float], std: list[float], class_names: list[str],
                    threshold: float = 0.5, max_routes: int | None = None) -> dict[str, Any]:
    """Write the controller and the routes (the `max_routes` most frequent of `routes`, all by default)
    to `out`; returns the manifest."""
    out = Path(out)
    counts = Counter(routes)
    if not counts:
        raise ValueError("no routes to export: pass the routes the controller chose on some images")
    chosen = [r for r, _ in counts.most_common(max_routes)]
    (out / "routes").mkdir(parents=True, exist_ok=True)
    cfg = meta.config
    shape = (1, cfg.in_chans, cfg.input_size, cfg.input_size)
    (out / "controller.onnx").write_bytes(onnx_bytes(controller.eval(), shape, dynamic_axes=_DYNAMIC))
    files = {}
    for text in chosen:
        net = meta.route_net(parse_route(text, meta.num_layers)).eval()
        files[text] = f"routes/{text}.onnx"
        (out / files[text]).write_bytes(onnx_bytes(net, shape, dynamic_axes=_DYNAMIC))
    manifest = {"format": EXPORT_FORMAT, "input_size": cfg.input_size, "in_chans": cfg.in_chans,
                "mean": [float(m) for m in mean], "std": [float(s) for s in std], "class_names": list(class_names),
                "num_layers": meta.num_layers, "skippable": meta.skippable, "modules": list(MODULES),
                "table": table.to_dict(), "threshold": threshold, "controller": "controller.onnx", "routes": files,
                "route_counts": {r: counts[r] for r in chosen}, "routes_seen": len(counts)}
    atomic_write_text(json.dumps(manifest, indent=2) + "\n", out / "manifest.json")
    return manifest
