"""Layer 6: a study's report — the Pareto plot, the reward history and one HTML page.

`mnas.reports.data` computes what is shown from trials alone (pure, testable without matplotlib),
`mnas.reports.deployment` the fp32-against-int8 section (trials' int8 accuracies, a ranking file's
latencies); `mnas.reports.plots` and `mnas.reports.html` draw it. `write_report` does all three::

    from mnas.reports import write_report
    info = write_report(Study("runs/cifar.db"), "runs/report")   # pareto.png, history.png, index.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mnas.reports.data import (
    DEFAULT_TOP,
    HistoryData,
    ParetoData,
    ParetoPoint,
    best_under_target,
    clean_trials,
    history_data,
    pareto_data,
    report_summary,
    study_target_ms,
    top_rows,
)
from mnas.reports.deployment import deployment_data, deployment_headline, find_ranking, load_ranking
from mnas.study import Study, TrialState

__all__ = [
    "DEFAULT_TOP", "HistoryData", "ParetoData", "ParetoPoint", "best_under_target", "clean_trials", "deployment_data",
    "find_ranking", "history_data", "load_ranking", "pareto_data", "report_summary", "study_target_ms", "top_rows",
    "write_report",
]

PARETO_PNG, HISTORY_PNG, INDEX_HTML, ALPHAS_PNG = "pareto.png", "history.png", "index.html", "alphas.png"
DEPLOYMENT_PNG, DEPLOYMENT_JSON = "deployment.png", "deployment.json"
OP_TYPES_PNG, OP_TYPES_JSON = "op-types.png", "op-types.json"


def write_report(study: Study, out: str | os.PathLike[str], *, top: int = DEFAULT_TOP, target_ms: float | None = None,
                 title: str | None = None, ranking: str | os.PathLike[str] | Mapping[str, Any] | None = None,
                 op_types: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Write ``pareto.png``, ``history.png`` and ``index.html`` (images embedded, one portable file)
    into `out` and return the summary with the written paths under ``"files"``. A study with no
    complete trials still gets a page and empty plots that say so. `target_ms` defaults to the study's.
    A gradient search's study (``meta["gradient_history"]``, `mnas.loop.gradient_study`) also gets
    ``alphas.png``, its architecture weights over epochs, on the page and under ``files["alphas"]``.

    When trials carry int8 accuracies (``--score int8``) or `ranking` is given (a ranking file from
    `mnas.latency.ranking.compare_rankings`, or `load_ranking`'s result), the page gets a deployment
    section and ``deployment.png`` (accuracy fp32 against int8 per trial; latency fp32 against int8
    per sampled architecture) and ``deployment.json`` (every figure) are written; the summary's
    ``"deployment"`` holds the headline figures.

    `op_types` (`mnas.latency.lut_compare.compare_tables` of the runtime's and precision's lookup
    tables) adds a section of latency by op type, ``op-types.png`` and ``op-types.json``."""
    from mnas.reports.html import render_html
    from mnas.reports.plots import plot_alphas, plot_deployment, plot_history, plot_pareto

    if ranking is not None and not isinstance(ranking, Mapping):
        ranking = load_ranking(ranking)  # a bad file is a ValueError before anything is written
    trials, meta = study.trials, study.meta  # one snapshot: a search may be writing meanwhile
    trials, n_bad = clean_trials(trials)
    summary = {**report_summary(trials, meta, target_ms), "n_bad_values": n_bad}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pareto = plot_pareto(pareto_data(trials, summary["target_ms"]), out / PARETO_PNG)
    history = plot_history(history_data(trials), out / HISTORY_PNG)
    gradient = meta.get("gradient_history")
    alphas = plot_alphas(gradient, out / ALPHAS_PNG) if isinstance(gradient, dict) else None
    deployment = deployment_data(trials, meta, ranking, summary["target_ms"])
    files: dict[str, str] = {}
    deployment_png = None
    if deployment is not None:
        deployment_png = plot_deployment(deployment, out / DEPLOYMENT_PNG)
        (out / DEPLOYMENT_JSON).write_text(json.dumps(deployment, indent=1, allow_nan=False), encoding="utf-8")
        files = {"deployment": str(deployment_png), "deployment_json": str(out / DEPLOYMENT_JSON)}
    op_types_png = None
    if op_types is not None:
        from mnas.latency.lut_compare import plot_op_types
        from mnas.reports.deployment import same_space

        op_types = {**op_types, "same_space": same_space(op_types, meta.get("config"))}
        op_types_png = out / OP_TYPES_PNG
        plot_op_types(op_types, op_types_png)
        (out / OP_TYPES_JSON).write_text(json.dumps(op_types, indent=1, allow_nan=False), encoding="utf-8")
        files.update({"op_types": str(op_types_png), "op_types_json": str(out / OP_TYPES_JSON)})
    rows = top_rows(trials, top, summary["target_ms"])
    failed = [t for t in trials if t.state is TrialState.FAILED][-top:] if top else []
    failures = [{"number": t.number, "failure": t.failure} for t in failed]
    page = render_html(summary, rows, title=title or f"mnas study: {_name(study)}", pareto_png=pareto,
                       history_png=history, failures=failures, top=top, alphas_png=alphas, deployment=deployment,
                       deployment_png=deployment_png, op_types=op_types, op_types_png=op_types_png)
    index = out / INDEX_HTML
    index.write_text(page, encoding="utf-8")
    files = {"html": str(index), "pareto": str(pareto), "history": str(history), **files}
    return {**summary, "deployment": deployment_headline(deployment),
            **({"op_types_same_space": op_types["same_space"]} if op_types is not None else {}),
            "files": {**files, **({"alphas": str(alphas)} if alphas else {})}}


def _name(study: Study) -> str:
    path = getattr(study.storage, "path", None)
    return Path(path).name if path and path != ":memory:" else "in memory"
