"""`mnas report STUDY --out DIR`: Pareto plot, reward history and one HTML page of a study.

`mnas report RUN_DIR --out DIR`, RUN_DIR an `mnas instance train --out` directory: the instance-aware
model's plots instead (accuracy vs average latency at several budgets against the single-architecture
front; routes per class), see `mnas.cli.instance_cmd.cmd_report_run`."""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mnas.cli._common import UsageError, emit_json, nonneg_int, positive_float, positive_int

__all__ = ["open_study", "read_study", "register"]


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="Pareto plot, reward history and an HTML page of a study",
                       description="Write DIR/pareto.png, DIR/history.png and DIR/index.html (one portable file,"
                                   " images embedded). Opens STUDY read-only: it works while a search is writing.")
    p.add_argument("study", metavar="STUDY", help="the study: 'sqlite:///runs/x.db' or a path such as runs/x.db; or"
                                               " RUN_DIR of 'mnas instance train --out' (instance-aware report)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--top", type=positive_int, default=50, metavar="N", help="rows in the table of best trials (default 50)")
    p.add_argument("--target-ms", type=positive_float, help="latency target to draw (default: the study's)")
    p.add_argument("--title", help="page title (default: 'mnas study: <file name>')")
    p.add_argument("--ranking", metavar="FILE",
                   help="a latency ranking (the --out file of benchmarks/deploy_ranking.py): fp32 against int8 latency"
                        " per architecture and Kendall tau on the deployment page (default: STUDY.ranking.json when"
                        " it is there); trials scored with 'mnas search --score int8' get the page without one")
    p.add_argument("--luts", nargs="+", metavar="LUT",
                   help="lookup tables of the study's space in several runtimes or precisions (say ONNX Runtime fp32 and"
                        " LiteRT int8, from 'mnas latency build-lut'): adds latency by op type, op-types.png and"
                        " op-types.json (as 'mnas latency compare-luts'); the first is the base of the ratios")
    p.add_argument("--json", action="store_true", help="print the summary and the written paths as one JSON document")
    g = p.add_argument_group("instance-aware run (RUN_DIR)")
    g.add_argument("--data", help="data to evaluate on (default: the data the model was trained on)")
    g.add_argument("--split", choices=("val", "test"), default="test", help="the split to evaluate on (default test)")
    g.add_argument("--budget-ms", type=positive_float, nargs="+", metavar="MS",
                   help="latency budgets (table ms, controller included; default 1.0, 0.8, 0.6 x the k3e6 route)")
    g.add_argument("--measure", type=nonneg_int, default=60, metavar="N",
                   help="test images whose routes are timed on ONNX Runtime (1 thread, batch 1); 0: the table's"
                        " prediction (default 60)")
    p.set_defaults(handler=cmd_report)


@contextmanager
def read_study(url: str) -> Iterator[Any]:
    """`open_study` as a context in which a damaged file is bad input, not an internal error: SQLite's
    "malformed" (a page overwritten, a truncated copy) and values of the wrong type (a row edited
    outside mnas) become one-line UsageErrors naming the file."""
    study = open_study(url)
    name = getattr(study.storage, "path", url)
    try:
        with study:
            yield study
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"study {name} is damaged ({exc}): recover what SQLite can read with"
                         f" 'sqlite3 {name} .recover | sqlite3 recovered.db' and open that") from None
    except (json.JSONDecodeError, TypeError, KeyError, OverflowError) as exc:
        raise UsageError(f"study {name} holds a value mnas did not write ({type(exc).__name__}: {exc}): was the"
                         " file edited outside mnas?") from None


def open_study(url: str):
    """Open a study read-only from 'sqlite:///path' or a path; UsageError with one line otherwise."""
    from mnas.study import SQLiteStorage, Study

    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower() != "sqlite":
        raise UsageError(f"cannot open study {url!r}: expected 'sqlite:///path/to/study.db' or a file path")
    path = rest[1:] if sep else text  # 'sqlite:///rel/x.db' -> 'rel/x.db', 'sqlite:////abs' -> '/abs'
    if not path or path in (":memory:", "/:memory:"):
        raise UsageError(f"{url!r} is an in-memory study: only a study in a file can be opened here")
    if not Path(path).is_file():
        raise UsageError(f"study not found: {path} (no such file)")
    try:
        return Study(SQLiteStorage(path, read_only=True))
    except (ValueError, sqlite3.DatabaseError) as exc:
        raise UsageError(str(exc)) from None


def cmd_report(args: argparse.Namespace) -> int:
    from mnas._util import require
    from mnas.cli.instance_cmd import cmd_report_run, is_instance_run
    from mnas.reports import write_report
    from mnas.reports.data import brief_score_text

    if is_instance_run(args.study):
        return cmd_report_run(args)
    if Path(args.study).is_dir():
        raise UsageError(f"{args.study} is a directory without instance.pt: expected a study file (runs/x.db) or the"
                         " --out directory of 'mnas instance train'")
    require("matplotlib", "mnas report")  # fail before opening anything
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    ranking = _ranking(args)  # a bad file: one line, before anything is written
    op_types = _op_types(args.luts) if args.luts else None  # so are bad tables
    with read_study(args.study) as study:
        try:  # a place that cannot hold a folder: one line (exit 2), not an internal error
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"--out {args.out}: cannot make the directory ({exc.strerror or exc}): give a writable"
                             " one") from None
        if not os.access(out, os.W_OK | os.X_OK):  # an existing folder this user cannot write into (review)
            raise UsageError(f"--out {args.out}: the folder is not writable: give a writable one")
        info = write_report(study, out, top=args.top, target_ms=args.target_ms, title=args.title, ranking=ranking,
                            op_types=op_types)
    if args.json:
        emit_json(info)
        return 0
    best, under = info["best"], info["best_under_target"]
    print(f"{info['n_complete']} complete, {info['n_failed']} failed, {info['n_running']} running"
          + (f"; target {info['target_ms']:g} ms" if info["target_ms"] else ""))
    if best:
        print(f"best reward:       #{best['number']} {best['reward']:.4f} ({brief_score_text(best)},"
              f" {best['latency_ms']:.3g} ms)")
    if under:
        print(f"best under target: #{under['number']} {brief_score_text(under)} at {under['latency_ms']:.3g} ms")
    deployment = info.get("deployment")
    if deployment:
        print(deployment_line(deployment))
    if info.get("op_types_same_space") is False:
        print("warning: the --luts tables were built for another space than the study's (class or settings): the op"
              " types describe their space", file=sys.stderr)
    if info.get("n_bad_values"):
        print(f"warning: {info['n_bad_values']} trial(s) hold values of the wrong type (edited outside mnas?):"
              " those figures are left out", file=sys.stderr)
    if not info["n_complete"]:
        print("no complete trials yet: the page and plots say so", file=sys.stderr)
    more = "".join(f", {info['files'][k]}" for k in ("deployment", "deployment_json", "op_types", "op_types_json")
                   if k in info["files"])
    print(f"wrote {info['files']['html']} (images embedded), {info['files']['pareto']}, {info['files']['history']}{more}")
    return 0


def _op_types(paths: list[str]) -> dict[str, Any]:
    """--luts: latency by op type across the tables (UsageError, one line, for a bad set)."""
    from mnas.cli._common import load_tables
    from mnas.latency.lut_compare import compare_tables

    try:
        return compare_tables(load_tables(paths, "--luts"))
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _ranking(args: argparse.Namespace) -> Any:
    """--ranking FILE loaded (UsageError for a bad one), else the study's STUDY.ranking.json if present, else None."""
    from mnas.reports import find_ranking, load_ranking

    path = args.ranking
    if path is None:
        text = args.study.strip()
        found = find_ranking(text.partition("://")[2][1:] if "://" in text else text)
        if found is None:
            return None
        path = str(found)
    try:
        return load_ranking(path)
    except ValueError as exc:
        raise UsageError(f"--ranking {path}: {str(exc).splitlines()[0]}") from None


def deployment_line(d: dict[str, Any]) -> str:
    """'deployment: 12 trials with an int8 accuracy (onnxruntime), median drop 0.40 points (largest #3: 2.10); ...'."""
    parts = []
    if d.get("n_int8") or d.get("n_int8_failed"):
        runtimes = ", ".join(d.get("int8_runtimes") or []) or "int8"
        drop, worst = d.get("drop"), d.get("worst")
        text = f"{d['n_int8']} trials with an int8 accuracy ({runtimes})"
        if drop:
            text += f", median drop {100 * drop['median']:.2f} points (largest #{worst['number']}: {100 * worst['drop']:.2f})"
        if d.get("n_int8_failed"):
            text += f", {d['n_int8_failed']} failed to quantize"
        if d.get("pick_changes") is not None:
            text += ("; int8 changes the best under the target" if d["pick_changes"] else
                     "; the same best under the target by either accuracy")
        parts.append(text)
    ranking = d.get("ranking")
    if ranking:
        taus = ", ".join(f"{p['x']} vs {p['y']} {'n/a' if p['kendall'] is None else format(p['kendall'], '.3f')}"
                         for p in ranking["pairs"])
        parts.append(f"latency Kendall tau over {ranking['measured']} architectures: {taus}")
    return "deployment: " + "; ".join(parts)
