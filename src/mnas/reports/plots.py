"""Renderers: `ParetoData`, `HistoryData`, a gradient search's weights and the deployment data
(`mnas.reports.deployment`) to PNG images with matplotlib (the 'report' extra).

Figures are drawn on the object API with the Agg canvas (`matplotlib.figure.Figure`), never
through pyplot: no global figure state, no GUI backend, safe from any thread.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnas._util import require
from mnas.reports.data import HistoryData, ParetoData

__all__ = ["plot_alphas", "plot_deployment", "plot_history", "plot_pareto"]

# Colour-blind-safe pairs (ColorBrewer PuOr / RdBu).
_TRIAL, _FRONT, _TARGET, _BEST, _FAILED = "#7b8fc7", "#e66101", "#b2182b", "#fdb863", "#d7301f"
_DPI = 130


def _figure(width: float = 8.0, height: float = 5.2) -> Any:
    require("matplotlib", "mnas report")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=_DPI)
    return path


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=13, color="0.45",
            bbox={"boxstyle": "round,pad=0.4", "fc": "white", "ec": "0.8"}, zorder=10)


def _counts(n_complete: int, n_failed: int, n_running: int) -> str:
    parts = [f"{n_complete} complete"]
    if n_failed:
        parts.append(f"{n_failed} failed (not plotted)")
    if n_running:
        parts.append(f"{n_running} running")
    return ", ".join(parts)


def plot_pareto(data: ParetoData, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Accuracy (%) against latency (ms): every trial, the front as a step line, the target and the
    best trial under it annotated. Returns the PNG's path."""
    fig = _figure()
    ax = fig.add_subplot()
    pts = data.points
    score = "Inherited likelihood" if data.score == "likelihood" else "Accuracy"
    ax.set_title(title or f"{score} vs latency: {_counts(len(pts), data.n_failed, data.n_running)}", fontsize=12)
    ax.set_xlabel("latency (ms)")
    ax.set_ylabel("inherited likelihood, exp(-cross-entropy) x 100" if data.score == "likelihood" else "accuracy (%)")
    ax.grid(True, alpha=0.3)
    if not pts:
        _empty(ax, "no complete trials yet")
        ax.set_ylim(0, 100)
        if data.target_ms is not None:
            ax.axvline(data.target_ms, color=_TARGET, ls="--", lw=1.5, label=f"target {data.target_ms:g} ms")
            ax.set_xlim(0, data.target_ms * 2)
            ax.legend(loc="lower right")
        return _save(fig, path)

    lat = [p.latency_ms for p in pts]
    lo, hi = min(lat + ([data.target_ms] if data.target_ms else [])), max(lat + ([data.target_ms] if data.target_ms else []))
    if lo > 0 and hi / lo > 30:  # latencies over orders of magnitude: a log axis keeps the fast ones apart
        from matplotlib.ticker import FuncFormatter, LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))

    scored = [p for p in pts if data.front_source and p.source != data.front_source]  # the search's own scores
    rest = [p for p in pts if not p.on_front and p not in scored]
    many = len(rest) + len(scored) > 1000  # smaller, lighter dots keep a dense cloud readable
    if rest:
        ax.scatter([p.latency_ms for p in rest], [100 * p.accuracy for p in rest], s=10 if many else 26, color=_TRIAL,
                   alpha=0.4 if many else 0.65, edgecolors="none",
                   label=f"{'retrained ' if scored else ''}trial ({len(rest)})", zorder=2)
    if scored:  # hollow: inherited or proxy accuracy, not on the retrained trials' scale
        ax.scatter([p.latency_ms for p in scored], [100 * p.accuracy for p in scored], s=10 if many else 26,
                   facecolors="none", edgecolors=_TRIAL, alpha=0.5, linewidths=0.8,
                   label=f"search score{_likelihood_note(scored)}, not retrained ({len(scored)})", zorder=2)
    front = data.front
    fx, fy = [p.latency_ms for p in front], [100 * p.accuracy for p in front]
    ax.step(fx, fy, where="post", color=_FRONT, lw=1.8, alpha=0.9, zorder=3)
    ax.scatter(fx, fy, s=46, color=_FRONT, edgecolors="white", linewidths=0.8,
               label=f"Pareto front{' of retrained' if scored else ''} ({len(front)})",
               zorder=4)
    if data.target_ms is not None:
        ax.axvline(data.target_ms, color=_TARGET, ls="--", lw=1.5, label=f"target {data.target_ms:g} ms", zorder=1)
        x0, x1 = ax.get_xlim()
        if x1 > data.target_ms:  # faintly shade the region over the target
            ax.axvspan(data.target_ms, x1, color=_TARGET, alpha=0.04, lw=0, zorder=0)
            ax.set_xlim(x0, x1)
    best = data.best_under
    if best is not None:
        bx, by = best.latency_ms, 100 * best.accuracy
        ax.scatter([bx], [by], s=240, marker="*", color=_BEST, edgecolors="black", linewidths=0.8, zorder=5,
                   label="best under target")
        score = f"likelihood {best.accuracy:.3f}" if best.likelihood else f"{by:.1f}%"
        _annotate(ax, bx, by, f"#{best.number}: {score} at {bx:.3g} ms")
    elif data.target_ms is not None:
        ax.text(0.02, 0.97, f"no trial under the {data.target_ms:g} ms target", transform=ax.transAxes,
                va="top", fontsize=9, color=_TARGET)
    if data.n_skipped:
        ax.text(0.98, 0.02, f"{data.n_skipped} with non-finite figures not shown", transform=ax.transAxes,
                ha="right", fontsize=8, color="0.4")
    ax.legend(loc="best", fontsize=9, framealpha=0.9)
    return _save(fig, path)


def _annotate(ax: Any, x: float, y: float, text: str) -> None:
    """Label a point, with the text placed toward the middle of the axes so it stays inside."""
    fig = ax.figure
    fig.canvas.draw()  # fix the limits before placing the label relative to them
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    fx = (math.log(x / x0) / math.log(x1 / x0)) if ax.get_xscale() == "log" else (x - x0) / (x1 - x0 or 1)
    fy = (y - y0) / (y1 - y0 or 1)
    dx = -70 if fx > 0.5 else 25
    dy = -40 if fy > 0.5 else 30
    ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=9, zorder=6,
                ha="right" if dx < 0 else "left",
                bbox={"boxstyle": "round,pad=0.3", "fc": "white", "ec": "0.6", "alpha": 0.95},
                arrowprops={"arrowstyle": "->", "color": "0.3", "lw": 1})


def plot_history(data: HistoryData, path: str | os.PathLike[str], title: str | None = None) -> Path:
    """Reward per complete trial with its running best; failed trials as marks on the x-axis."""
    fig = _figure(8.0, 4.2)
    ax = fig.add_subplot()
    failed = f", {len(data.failed)} failed" if data.failed else ""
    ax.set_title(title or f"Reward per trial: {len(data.numbers)} complete{failed}", fontsize=12)
    ax.set_xlabel("trial number")
    ax.set_ylabel("reward")
    ax.grid(True, alpha=0.3)
    if data.numbers:
        ax.scatter(data.numbers, data.rewards, s=18, color=_TRIAL, alpha=0.7, edgecolors="none", label="reward",
                   zorder=2)
        last = max(data.numbers + data.failed)
        xs, ys = list(data.numbers) + [last], list(data.running_best) + [data.running_best[-1]]
        ax.step(xs, ys, where="post", color=_FRONT, lw=2, label="best so far", zorder=3)
        if data.best_number is not None:
            best = max(data.rewards)
            ax.scatter([data.best_number], [best], s=180, marker="*", color=_BEST, edgecolors="black",
                       linewidths=0.8, zorder=4, label=f"best: #{data.best_number} ({best:.4g})")
    else:
        _empty(ax, "no complete trials yet")
        ax.set_ylim(0, 1)
    every = list(data.numbers) + list(data.failed)
    if every:  # the failed marks do not widen the axis by themselves (axes coordinates in y)
        pad = max(0.5, 0.02 * (max(every) - min(every)))
        ax.set_xlim(min(every) - pad, max(every) + pad)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if data.failed:
        # On the x-axis itself (axes y=0), whatever the reward scale.
        ax.scatter(data.failed, [0.0] * len(data.failed), transform=ax.get_xaxis_transform(), marker="x", s=30,
                   color=_FAILED, clip_on=False, zorder=5, label=f"failed ({len(data.failed)})")
    if data.numbers or data.failed:
        ax.legend(loc="best", fontsize=9, framealpha=0.9)
    return _save(fig, path)


def plot_alphas(gradient: Mapping[str, Any], path: str | os.PathLike[str], title: str | None = None,
                cols: int = 7) -> Path:
    """A gradient search's architecture weights over epochs: one small panel per edge (decision),
    one line per op (choice), the softmax weight after each epoch; the op of the largest weight at
    the last epoch drawn thick (DARTS's derivation then keeps two inputs per node, without ``none``).
    `gradient` is a study's ``meta["gradient_history"]`` ({"strategy", "labels", "epochs": [records
    with a "softmax" map]}). Each panel scales its own y axis, so small moves
    show; the title gives the mean entropy against that of uniform weights, so a search that has
    barely moved is not mistaken for a decided one."""
    records = [r for r in gradient.get("epochs") or [] if isinstance(r, Mapping) and isinstance(r.get("softmax"), Mapping)]
    labels = gradient.get("labels") if isinstance(gradient.get("labels"), Mapping) else {}
    names = list(records[-1]["softmax"]) if records else []
    panels = [(name, i) for name in names for i in range(len(records[-1]["softmax"][name]))]
    wanted = [labels[n].get("cols") for n in names if isinstance(labels.get(n), Mapping)]  # e.g. 6 decisions a block
    cols = next((c for c in wanted if isinstance(c, int) and c > 0), cols)
    ncols = max(1, min(cols, max((len(records[-1]["softmax"][n]) for n in names), default=1)))
    nrows = sum(math.ceil(len(records[-1]["softmax"][n]) / ncols) for n in names) or 1
    fig = _figure(max(8.0, 2.0 * ncols), 0.6 + 1.9 * nrows)
    strategy = gradient.get("strategy", "gradient")
    if not panels:
        ax = fig.add_subplot()
        ax.set_axis_off()
        _empty(ax, "no search epoch finished yet")
        fig.suptitle(title or f"{strategy}: architecture weights", fontsize=12)
        return _save(fig, path)
    grid = fig.add_gridspec(nrows, ncols)
    epochs = [r.get("epoch", k + 1) for k, r in enumerate(records)]
    palette = _palette()
    row, handles = 0, {}
    for name in names:
        info = labels.get(name) if isinstance(labels.get(name), Mapping) else {}
        edges = records[-1]["softmax"][name]
        for i, last in enumerate(edges):
            ax = fig.add_subplot(grid[row + i // ncols, i % ncols])
            choices = _choice_names(info, i, len(last))
            top = max(range(len(last)), key=lambda c: last[c])
            for c, choice in enumerate(choices):
                ys = [_weight(r["softmax"].get(name), i, c) for r in records]
                (line,) = ax.plot(epochs, ys, marker="o" if len(epochs) < 12 else None, ms=3,
                                  lw=2.4 if c == top else 1.0, color=palette[c % len(palette)], label=choice)
                handles.setdefault(choice, line.get_color())
            rows = info.get("rows") or []
            edge = rows[i] if i < len(rows) else str(i)
            prefix = "" if len(names) == 1 else f"{name.removeprefix('alpha_')} "
            ax.set_title(f"{prefix}{edge}: {choices[top]}", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            ax.xaxis.get_major_locator().set_params(integer=True)
            if isinstance(info.get("choices_per_row"), list):  # choices differ per decision: a key in each panel
                ax.legend(fontsize=6, loc="best", frameon=False, handlelength=1.2)
        row += math.ceil(len(edges) / ncols)
    entropy = records[-1].get("entropy")
    sizes = [len(e) for n in names for e in records[-1]["softmax"][n] if e]
    uniform = sum(math.log(n) for n in sizes) / len(sizes) if sizes else float("nan")
    moved = f"; mean entropy {entropy:.4f} of {uniform:.4f} (uniform)" if isinstance(entropy, (int, float)) else ""
    head = f"{strategy}: softmax of the architecture weights per epoch (x: epoch; thick: largest at the end)"
    fig.suptitle(title or head + moved, fontsize=11)
    if len(handles) <= 12 and not any(isinstance((labels.get(n) or {}).get("choices_per_row"), list) for n in names):
        from matplotlib.lines import Line2D

        keys = [Line2D([], [], color=colour, lw=1.5) for colour in handles.values()]  # thin: thick means "derived"
        fig.legend(keys, list(handles), loc="outside lower center", ncols=min(6, len(handles)), fontsize=8, frameon=False)
    return _save(fig, path)


def _palette() -> list[str]:
    # Okabe-Ito, colour-blind safe, then a few greys for long choice lists.
    return ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000",
            "#999999", "#666666", "#bbbbbb", "#333333"]


def _choice_names(info: Mapping[str, Any], row: int, n: int) -> list[str]:
    per_row = info.get("choices_per_row")
    names = per_row[row] if isinstance(per_row, list) and row < len(per_row) else info.get("choices")
    names = [str(x) for x in names] if isinstance(names, list) else []
    return names[:n] + [f"choice {c}" for c in range(len(names), n)]


def _weight(rows: Any, i: int, c: int) -> float:
    try:
        return float(rows[i][c])
    except (TypeError, IndexError, ValueError):
        return float("nan")  # an epoch recorded before a change of layout: a gap, not a crash


def plot_deployment(data: Mapping[str, Any], path: str | os.PathLike[str], title: str | None = None) -> Path:
    """fp32 against int8: each trial's accuracy (left; the drop is the distance below the diagonal) and,
    with a ranking file, each sampled architecture's latency in each runtime (right, log axes; Kendall
    tau and the median int8/fp32 ratio in the legend). `data` is `deployment_data`'s result."""
    ranking = data.get("ranking")
    fig = _figure(13.0 if ranking else 7.0, 5.4)
    axes = fig.subplots(1, 2 if ranking else 1, squeeze=False)[0]
    _plot_accuracy_drop(axes[0], data)
    if ranking:
        _plot_latency_pairs(axes[1], ranking)
    if title:
        fig.suptitle(title, fontsize=12)
    return _save(fig, path)


def _plot_accuracy_drop(ax: Any, data: Mapping[str, Any]) -> None:
    rows = data.get("trials") or []
    runtime = ", ".join(data.get("int8_runtimes") or []) or data.get("int8_runtime") or "int8"
    ax.set_xlabel("accuracy fp32 (%)")
    ax.set_ylabel(f"accuracy int8, {runtime} (%)")
    ax.grid(True, alpha=0.3)
    if not rows:
        failed = data.get("n_int8_failed") or 0
        ax.set_title("Accuracy after int8 quantization", fontsize=11)
        _empty(ax, f"{failed} trial(s) failed to quantize" if failed else
               "no trial carries an int8 accuracy\n(search with --score int8)")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        return
    xs, ys = [100 * r["accuracy_fp32"] for r in rows], [100 * r["accuracy_int8"] for r in rows]
    lo, hi = min(xs + ys), max(xs + ys)
    pad = max(0.5, 0.05 * (hi - lo))
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.5", ls="--", lw=1, label="no drop", zorder=1)
    ax.scatter(xs, ys, s=26, color=_TRIAL, alpha=0.75, edgecolors="none", label=f"trial ({len(rows)})", zorder=2)
    pick = data.get("pick_int8")
    if pick is not None:
        r = next(r for r in rows if r["number"] == pick)
        ax.scatter([100 * r["accuracy_fp32"]], [100 * r["accuracy_int8"]], s=200, marker="*", color=_BEST,
                   edgecolors="black", linewidths=0.8, zorder=4, label=f"best by int8: #{pick}")
    worst = data.get("worst")
    if worst is not None and worst["drop"] > 0:
        _annotate(ax, 100 * worst["accuracy_fp32"], 100 * worst["accuracy_int8"],
                  f"#{worst['number']}: -{100 * worst['drop']:.2f} points")
    ax.set_xlim(lo - pad, hi + pad)
    ax.set_ylim(lo - pad, hi + pad)
    drop, tau = data.get("drop") or {}, data.get("kendall_accuracy")
    text = f"median drop {100 * drop['median']:.2f} points" if drop else ""
    text += "" if tau is None else f", Kendall tau {tau:.3f}"
    ax.set_title(f"Accuracy after int8 quantization: {text}", fontsize=11)
    failed = data.get("n_int8_failed") or 0
    if failed:
        ax.text(0.98, 0.02, f"{failed} trial(s) failed to quantize (not shown)", transform=ax.transAxes,
                ha="right", fontsize=8, color="0.4")
    ax.legend(loc="upper left", fontsize=9, framealpha=0.9)


def _plot_latency_pairs(ax: Any, ranking: Mapping[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lat = ranking["latency_ms"]
    palette = _palette()
    values = []
    for i, pair in enumerate(ranking["pairs"]):
        x, y, tau, ratio = pair["x"], pair["y"], pair.get("kendall"), pair.get("ratio") or {}
        values += lat[x] + lat[y]
        text = "n/a" if tau is None else f"{tau:.3f}"
        median = f", {y.partition('/')[2] or y}/{x.partition('/')[2] or x} median {ratio['median']:.2f}" if ratio else ""
        label = f"{x.partition('/')[0]}: tau {text}{median}" if ranking.get("precision_pairs") else f"{y}: tau {text}"
        ax.scatter(lat[x], lat[y], s=12, alpha=0.7, color=palette[i % len(palette)], edgecolors="none", label=label,
                   zorder=2)
    lo, hi = min(values), max(values)
    ax.plot([lo, hi], [lo, hi], color="0.5", ls="--", lw=1, label="equal latency", zorder=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):  # 1, 2, 5 x 10^k written as plain numbers
        axis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(NullFormatter())
    first = ranking["pairs"][0]
    ax.set_xlabel("fp32 latency (ms)" if ranking.get("precision_pairs") else f"{first['x']} latency (ms)")
    ax.set_ylabel("int8 latency (ms)" if ranking.get("precision_pairs") else "latency (ms)")
    ax.grid(True, alpha=0.3, which="both")
    space = ranking.get("space_type") or "the space"
    size = (ranking.get("space") or {}).get("input_size")
    ax.set_title(f"Latency of {ranking['measured']} architectures of {space}" + (f" at {size}" if size else ""),
                 fontsize=11)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)


def _likelihood_note(points: Any) -> str:
    """': inherited likelihood x 100' when every point's score is a likelihood (on an accuracy axis)."""
    return ": inherited likelihood x 100" if points and all(p.likelihood for p in points) else ""
