"""The report's deployment section, computed from trials and a ranking file alone (no matplotlib).

Two questions a pick shipped in int8 raises (issue 20 item 5):

- **How much accuracy does int8 cost, per architecture?** A search run with ``--score int8`` (or an
  evaluator with ``record_int8=True``) keeps ``accuracy_fp32`` and ``accuracy_int8`` in each trial's
  extra. `deployment_data` lists them per trial with the drop (fp32 - int8, a fraction), summarises
  the drops, gives Kendall's tau between the two accuracies (do they rank the trials alike?) and says
  whether the most accurate trial under the target is the same by either accuracy.
- **Does int8 reorder the latencies?** A ranking file written by `mnas.latency.ranking.compare_rankings`
  (``benchmarks/deploy_ranking.py --out FILE``) holds the same sampled architectures measured in
  several runtimes and precisions. `ranking_data` pairs fp32 and int8 of each runtime (else every
  backend against the first), with Kendall's tau and the int8/fp32 ratio per architecture.

Kendall's tau-b is `mnas.latency.ranking.kendall_tau` (pure Python, no SciPy). Accuracy stays a
fraction in [0, 1]; renderers show percent.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections.abc import Mapping, Sequence
from itertools import combinations
from pathlib import Path
from typing import Any

from mnas.latency.ranking import kendall_tau
from mnas.study import Trial, TrialState

__all__ = ["RANKING_SUFFIX", "deployment_data", "deployment_headline", "find_ranking",
           "load_ranking", "ranking_data", "same_space"]

RANKING_SUFFIX = ".ranking.json"  # runs/x.db.ranking.json: the ranking file `mnas report runs/x.db` finds by itself
MAX_RANKING_FILE = 64 * 2**20  # 200 architectures in four backends is ~100 kB
_INT8_FAILURE = "int8 quantization for"  # how mnas.evaluate.quantized.int8_scores words a failed quantization


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _spread(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {"median": statistics.median(values), "mean": statistics.fmean(values), "min": min(values),
            "max": max(values)}


def _study_settings(meta: Mapping[str, Any]) -> dict[str, Any]:
    """What the study's evaluator says of its deployment: the latency's runtime and precision, the score."""
    config = meta.get("config") if isinstance(meta.get("config"), Mapping) else {}
    evaluator = config.get("evaluator") if isinstance(config.get("evaluator"), Mapping) else {}
    score = evaluator.get("score") if isinstance(evaluator.get("score"), Mapping) else {}
    try:
        key = json.loads(evaluator["latency"]) if isinstance(evaluator.get("latency"), str) else {}
    except json.JSONDecodeError:
        key = {}
    key = key if isinstance(key, dict) else {}
    backend = key.get("runtime") or {"remote": "onnxruntime"}.get(key.get("backend"), key.get("backend"))
    return {"latency_runtime": backend, "latency_precision": key.get("precision", "fp32") if key else None,
            "score": score.get("score", "fp32"), "int8_runtime": score.get("runtime"),
            "calibration": score.get("calibration")}


def _pick(rows: Sequence[Mapping[str, Any]], key: str, target_ms: float | None) -> int | None:
    """The trial number of the most accurate row by `key` within the target (all rows without one)."""
    under = [r for r in rows if target_ms is None or (r["latency_ms"] is not None and r["latency_ms"] <= target_ms)]
    best = max(under, key=lambda r: (r[key], -(r["latency_ms"] or 0.0), -r["number"]), default=None)
    return None if best is None else int(best["number"])


def deployment_data(trials: Sequence[Trial], meta: Mapping[str, Any] | None = None,
                    ranking: Mapping[str, Any] | None = None, target_ms: float | None = None) -> dict[str, Any] | None:
    """The deployment section's data (JSON-friendly), or None when neither a trial carries an int8
    accuracy (or a failed int8 quantization) nor a ranking is given. `ranking` is `ranking_data`'s
    result (or None)."""
    meta = meta or {}
    rows, failed = [], []
    for t in sorted(trials, key=lambda t: t.number):
        extra = t.extra if isinstance(t.extra, Mapping) else {}
        reason = extra.get("int8_failure") or (t.failure if t.failure and t.failure.startswith(_INT8_FAILURE) else None)
        if reason and t.state in (TrialState.COMPLETE, TrialState.FAILED):
            failed.append({"number": t.number, "failure": str(reason)})
        if t.state is not TrialState.COMPLETE:
            continue
        fp32, int8 = _number(extra.get("accuracy_fp32")), _number(extra.get("accuracy_int8"))
        if fp32 is None or int8 is None:
            continue
        rows.append({"number": t.number, "arch": t.arch, "accuracy_fp32": fp32, "accuracy_int8": int8,
                     "drop": fp32 - int8, "latency_ms": _number(t.latency_ms), "reward": _number(t.reward),
                     "int8_runtime": extra.get("int8_runtime")})
    if not rows and not failed and ranking is None:
        return None
    if ranking is not None:
        config = meta.get("config") if isinstance(meta.get("config"), Mapping) else {}
        ranking = {**ranking, "same_space": same_space(ranking, config)}
    drops = [r["drop"] for r in rows]
    worst = max(rows, key=lambda r: (r["drop"], -r["number"]), default=None)
    pick_fp32, pick_int8 = _pick(rows, "accuracy_fp32", target_ms), _pick(rows, "accuracy_int8", target_ms)
    runtimes = sorted({str(r["int8_runtime"]) for r in rows if r["int8_runtime"]})
    return {
        **_study_settings(meta),
        "int8_runtimes": runtimes,
        "n_int8": len(rows),
        "n_int8_failed": len(failed),
        "drop": _spread(drops),
        "worst": None if worst is None else {k: worst[k] for k in ("number", "arch", "accuracy_fp32", "accuracy_int8",
                                                                     "drop")},
        "kendall_accuracy": kendall_tau([r["accuracy_fp32"] for r in rows], [r["accuracy_int8"] for r in rows]),
        "target_ms": target_ms,
        "pick_fp32": pick_fp32,
        "pick_int8": pick_int8,
        "pick_changes": None if pick_fp32 is None or pick_int8 is None else pick_fp32 != pick_int8,
        "trials": rows,
        "failed": failed,
        "ranking": ranking,
    }


def deployment_headline(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """`data` without its per-trial and per-architecture lists (the report's JSON summary)."""
    if data is None:
        return None
    out = {k: v for k, v in data.items() if k not in ("trials", "failed", "ranking")}
    ranking = data.get("ranking")
    if ranking is not None:
        out["ranking"] = {k: v for k, v in ranking.items() if k not in ("archs", "latency_ms")}
        out["ranking"]["pairs"] = [{k: v for k, v in p.items() if k != "ratios"} for p in ranking["pairs"]]
    return out


# -- the ranking file ---------------------------------------------------------------------------
def find_ranking(study_path: str | os.PathLike[str] | None) -> Path | None:
    """The ranking file beside a study (``runs/x.db`` -> ``runs/x.db.ranking.json``), if there is one."""
    if not study_path or str(study_path) == ":memory:":
        return None
    path = Path(f"{study_path}{RANKING_SUFFIX}")
    return path if path.is_file() else None


def load_ranking(path: str | os.PathLike[str]) -> dict[str, Any]:
    """`ranking_data` of the file `compare_rankings` wrote (``benchmarks/deploy_ranking.py --out``);
    ValueError (one line) for anything else."""
    from mnas.latency.ranking import FORMAT

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"ranking file not found: {path}")
    if path.stat().st_size > MAX_RANKING_FILE:
        raise ValueError(f"{path}: {path.stat().st_size:,} bytes is not a ranking file (those are kB)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{path} is not a ranking file (not JSON: {str(exc).splitlines()[0][:100]})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError(f"{path} is not a ranking file (expected format {FORMAT!r}: the --out file of"
                         " benchmarks/deploy_ranking.py, not its printed summary)")
    return ranking_data(raw, source=str(path))


def ranking_data(raw: Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
    """Per architecture, the latency in every backend of a `compare_rankings` file; fp32 against int8
    of each runtime (else every backend against the first) with Kendall's tau and int8/fp32 ratios;
    tau of every pair of backends. ValueError for a file whose rows do not hold the backends."""
    where = source or "the ranking"
    backends = raw.get("backends")
    rows = raw.get("rows")
    if not isinstance(backends, Mapping) or len(backends) < 2 or not isinstance(rows, list):
        raise ValueError(f"{where}: expected 'backends' (two or more) and 'rows', as compare_rankings writes them")
    labels = [str(k) for k in backends]
    archs, lat = [], {k: [] for k in labels}
    for row in rows:
        values = row.get("latency_ms") if isinstance(row, Mapping) else None
        if not isinstance(values, Mapping):
            raise ValueError(f"{where}: a row without 'latency_ms'")
        figures = [_number(values.get(k)) for k in labels]
        if any(v is None or v <= 0 for v in figures):
            continue  # an architecture not measured in every backend is left out of every comparison
        archs.append(str(row.get("arch", "")))
        for k, v in zip(labels, figures, strict=True):
            lat[k].append(v)
    if len(archs) < 3:
        raise ValueError(f"{where}: {len(archs)} architectures measured in every backend; a ranking needs at least 3")
    precision_pairs = []
    for label in labels:
        runtime, _, precision = label.partition("/")
        if precision == "int8" and f"{runtime}/fp32" in lat:
            precision_pairs.append((f"{runtime}/fp32", label))
    pairs = precision_pairs or [(labels[0], other) for other in labels[1:]]
    out_pairs = []
    for x, y in pairs:
        ratios = [b / a for a, b in zip(lat[x], lat[y], strict=True)]
        out_pairs.append({"x": x, "y": y, "kendall": kendall_tau(lat[x], lat[y]), "ratio": _spread(ratios),
                          "ratios": ratios})
    return {"source": source, "format": raw.get("format"), "space_type": raw.get("space_type"),
            "space": raw.get("space"), "seed": raw.get("seed"), "n": raw.get("n"), "measured": len(archs),
            "backends": labels, "precision_pairs": bool(precision_pairs), "pairs": out_pairs,
            "kendall": {f"{a} vs {b}": kendall_tau(lat[a], lat[b]) for a, b in combinations(labels, 2)},
            "archs": archs, "latency_ms": lat}


def same_space(ranking: Mapping[str, Any], config: Mapping[str, Any] | None) -> bool | None:
    """Whether the ranking sampled the study's space (its class and settings); None when unknown."""
    space = (config or {}).get("space") if isinstance((config or {}).get("space"), Mapping) else None
    if space is None or not ranking.get("space_type"):
        return None
    cls = str(space.get("class", "")).rpartition(".")[2]
    return cls == ranking.get("space_type") and (space.get("settings") or {}) == (ranking.get("space") or {})
