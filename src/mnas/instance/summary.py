"""The figures of one instance-aware run, for `mnas report RUN_DIR`: computed once, then rendered.

`summarize_run` evaluates a trained model (``instance.pt`` of `mnas instance train --out`) on a split:

- the instance-aware model at several QoS settings (threshold 0.5 and latency budgets);
- the fixed routes of the same meta-graph as single architectures (every module, each module type
  everywhere, the smallest route), each with batch norm recalibrated on training images;
- baselines the run directory lists in ``baselines.json`` (``[{"label", "accuracy", "latency_ms"}, ...]``,
  e.g. MobileNetV2 trained alike, as `benchmarks/instance.py` writes it);
- routes per class at the first setting.

Latency is measured (ONNX Runtime, 1 thread, batch 1: controller plus each route's network, averaged
over a uniform sample of `measure` images, with its standard error) or, with ``measure=0``, the
latency table's prediction; the summary says which (``latency_source``).

`write_instance_report` renders a summary: ``tradeoff.png``, ``routes_per_class.png``,
``summary.json`` and ``index.html`` (images embedded).
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable
from mnas.instance.metagraph import MetaGraph
from mnas.instance.report import plot_route_distribution, plot_tradeoff, route_distribution, tradeoff_data
from mnas.instance.routes import fixed_routes, route_string
from mnas.instance.runtime import evaluate_instance, evaluate_route, measure_routes
from mnas.train.datasets import Dataset

__all__ = ["BASELINES", "default_budgets", "summarize_run", "write_instance_report"]

BASELINES = "baselines.json"
_BUDGET_FRACTIONS = (1.0, 0.8, 0.6)


def default_budgets(table: LatencyTable, skippable: list[bool]) -> list[float]:
    """Three latency budgets (table ms, controller included): 1.0, 0.8 and 0.6 x the k3e6 route
    (MobileNetV2's modules everywhere)."""
    k3e6 = table.route_ms(fixed_routes(skippable)["k3e6"])
    return [f * k3e6 for f in _BUDGET_FRACTIONS]


def read_baselines(run_dir: str | Path) -> list[dict[str, Any]]:
    """The baselines listed in RUN_DIR/baselines.json (none when the file is absent)."""
    path = Path(run_dir) / BASELINES
    if not path.is_file():
        return []
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not JSON ({exc}): expected a list of {{label, accuracy, latency_ms}}") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"label", "accuracy", "latency_ms"} <= set(r)
                                             for r in rows):
        raise ValueError(f"{path}: expected a list of {{label, accuracy, latency_ms}} objects")
    return rows


def summarize_run(meta: MetaGraph, controller: Controller, table: LatencyTable, data: Dataset, *,
                  split: str = "test", budgets_ms: list[float] | None = None, measure: int = 60,
                  recalibrate: int = 2000, baselines: list[dict[str, Any]] = (), singles: list[str] | None = None,
                  seed: int = 0, log: Any = None) -> dict[str, Any]:
    """Every figure of the report (see the module docstring); plain JSON types only. `singles`: the
    fixed routes to evaluate as single architectures, by label (default all of `fixed_routes`)."""
    fixed = fixed_routes(meta.skippable)
    unknown = sorted(set(singles or ()) - set(fixed))
    if unknown:
        raise ValueError(f"unknown fixed route {unknown[0]!r}: expected some of {', '.join(fixed)}")
    budgets = list(budgets_ms) if budgets_ms else default_budgets(table, meta.skippable)
    settings = [("threshold 0.5", {"threshold": 0.5})] + [(f"budget {b:.3g} ms", {"budget_ms": b}) for b in budgets]
    n = len(data.split(split)[1])
    sample = np.random.default_rng(seed).permutation(n)[:measure] if measure else np.arange(0)
    measured: dict[str, float] = {}
    ctrl_ms = table.controller_ms

    def measure_all(routes: list[str]) -> None:
        nonlocal ctrl_ms
        todo = [r for r in dict.fromkeys(routes) if r not in measured]
        if todo:
            lat = measure_routes(meta, controller, todo, log=log)
            measured.update({r: v["median_ms"] for r, v in lat["routes"].items()})
            ctrl_ms = lat["controller_ms"]

    points, dist = [], None
    for label, qos in settings:
        ev = evaluate_instance(meta, controller, data, split, table, **qos)
        if measure:
            measure_all([ev["routes"][i] for i in sample])
            per = np.array([ctrl_ms + measured[ev["routes"][i]] for i in sample])
        else:
            per = np.asarray(ev["latency_ms"])
        mean = float(per.mean())
        points.append({"label": label, **qos, "accuracy": ev["accuracy"], "accuracy_se": ev["accuracy_se"],
                       "latency_ms": mean, "latency_se_ms": float(per.std(ddof=1) / math.sqrt(len(per))) if len(per) > 1
                       else 0.0, "latency_spread_ms": float(per.std()), "latency_sample": int(len(per)),
                       "predicted_ms": ev["mean_latency_ms"], "distinct_routes": ev["distinct_routes"],
                       "controller_ms": ctrl_ms, "controller_share": ctrl_ms / mean if mean > 0 else None})
        if dist is None:
            dist = route_distribution(ev["routes"], ev["labels"].tolist(), list(data.class_names), top=6)
    single_points = []
    for label, route in fixed.items():
        if singles is not None and label not in singles:
            continue
        r = evaluate_route(meta, route, data, split, recalibrate=min(recalibrate, len(data.y_train)))
        if measure:
            measure_all([r["route"]])
        lat = measured[r["route"]] if measure else table.route_ms(route) - table.controller_ms
        single_points.append({"label": label, "route": r["route"], "accuracy": r["accuracy"], "accuracy_se": r["accuracy_se"],
                        "latency_ms": lat, "predicted_ms": table.route_ms(route) - table.controller_ms})
    return {"split": split, "n": n, "latency_source": "onnxruntime (1 thread, batch 1)" if measure else "table",
            "latency_sample": int(len(sample)) if measure else n, "table_backend": table.backend.get("backend"),
            "controller_ms": ctrl_ms, "tradeoff": tradeoff_data(points, single_points, list(baselines)),
            "route_distribution": dist, "routes_of": {k: route_string(v) for k, v in fixed.items()}}


def write_instance_report(summary: dict[str, Any], out: str | Path, title: str = "mnas instance-aware run") -> dict:
    """Write ``tradeoff.png``, ``routes_per_class.png``, ``summary.json`` and ``index.html`` into `out`;
    the written paths by kind."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"tradeoff": str(plot_tradeoff(summary["tradeoff"], out / "tradeoff.png")),
             "routes": str(plot_route_distribution(summary["route_distribution"], out / "routes_per_class.png")),
             "json": str(out / "summary.json"), "html": str(out / "index.html")}
    Path(files["json"]).write_text(json.dumps(summary, indent=1))
    Path(files["html"]).write_text(_html(summary, files, title))
    return files


def _html(s: dict[str, Any], files: dict[str, str], title: str) -> str:
    def img(path: str, alt: str) -> str:
        return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()}">'

    def row(cells: list[str]) -> str:
        return "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"

    t = s["tradeoff"]
    inst = [row([p["label"], f"{100 * p['accuracy']:.2f} ± {100 * p['accuracy_se']:.2f}",
                 f"{p['latency_ms']:.3f} ± {p['latency_se_ms']:.3f}", str(p["distinct_routes"]),
                 f"{100 * p['controller_share']:.1f}%" if p["controller_share"] is not None else "-",
                 f"{p['best_single']} ({p['accuracy_gain'] * 100:+.2f} pt)" if p["best_single"] else "none as fast"])
            for p in t["instance"]]
    single = [row([p["label"], f"{100 * p['accuracy']:.2f} ± {100 * p['accuracy_se']:.2f}", f"{p['latency_ms']:.3f}"])
              for p in sorted(t["singles"] + t["baselines"], key=lambda p: p["latency_ms"])]
    head = "<tr>" + "".join(f"<th>{h}</th>" for h in ("setting", "accuracy %", "latency ms", "routes", "controller",
                                                         "best single at <= latency")) + "</tr>"
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto}td,th{padding:2px 8px;text-align:left}"
            "img{max-width:100%}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><p>{s['split']} split, {s['n']} images; latency: {html.escape(s['latency_source'])}"
            f" (sample {s['latency_sample']}); controller {s['controller_ms']:.3f} ms</p>"
            f"<h2>Instance-aware model</h2><table>{head}{''.join(inst)}</table>"
            f"<h2>Single architectures</h2><table><tr><th>architecture</th><th>accuracy %</th><th>latency ms</th></tr>"
            f"{''.join(single)}</table>{img(files['tradeoff'], 'accuracy vs latency')}"
            f"<h2>Routes per class</h2>{img(files['routes'], 'routes per class')}</body></html>\n")
