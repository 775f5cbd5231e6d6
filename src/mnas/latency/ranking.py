"""How far runtimes and precisions disagree on a space's latency ranking (issue 20 item 5, the data).

`compare_rankings(space, backends, n)` measures the same `n` sampled architectures in every backend
(say ONNX Runtime fp32 and int8, LiteRT int8) and returns each one's latencies, the Kendall tau of
every pair of backends, and each architecture's int8/fp32 ratio within a runtime. A pick measured
in one runtime and precision and shipped in another is a guess; tau says how much of one.

The rows are written to `out` (JSON) after every architecture and a rerun with the same file, space
sample and backends resumes — a space-wide comparison in LiteRT or ExecuTorch costs a conversion of
seconds per network and backend.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from mnas.latency.base import LatencyBackend

__all__ = ["FORMAT", "compare_rankings", "kendall_tau", "label_of", "plot_rankings", "summarize"]

FORMAT = "mnas-latency-ranking/1"


def label_of(backend: LatencyBackend) -> str:
    """'runtime/precision' (e.g. 'litert/int8'), a backend's name in a comparison."""
    runtime, precision = backend.deployment
    return f"{runtime}/{precision}"


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Kendall's tau-b of two equally long sequences (ties counted as SciPy does); None with fewer
    than 3 pairs or when either side is constant."""
    if len(a) != len(b):
        raise ValueError(f"Kendall tau of {len(a)} and {len(b)} values: expected equal lengths")
    if len(a) < 3:
        return None
    concordant = discordant = tie_a = tie_b = 0
    for i, j in combinations(range(len(a)), 2):
        da, db = a[i] - a[j], b[i] - b[j]
        if da == 0 and db == 0:
            continue  # tied in both: neither numerator nor either denominator term
        if da == 0:
            tie_a += 1
        elif db == 0:
            tie_b += 1
        elif (da > 0) == (db > 0):
            concordant += 1
        else:
            discordant += 1
    denominator = math.sqrt((concordant + discordant + tie_a) * (concordant + discordant + tie_b))
    return None if denominator == 0 else (concordant - discordant) / denominator


def compare_rankings(space: Any, backends: Mapping[str, LatencyBackend] | list[LatencyBackend], n: int = 200,
                     seed: int = 0, out: str | os.PathLike | None = None,
                     progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Measure `n` distinct architectures sampled from `space` (seeded) in every backend, at the
    space's input size and classes; returns {"archs", "latency_ms": {label: [...]}, "kendall":
    {"a vs b": tau}, "int8_over_fp32": {runtime: [ratio per arch]}, ...}."""
    from mnas.latency.lut_build import _sample_distinct

    if isinstance(n, bool) or not isinstance(n, int) or n < 3:
        raise ValueError(f"n={n!r}: a ranking needs at least 3 architectures")
    if not isinstance(backends, Mapping):
        backends = {label_of(b): b for b in backends}
    if len(backends) < 2:
        raise ValueError("compare at least two backends (e.g. onnxruntime fp32 and int8)")
    archs = [str(a) for a in _sample_distinct(space, n, np.random.default_rng([seed, 20]))]
    settings = {"format": FORMAT, "space_type": type(space).__name__, "space": space.settings(), "seed": seed,
                "n": n, "backends": {k: b.key() for k, b in backends.items()}}
    data: dict[str, Any] = {**settings, "rows": []}
    path = Path(out) if out is not None else None
    if path is not None and path.exists():
        old = json.loads(path.read_text())
        if {k: old.get(k) for k in settings} != settings:
            raise ValueError(f"{path} holds a comparison with other settings: use another file, or delete it")
        data["rows"] = old.get("rows", [])
    done = {r["arch"] for r in data["rows"]}
    size, classes = space.input_size, space.num_classes
    for i, arch in enumerate(archs, 1):
        if arch in done:
            continue
        row = {"arch": arch, "latency_ms": {}, "cv": {}}
        for label, backend in backends.items():
            result = backend.measure(arch, size, classes)
            row["latency_ms"][label], row["cv"][label] = result.median_ms, result.cv
        data["rows"].append(row)
        if path is not None:
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(data, indent=1))
            os.replace(tmp, path)
        if progress:
            progress(i, len(archs), arch[:40])
    return summarize(data)


def summarize(data: dict[str, Any]) -> dict[str, Any]:
    """Kendall tau per pair of backends and int8/fp32 ratios per runtime, from the rows of a comparison."""
    rows = data["rows"]
    labels = list(data["backends"])
    lat = {k: [r["latency_ms"][k] for r in rows] for k in labels}
    kendall = {f"{a} vs {b}": kendall_tau(lat[a], lat[b]) for a, b in combinations(labels, 2)}
    ratios = {}
    for label in labels:
        runtime, _, precision = label.partition("/")
        if precision == "int8" and f"{runtime}/fp32" in lat:
            r = np.asarray(lat[label]) / np.asarray(lat[f"{runtime}/fp32"])
            ratios[runtime] = {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max()),
                               "per_arch": [float(x) for x in r]}
    return {**{k: v for k, v in data.items() if k != "rows"}, "measured": len(rows), "archs": [r["arch"] for r in rows],
            "latency_ms": lat, "kendall": kendall, "int8_over_fp32": ratios}


def plot_rankings(summary: dict[str, Any], path: str | os.PathLike, reference: str | None = None) -> str:
    """A PNG: every backend's latency against `reference`'s (default: the first), one point per
    architecture, log axes, Kendall tau in each legend entry. Returns the path written."""
    from mnas._util import require

    require("matplotlib", "the ranking plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lat = summary["latency_ms"]
    labels = list(lat)
    reference = reference or labels[0]
    if reference not in lat:
        raise ValueError(f"reference {reference!r} is not one of the compared backends ({', '.join(labels)})")
    fig, ax = plt.subplots(figsize=(6, 5))
    for label in labels:
        if label == reference:
            continue
        tau = summary["kendall"].get(f"{reference} vs {label}", summary["kendall"].get(f"{label} vs {reference}"))
        text = "n/a" if tau is None else f"{tau:.3f}"
        ax.scatter(lat[reference], lat[label], s=10, alpha=0.7, label=f"{label} (Kendall tau {text})")
    lo = min(min(v) for v in lat.values())
    hi = max(max(v) for v in lat.values())
    ax.plot([lo, hi], [lo, hi], color="grey", lw=0.8, ls="--", label="equal latency")
    ax.set(xscale="log", yscale="log", xlabel=f"{reference} latency (ms)", ylabel="latency (ms)",
           title=f"{summary.get('measured', len(lat[reference]))} architectures of {summary.get('space_type', 'the space')}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)
