"""Report data for an instance-aware model, as pure functions, and matplotlib renderers.

- `tradeoff_data`: accuracy vs average latency of the instance-aware model at several QoS settings,
  against single architectures (fixed routes of the same meta-graph, baselines such as MobileNetV2),
  with the single-architecture Pareto front and, per instance point, the best single architecture
  at no more latency;
- `route_distribution`: how often each route is used per class (the most frequent routes, the rest
  pooled as "other").

Renderers (`plot_tradeoff`, `plot_route_distribution`) draw on matplotlib's object API (Agg), as
`mnas.reports.plots` does; they need the 'report' extra.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mnas._util import require

__all__ = ["best_single_at", "plot_route_distribution", "plot_tradeoff", "route_distribution", "single_front",
           "tradeoff_data"]


def _point(p: dict[str, Any]) -> dict[str, Any]:
    for key in ("label", "accuracy", "latency_ms"):
        if key not in p:
            raise ValueError(f"point {p!r} lacks {key!r}: expected label, accuracy, latency_ms")
    return {"accuracy_se": 0.0, "latency_spread_ms": 0.0, **p}


def single_front(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The Pareto front (lower latency, higher accuracy) of single architectures, by latency."""
    front, best = [], -1.0
    for p in sorted((_point(p) for p in points), key=lambda p: (p["latency_ms"], -p["accuracy"])):
        if p["accuracy"] > best:
            front.append(p)
            best = p["accuracy"]
    return front


def best_single_at(points: Sequence[dict[str, Any]], latency_ms: float) -> dict[str, Any] | None:
    """The most accurate single architecture whose latency is at most `latency_ms` (None if none is)."""
    fits = [_point(p) for p in points if p["latency_ms"] <= latency_ms]
    return max(fits, key=lambda p: p["accuracy"]) if fits else None


def tradeoff_data(instance: Sequence[dict[str, Any]], singles: Sequence[dict[str, Any]],
                  baselines: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Everything the trade-off plot shows; per instance point the best single architecture at no
    more latency and the accuracy difference (instance minus single, in points of accuracy)."""
    inst = [_point(p) for p in instance]
    singles_ = [_point(p) for p in singles]
    compared = []
    for p in inst:
        best = best_single_at(singles_, p["latency_ms"])
        compared.append({**p, "best_single": best["label"] if best else None,
                         "best_single_accuracy": best["accuracy"] if best else None,
                         "accuracy_gain": (p["accuracy"] - best["accuracy"]) if best else None})
    return {"instance": compared, "singles": singles_, "front": single_front(singles_),
            "baselines": [_point(p) for p in baselines]}


def route_distribution(routes: Sequence[str], labels: Sequence[int], class_names: Sequence[str],
                       top: int = 8) -> dict[str, Any]:
    """Counts of the `top` most frequent routes per class, the rest pooled as ``other``."""
    if len(routes) != len(labels):
        raise ValueError(f"{len(routes)} routes but {len(labels)} labels: expected one route per image")
    common = [r for r, _ in Counter(routes).most_common(top)]
    columns = common + (["other"] if len(set(routes)) > len(common) else [])
    counts = [[0] * len(columns) for _ in class_names]
    index = {r: i for i, r in enumerate(common)}
    for route, label in zip(routes, labels, strict=True):
        counts[int(label)][index.get(route, len(columns) - 1)] += 1
    return {"routes": columns, "classes": list(class_names), "counts": counts, "distinct": len(set(routes)),
            "images": len(routes)}


def _figure(width: float = 8.0, height: float = 5.2) -> Any:
    require("matplotlib", "instance report plots")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def plot_tradeoff(data: dict[str, Any], path: str | Path, title: str = "Instance-aware vs single architectures") -> Path:
    """Accuracy vs average latency: single architectures, their front, baselines, instance points."""
    fig = _figure()
    ax = fig.add_subplot()
    singles, front = data["singles"], data["front"]
    ax.errorbar([p["latency_ms"] for p in singles], [100 * p["accuracy"] for p in singles],
                yerr=[100 * p["accuracy_se"] for p in singles], fmt="o", color="#7b8fc7", label="single architectures")
    ax.plot([p["latency_ms"] for p in front], [100 * p["accuracy"] for p in front], "-", color="#7b8fc7")
    for p in singles:
        ax.annotate(p["label"], (p["latency_ms"], 100 * p["accuracy"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    for p in data["baselines"]:
        ax.errorbar([p["latency_ms"]], [100 * p["accuracy"]], yerr=[100 * p["accuracy_se"]], fmt="s", color="#555555")
        ax.annotate(p["label"], (p["latency_ms"], 100 * p["accuracy"]), fontsize=7, xytext=(3, -9),
                    textcoords="offset points")
    inst = data["instance"]
    ax.errorbar([p["latency_ms"] for p in inst], [100 * p["accuracy"] for p in inst],
                xerr=[p["latency_spread_ms"] for p in inst], yerr=[100 * p["accuracy_se"] for p in inst],
                fmt="*", markersize=11, color="#e66101", label="instance-aware (QoS settings)")
    for p in inst:
        ax.annotate(p["label"], (p["latency_ms"], 100 * p["accuracy"]), fontsize=7, xytext=(4, 4),
                    textcoords="offset points", color="#e66101")
    ax.set_xlabel("average latency per image (ms, measured)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    path = Path(path)
    fig.savefig(path)
    return path


def plot_route_distribution(data: dict[str, Any], path: str | Path) -> Path:
    """Stacked bars: per class, the share of its images on each of the most frequent routes."""
    fig = _figure(9.0, 5.0)
    ax = fig.add_subplot()
    classes, counts = data["classes"], data["counts"]
    bottoms = [0.0] * len(classes)
    cmap = require("matplotlib", "instance report plots").colormaps["tab20"]
    for j, route in enumerate(data["routes"]):
        shares = [row[j] / max(1, sum(row)) for row in counts]
        label = route if len(route) <= 20 else route[:17] + "..."
        ax.bar(range(len(classes)), shares, bottom=bottoms, color=cmap(j % 20), label=label)
        bottoms = [b + s for b, s in zip(bottoms, shares, strict=True)]
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_ylabel("share of the class's images")
    ax.set_title(f"Routes per class ({data['distinct']} distinct routes over {data['images']} images)")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="route")
    path = Path(path)
    fig.savefig(path)
    return path
