"""What `mnas search` prints when a search ends (every strategy: ask/tell, ENAS, DARTS/GDAS/FBNet),
and its one line for an unreachable device; shared by `search_cmd` and `_gradient` so that neither
imports the other."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mnas.cli._common import UsageError, emit_json, table

__all__ = ["device_error", "distinct_decimals", "format_states", "report_study"]


def device_error(args: argparse.Namespace, exc: BaseException) -> UsageError:
    where = f"the device server at {args.url}" if args.url else "the latency device"
    return UsageError(f"cannot reach {where}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}"
                      " (check --url and that 'mnas device serve' runs there; finished trials are saved)")


def distinct_decimals(values: list[float], least: int = 1, most: int = 6) -> int:
    """The fewest decimals (at least `least`, at most `most`) at which values that differ print differently:
    a front's two accuracies 22.875% and 22.92% are '22.88%' and '22.92%', not both '22.9%'."""
    distinct = sorted(set(values))
    for digits in range(least, most + 1):
        if len({f"{v:.{digits}f}" for v in distinct}) == len(distinct):
            return digits
    return most


def format_states(states: dict[str, int]) -> str:
    """'4 complete, 1 failed' (states with no trials left out)."""
    return ", ".join(f"{n} {state}" for state, n in states.items() if n) or "none"


def report_study(study, storage: str, seconds: float, as_json: bool, extra: dict | None = None) -> int:
    """The end of a search: the front and the best trial, or with `as_json` one JSON document, to which
    `extra` adds its fields (e.g. --retrain-reference's "retrain_reference", printed as lines before)."""
    target = study.meta.get("target_ms")
    best, under = study.best(), study.best(target_ms=target) if target else None
    front = study.pareto_front()
    summary = study.summary(target_ms=target)
    run = study.last_run
    failed = summary["states"].get("failed", 0)
    rc = 0
    if not summary["states"].get("complete", 0):
        rc = 1  # every trial failed (or none ran): not a successful search
    if as_json:
        emit_json({"storage": storage, "wall_seconds": seconds, "target_ms": target,
                   "trials": summary["n_trials"], "states": summary["states"],
                   "stop": run.to_dict() if run else None,
                   "best": best.to_dict() if best else None, "best_under_target": under.to_dict() if under else None,
                   "best_is_feasible_only": summary["best_is_feasible_only"], "constraints": study.limits.to_dict(),
                   "pareto_front": [t.to_dict() for t in front], **(extra or {})})
        if rc:
            print(f"mnas: error: no trial completed ({failed} failed)", file=sys.stderr)
        return rc
    target_text = f"{target:.3f} ms" if isinstance(target, (int, float)) else "none (accuracy only)"
    print(f"study: {storage}   trials: {summary['n_trials']} ({format_states(summary['states'])})   "
          f"wall: {seconds:.0f} s   target: {target_text}")
    if run is not None and (run.early or run.stop == "complete"):
        print(f"note: {run}")
    if rc:
        reasons = [t.failure for t in study.get_trials("failed") if t.failure]
        common = max(set(reasons), key=reasons.count) if reasons else "unknown"
        if study.limits and reasons and all(r.startswith("infeasible") for r in reasons):
            print(f"mnas: error: no trial meets the limits ({study.limits}): {failed} infeasible, none trained; "
                  f"e.g. {common.splitlines()[0][:200]}", file=sys.stderr)
            return rc
        print(f"mnas: error: no trial completed ({failed} failed); most common failure: {common.splitlines()[0][:300]}",
              file=sys.stderr)
        return rc
    acc_digits = distinct_decimals([100 * t.accuracy for t in front], least=1)
    lat_digits = distinct_decimals([t.latency_ms for t in front], least=3)
    rows = [{"n": t.number, "acc": f"{100 * t.accuracy:.{acc_digits}f}%", "lat": f"{t.latency_ms:.{lat_digits}f}",
             "reward": f"{t.reward:.4f}",
             "params": f"{t.params:,}" if t.params else "", "arch": t.arch} for t in front]
    retrained = front and all(t.accuracy_source == "standalone" for t in front) and any(
        t.accuracy_source != "standalone" for t in study.complete_trials)
    likelihood = front and all(t.likelihood_scored for t in front)
    columns = [("trial", "n"), ("accuracy", "acc")]
    if likelihood:  # --inherited-score likelihood: the reward's score is exp(-cross-entropy), top-1 beside it
        top1_digits = distinct_decimals([100 * t.top1 for t in front if t.top1 is not None], least=1)
        for row, t in zip(rows, front, strict=True):
            row.update(acc=f"{t.accuracy:.4f}", top1=f"{100 * t.top1:.{top1_digits}f}%" if t.top1 is not None else "-")
        columns = [("trial", "n"), ("likelihood", "acc"), ("top-1", "top1")]
    print(f"\nPareto front ({'inherited likelihood' if likelihood else 'accuracy'} vs latency"
          f"{', retrained trials' if retrained else ''}):")
    table(rows, [*columns, ("latency ms", "lat"), ("reward", "reward"), ("params", "params"), ("arch", "arch")])
    limits = study.limits
    if limits and best is None:
        print(f"\nno trial meets the limits ({limits}) yet")
    elif summary["best_is_feasible_only"] and best is None:
        print("\nno complete trial meets the hard target yet")
    elif target is None and best is not None:
        print(f"\nbest: trial {best.number}, {best.score_text()} at {best.latency_ms:.3f} ms")
        print(f"  {best.arch}")
    elif under:
        print(f"\nbest under the target: trial {under.number}, {under.score_text()} at {under.latency_ms:.3f} ms"
              f"{_off_front(under, front)}")
        print(f"  {under.arch}")
    else:
        print("\nno complete trial is under the target yet")
    return 0


def _off_front(under: Any, front: list) -> str:
    """'' when the best under the target is in the printed front, else why it is not: the front holds the
    retrained trials with the most seeds, and `Study.best(target)` falls back to fewer seeds, or to the search's
    own scores, when none of those is under the target (a dominating trial would be under it too)."""
    if any(t.number == under.number for t in front):
        return ""
    seeds = [len((t.extra or {}).get("seeds") or [None]) for t in front if t.accuracy_source == "standalone"]
    if not seeds:
        return " (not in the front above)"
    n, most = len((under.extra or {}).get("seeds") or [None]), max(seeds)
    mine = f"retrained with {n} seed{'s' * (n > 1)}" if under.accuracy_source == "standalone" else "not retrained"
    held = "the retrained trials" if most == 1 else f"the trials retrained with {most} seeds"
    return f" ({mine}: the front above holds {held}, none under the target)"

