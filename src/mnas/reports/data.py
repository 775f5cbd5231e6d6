"""What a report shows, computed from trials alone: no matplotlib, no HTML, no storage access.

Every function takes a sequence of `Trial` (any order, any states) and returns plain data, so the
figures and the page are easy to test and a notebook can draw its own plots from the same numbers.
Accuracy stays a fraction in [0, 1] here; renderers show it in percent.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mnas.objectives import pareto_front
from mnas.study import Trial, TrialState, standalone_trials

__all__ = [
    "DEFAULT_TOP", "HistoryData", "ParetoData", "ParetoPoint", "best_under_target", "clean_trials", "history_data",
    "pareto_data",
    "report_summary", "study_target_ms", "top_rows",
]

DEFAULT_TOP = 50


@dataclass(frozen=True)
class ParetoPoint:
    """One complete trial on the accuracy-latency plane."""

    number: int
    accuracy: float
    latency_ms: float
    reward: float
    arch: str
    on_front: bool = False
    source: str = ""  # how the accuracy was obtained: "standalone" (retrained), "supernet", "proxy", ...
    likelihood: bool = False  # `accuracy` is an inherited likelihood exp(-CE) (--inherited-score likelihood)


@dataclass(frozen=True)
class ParetoData:
    """Points of every complete trial with finite figures; `front` is the non-dominated subset,
    ordered by latency (the step line's order); `best_under` the most accurate point within the target.
    With retrained trials in the study, `front` is among them only (`front_source` "standalone"), as
    `Study.pareto_front` computes it: the search's own scores are on another scale."""

    points: tuple[ParetoPoint, ...]
    front: tuple[ParetoPoint, ...]
    target_ms: float | None
    best_under: ParetoPoint | None
    n_failed: int
    n_running: int
    n_skipped: int = 0  # complete trials with a non-finite accuracy or latency (not plottable)
    front_source: str | None = None  # "standalone" when the front is the retrained trials' alone
    score: str = "accuracy"  # "likelihood": the front's scores are inherited exp(-cross-entropy) (--inherited-score)


@dataclass(frozen=True)
class HistoryData:
    """Reward of each complete trial by trial number, the best reward so far, failed trial numbers."""

    numbers: tuple[int, ...]
    rewards: tuple[float, ...]
    running_best: tuple[float, ...]
    failed: tuple[int, ...]
    best_number: int | None = None


_NUMBERS = ("accuracy", "latency_ms", "reward", "params", "macs", "started_at", "finished_at", "train_seconds",
            "latency_seconds")


def clean_trials(trials: Sequence[Trial]) -> tuple[list[Trial], int]:
    """Trials with every figure a real number or None, and how many had to be changed.

    A study file edited outside mnas can hold text or blobs where numbers belong (SQLite stores any
    type in any column); such a figure is dropped (None: the trial is then not plotted) rather than
    crashing the report. Non-text architectures and failure reasons become text."""
    out, changed = [], 0
    for t in trials:
        fixes: dict[str, Any] = {k: None for k in _NUMBERS if not _is_number(getattr(t, k))}
        for k in ("arch", "failure"):
            value = getattr(t, k)
            if value is not None and not isinstance(value, str):
                fixes[k] = repr(value)
        if not isinstance(t.extra, dict):
            fixes["extra"] = {}
        if fixes:
            changed += 1
            t = replace(t, **fixes)
        out.append(t)
    return out, changed


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _finite(*values: float | None) -> bool:
    return all(v is not None and math.isfinite(v) for v in values)


def _complete(trials: Sequence[Trial]) -> list[Trial]:
    return sorted((t for t in trials if t.state is TrialState.COMPLETE), key=lambda t: t.number)


def best_under_target(trials: Sequence[Trial], target_ms: float | None) -> Trial | None:
    """The most accurate complete trial with latency <= `target_ms` (faster, then earlier, wins
    ties) — the same rule as `Study.best(target_ms)`; None without a target or a trial under it."""
    if target_ms is None:
        return None
    under = [t for t in _complete(trials) if _finite(t.accuracy, t.latency_ms) and t.latency_ms <= target_ms]
    under = standalone_trials(under) or under  # retrained trials first, the most seeds among them, as best()
    return max(under, key=lambda t: (t.accuracy, -t.latency_ms, -t.number), default=None)


def pareto_data(trials: Sequence[Trial], target_ms: float | None = None) -> ParetoData:
    """The Pareto plot's data: every plottable complete trial, the front, the best under the target."""
    complete = _complete(trials)
    plottable = [t for t in complete if _finite(t.accuracy, t.latency_ms)]
    retrained = standalone_trials(plottable)
    ranked = retrained or plottable  # one accuracy scale on the front, as Study.pareto_front
    front_idx = pareto_front((t.accuracy, t.latency_ms) for t in ranked)
    on_front = {ranked[i].number for i in front_idx}
    points = tuple(ParetoPoint(t.number, t.accuracy, t.latency_ms, t.reward if t.reward is not None else math.nan,
                               t.arch, t.number in on_front, t.accuracy_source or "", t.likelihood_scored)
                   for t in plottable)
    by_number = {p.number: p for p in points}
    best = best_under_target(plottable, target_ms)
    return ParetoData(
        front_source="standalone" if retrained and len(retrained) < len(plottable) else None,
        score="likelihood" if ranked and all(t.likelihood_scored for t in ranked) else "accuracy",
        points=points,
        front=tuple(by_number[ranked[i].number] for i in front_idx),
        target_ms=target_ms,
        best_under=by_number[best.number] if best else None,
        n_failed=sum(t.state is TrialState.FAILED for t in trials),
        n_running=sum(t.state is TrialState.RUNNING for t in trials),
        n_skipped=len(complete) - len(plottable),
    )


def history_data(trials: Sequence[Trial]) -> HistoryData:
    """Reward per complete trial in trial order, with its running maximum; failed trials' numbers."""
    numbers, rewards, running, best, best_number = [], [], [], -math.inf, None
    for t in _complete(trials):
        if t.reward is None or math.isnan(t.reward):
            continue
        numbers.append(t.number)
        rewards.append(t.reward)
        if t.reward > best:
            best, best_number = t.reward, t.number
        running.append(best)
    failed = tuple(sorted(t.number for t in trials if t.state is TrialState.FAILED))
    return HistoryData(tuple(numbers), tuple(rewards), tuple(running), failed, best_number)


_ROW_FIELDS = ("number", "arch", "accuracy", "latency_ms", "reward", "params", "macs", "train_seconds", "state")


def top_rows(trials: Sequence[Trial], n: int = DEFAULT_TOP, target_ms: float | None = None) -> list[dict[str, Any]]:
    """The `n` complete trials with the highest reward (earlier trial first on ties), as dicts with
    the table's columns plus `on_front` and `under_target` (None without a target)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r}: expected a number of rows >= 0")
    complete = [t for t in _complete(trials) if t.reward is not None and not math.isnan(t.reward)]
    front = {p.number for p in pareto_data(complete).front}
    ranked = sorted(complete, key=lambda t: (-t.reward, t.number))[:n]
    rows = []
    for t in ranked:
        row = {k: getattr(t, k) for k in _ROW_FIELDS}
        row["state"] = t.state.value
        row["score_metric"] = "likelihood" if t.likelihood_scored else "accuracy"  # what `accuracy` holds
        row["top1_accuracy"] = t.top1
        row["on_front"] = t.number in front
        row["under_target"] = None if target_ms is None or t.latency_ms is None else t.latency_ms <= target_ms
        rows.append(row)
    return rows


def study_target_ms(meta: Mapping[str, Any]) -> float | None:
    """The latency target a study was searched with: its 'target_ms' metadata, else the config's."""
    config = meta.get("config") if isinstance(meta.get("config"), Mapping) else {}
    for value in (meta.get("target_ms"), config.get("target_ms"), (config.get("reward") or {}).get("target_ms")):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
            return float(value)
    return None


def report_summary(trials: Sequence[Trial], meta: Mapping[str, Any], target_ms: float | None = None) -> dict[str, Any]:
    """The report's headline figures as a JSON-friendly dict; `target_ms` defaults to the study's."""
    target_ms = target_ms if target_ms is not None else study_target_ms(meta)
    complete = _complete(trials)
    rewarded = [t for t in complete if t.reward is not None and not math.isnan(t.reward)]
    rewarded = standalone_trials(rewarded) or rewarded  # as Study.best()
    best = max(rewarded, key=lambda t: (t.reward, -t.number), default=None)
    under = best_under_target(complete, target_ms)
    front = pareto_data(complete)
    counts = {s.value: sum(t.state is s for t in trials) for s in TrialState}
    return {
        "n_trials": len(trials),
        "n_complete": counts["complete"],
        "n_failed": counts["failed"],
        "n_running": counts["running"],
        "n_requeued": counts["requeued"],
        "target_ms": target_ms,
        "best": _brief(best),
        "best_under_target": _brief(under),
        "pareto_front": [p.number for p in front.front],
        "pareto_front_source": front.front_source,
        "config": meta.get("config"),
    }


def _brief(t: Trial | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {"number": t.number, "arch": t.arch, "accuracy": t.accuracy, "latency_ms": t.latency_ms,
            "reward": t.reward, "params": t.params, "macs": t.macs,
            "score_metric": "likelihood" if t.likelihood_scored else "accuracy", "top1_accuracy": t.top1}


def brief_score_text(brief: Mapping[str, Any]) -> str:
    """A summary's trial score: '61.20%', or 'likelihood 0.3020, top-1 33.40%' (--inherited-score likelihood);
    no parentheses, so the text nests in a parenthesised line."""
    if brief.get("score_metric") == "likelihood":
        top1 = brief.get("top1_accuracy")
        return f"likelihood {brief['accuracy']:.4f}" + ("" if top1 is None else f", top-1 {100 * top1:.2f}%")
    return f"{100 * brief['accuracy']:.2f}%"
