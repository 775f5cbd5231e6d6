"""Renderer: the report as one self-contained HTML page (images embedded as base64, inline CSS
and a few lines of vanilla JS to sort the table; no network access needed to view it)."""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mnas import __version__
from mnas.reports.data import brief_score_text

__all__ = ["render_html"]

_COLUMNS = (  # (header, key, numeric?)
    ("#", "number", True), ("arch", "arch", False), ("accuracy (%)", "accuracy", True),
    ("latency (ms)", "latency_ms", True), ("reward", "reward", True), ("params", "params", True),
    ("MACs", "macs", True), ("train (s)", "train_seconds", True), ("state", "state", False),
)

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;color:#222}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}.sub{color:#666;margin:0 0 16px}
h3{font-size:15px;margin:18px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:130px}
.card b{display:block;font-size:18px}.card span{color:#666;font-size:12px}
.plots{display:flex;flex-wrap:wrap;gap:12px}.plots img{max-width:100%;border:1px solid #eee;border-radius:4px}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f5f5f5;text-align:left;cursor:pointer;user-select:none;white-space:nowrap;position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.arch,code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px}
td.arch{overflow-wrap:anywhere;max-width:560px}tr.front td:first-child{border-left:3px solid #e66101}
tr.over td.lat{color:#b2182b}pre{background:#f7f7f7;padding:10px;overflow:auto;max-height:420px}
.note{color:#666;font-size:12px}.empty{padding:24px;border:1px dashed #bbb;border-radius:6px;color:#666;text-align:center}
"""

# Click a header to sort by it; click again to reverse. Numbers sort by data-v (empty cells last).
_JS = """
document.querySelectorAll("table.sortable").forEach(function(table){
  table.querySelectorAll("th").forEach(function(th, col){
    th.addEventListener("click", function(){
      var num = th.dataset.num === "1", body = table.tBodies[0];
      var desc = th.dataset.dir ? th.dataset.dir !== "desc" : num;  // first click: numbers high-first, text A-Z
      table.querySelectorAll("th").forEach(function(h){ delete h.dataset.dir; });
      th.dataset.dir = desc ? "desc" : "asc";
      var key = function(r){ var c = r.cells[col], v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
        return num ? (v === "" ? NaN : parseFloat(v)) : v.toLowerCase(); };
      Array.from(body.rows).sort(function(a, b){
        var x = key(a), y = key(b);
        if (num && isNaN(x) !== isNaN(y)) return isNaN(x) ? 1 : -1;
        return (x < y ? -1 : x > y ? 1 : 0) * (desc ? -1 : 1);
      }).forEach(function(r){ body.appendChild(r); });
    });
  });
});
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _fmt(key: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if key in ("accuracy", "top1_accuracy"):
        return f"{100 * value:.2f}"
    if key == "latency_ms":
        return f"{value:.3g}" if value < 10 else f"{value:.1f}"
    if key == "reward":
        return f"{value:.4f}"
    if key in ("params", "macs"):
        return f"{value / 1e6:.2f}M" if value >= 1e5 else f"{value:,}"
    if key == "train_seconds":
        return f"{value:.1f}"
    return str(value)


def _columns(rows: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str, bool], ...]:
    """The table's columns; with likelihood-scored trials (--inherited-score likelihood) the score
    column says so and a top-1 column follows it."""
    if not any(r.get("score_metric") == "likelihood" for r in rows):
        return _COLUMNS
    out = []
    for col in _COLUMNS:
        if col[1] == "accuracy":
            out += [("score: likelihood exp(-CE) or accuracy (%)", "accuracy", True), ("top-1 (%)", "top1_accuracy", True)]
        else:
            out.append(col)
    return tuple(out)


def _table(rows: Sequence[Mapping[str, Any]]) -> str:
    columns = _columns(rows)
    head = "".join(f'<th data-num="{int(num)}"' + (' data-dir="desc"' if key == "reward" else "") + f">{_e(h)}</th>"
                   for h, key, num in columns)
    body = []
    for r in rows:
        classes = (["front"] if r.get("on_front") else []) + (["over"] if r.get("under_target") is False else [])
        cells = []
        for _, key, num in columns:
            value = r.get(key)
            if num:
                raw = "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else repr(value)
                cls = "num lat" if key == "latency_ms" else "num"
                shown = (f"{value:.4f}" if key == "accuracy" and value is not None and r.get("score_metric") == "likelihood"
                         else _fmt(key, value))  # a likelihood is not a percentage
                cells.append(f'<td class="{cls}" data-v="{_e(raw)}">{_e(shown)}</td>')
            else:
                cells.append(f'<td class="{"arch" if key == "arch" else ""}">{_e(value)}</td>')
        body.append(f'<tr class="{" ".join(classes)}">' + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>"


def _card(label: str, value: str) -> str:
    return f'<div class="card"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _image(path: Path | None, alt: str) -> str:
    if path is None or not Path(path).is_file():
        return ""
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _best_line(best: Mapping[str, Any] | None) -> str:
    if not best:
        return "none"
    return f"#{best['number']}: {brief_score_text(best)} at {best['latency_ms']:.3g} ms, reward {best['reward']:.4f}"


def _pct(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{100 * value:.{digits}f}"


def _plain_table(columns: Sequence[tuple[str, str, bool]], rows: Sequence[Mapping[str, Any]]) -> str:
    """A sortable table of preformatted cells: `columns` (header, key, numeric?), each row's value of
    `key` a (shown text, sort value) pair or plain text."""
    head = "".join(f'<th data-num="{int(num)}">{_e(h)}</th>' for h, _, num in columns)
    body = []
    for r in rows:
        cells = []
        for _, key, num in columns:
            shown, raw = r.get(key) if isinstance(r.get(key), tuple) else (r.get(key), r.get(key))
            shown = "" if shown is None else shown
            if num:
                value = "" if raw is None or (isinstance(raw, float) and not math.isfinite(raw)) else repr(raw)
                cells.append(f'<td class="num" data-v="{_e(value)}">{_e(shown)}</td>')
            else:
                cells.append(f'<td class="{"arch" if key == "arch" else ""}">{_e(shown)}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table class="sortable"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>"


def _tau(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _deployment_section(d: Mapping[str, Any], png: Path | None, top: int | None) -> list[str]:
    """The deployment section: int8 accuracy per trial (the drop), and the ranking file's latencies."""
    parts = ["<h2>Deployment: fp32 and int8</h2>"]
    latency = " ".join(str(x) for x in (d.get("latency_runtime"), d.get("latency_precision")) if x)
    runtimes = ", ".join(d.get("int8_runtimes") or []) or d.get("int8_runtime") or "-"
    parts.append('<p class="note">Each trial\'s network quantized to int8 (static, per-channel weights'
                 + (f", calibrated on {d['calibration']} training images" if d.get("calibration") else "")
                 + f") and scored in {_e(runtimes)}; the drop is fp32 minus int8 accuracy, in points. The reward used"
                 f" the {_e(d.get('score') or 'fp32')} accuracy; latency was measured in {_e(latency or '?')}.</p>")
    rows = d.get("trials") or []
    if rows or d.get("n_int8_failed"):
        drop, worst = d.get("drop") or {}, d.get("worst")
        picks = (f"#{d['pick_fp32']} / #{d['pick_int8']}" if d.get("pick_fp32") is not None
                 and d.get("pick_int8") is not None else "-")
        cards = [_card("trials with an int8 accuracy", str(d["n_int8"])),
                 _card("median drop (points)", f"{100 * drop['median']:.2f}" if drop else "-"),
                 _card("largest drop", f"#{worst['number']}: {100 * worst['drop']:.2f}" if worst else "-"),
                 _card("Kendall tau fp32 vs int8 accuracy", _tau(d.get("kendall_accuracy"))),
                 _card("best under target by fp32 / int8", picks),
                 _card("failed to quantize", str(d.get("n_int8_failed") or 0))]
        parts.append(f'<div class="cards">{"".join(cards)}</div>')
    if png is not None:
        parts.append(f'<div class="plots">{_image(png, "accuracy and latency, fp32 against int8")}</div>')
    if rows:
        ranked = sorted(rows, key=lambda r: (-r["drop"], r["number"]))[: top if top else len(rows)]
        shown = [{"number": (str(r["number"]), r["number"]), "arch": r["arch"],
                  "fp32": (_pct(r["accuracy_fp32"]), r["accuracy_fp32"]), "int8": (_pct(r["accuracy_int8"]),
                                                                                   r["accuracy_int8"]),
                  "drop": (_pct(r["drop"]), r["drop"]), "lat": (_fmt("latency_ms", r["latency_ms"]), r["latency_ms"]),
                  "runtime": r.get("int8_runtime") or ""} for r in ranked]
        parts.append(f'<p class="note">{len(ranked)} of {len(rows)} trials, largest drop first; click a column to'
                     " sort.</p>")
        parts.append(_plain_table((("#", "number", True), ("arch", "arch", False), ("fp32 (%)", "fp32", True),
                                   ("int8 (%)", "int8", True), ("drop (points)", "drop", True),
                                   ("latency (ms)", "lat", True), ("int8 runtime", "runtime", False)), shown))
    elif not d.get("n_int8_failed"):
        parts.append('<div class="empty">no trial carries an int8 accuracy: search with --score int8</div>')
    if d.get("failed"):
        items = "".join(f"<li>#{f['number']}: {_e(f['failure'])}</li>" for f in d["failed"][-(top or 50):])
        parts.append(f"<p>Trials whose int8 quantization failed:</p><ul>{items}</ul>")
    ranking = d.get("ranking")
    if ranking:
        size = (ranking.get("space") or {}).get("input_size")
        where = f"{ranking['measured']} architectures of {ranking.get('space_type') or 'the space'}" + (
            f" at {size}x{size}" if size else "")
        other = (" <b>Not the study's space</b> (another class or settings): the ranking describes the space the"
                 " file sampled." if ranking.get("same_space") is False else "")
        parts.append(f"<h3>Latency ranking</h3><p class=\"note\">{_e(where)}, from <code>{_e(ranking.get('source') or '')}"
                     f"</code> (<code>benchmarks/deploy_ranking.py</code>), each measured in"
                     f" {_e(', '.join(ranking['backends']))}. Kendall tau 1: the same order; 0: unrelated.{other}</p>")
        pairs = [{"x": p["x"], "y": p["y"], "tau": (_tau(p.get("kendall")), p.get("kendall")),
                  "median": (f"{p['ratio']['median']:.2f}", p["ratio"]["median"]),
                  "range": f"{p['ratio']['min']:.2f} to {p['ratio']['max']:.2f}"} for p in ranking["pairs"]]
        parts.append(_plain_table((("latency of", "x", False), ("against", "y", False), ("Kendall tau", "tau", True),
                                   ("ratio, median", "median", True), ("ratio, range", "range", False)), pairs))
        every = [{"pair": k, "tau": (_tau(v), v)} for k, v in ranking.get("kendall", {}).items()]
        if len(every) > len(pairs):
            parts.append(_plain_table((("backends", "pair", False), ("Kendall tau", "tau", True)), every))
    return parts


def _op_types_section(d: Mapping[str, Any], png: Path | None) -> list[str]:
    """Latency by op type across lookup tables (`mnas.latency.lut_compare.compare_tables`)."""
    labels, base = d["labels"], d["base"]
    runtimes = sorted({k for row in d["types"] for k in row["int8_over_fp32"]})
    parts = ["<h2>Latency by op type (lookup tables)</h2>",
             f'<p class="note">{d["shared_units"]} layer units shared by the tables of {_e(", ".join(labels))}'
             f" ({_e(d.get('space_type') or 'the space')}, {d['input_size']} px): each op type's summed latency per"
             f" table, the median of its units' ratio to {_e(base)}, and, where a runtime has both, the median of"
             " its units' int8/fp32 ratio."
             + (" <b>Not the study's space</b> (another class or settings): the tables describe the space they were"
                " built for." if d.get("same_space") is False else "") + "</p>"]
    if png is not None:
        parts.append(f'<div class="plots">{_image(png, "latency by op type")}</div>')
    columns = [("op type", "type", False), ("units", "units", True)]
    columns += [(f"{label} (ms)", f"ms:{label}", True) for label in labels]
    columns += [(f"{label} / {base}", f"r:{label}", True) for label in labels[1:]]
    columns += [(f"{runtime} int8/fp32", f"q:{runtime}", True) for runtime in runtimes]
    rows = []
    for row in d["types"]:
        cells: dict[str, Any] = {"type": row["type"], "units": (str(row["units"]), row["units"])}
        cells.update({f"ms:{k}": (f"{v:.4f}", v) for k, v in row["ms"].items()})
        for key, ratios in (("r", row["ratio"]), ("q", row["int8_over_fp32"])):
            cells.update({f"{key}:{k}": (f"{v['median']:.2f}", v["median"]) if v else ("-", None)
                          for k, v in ratios.items()})
        rows.append(cells)
    parts.append(_plain_table(columns, rows))
    return parts


def render_html(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]], *, title: str,
                pareto_png: Path | None = None, history_png: Path | None = None,
                failures: Sequence[Mapping[str, Any]] = (), top: int | None = None,
                alphas_png: Path | None = None, deployment: Mapping[str, Any] | None = None,
                deployment_png: Path | None = None, op_types: Mapping[str, Any] | None = None,
                op_types_png: Path | None = None) -> str:
    """The page's HTML text: headline cards, both plots (embedded), the sortable table of `rows`
    (already ranked by reward), the failed trials' reasons, and the search config. With
    `alphas_png` (a gradient search), a section with its architecture weights over epochs; with
    `deployment` (`mnas.reports.deployment.deployment_data`), the fp32-against-int8 section; with
    `op_types` (`mnas.latency.lut_compare.compare_tables`), latency by op type across tables."""
    s = summary
    target = s.get("target_ms")
    best, under = s.get("best"), s.get("best_under_target")
    cards = [
        _card("trials complete", str(s["n_complete"])), _card("failed", str(s["n_failed"])),
        _card("running", str(s["n_running"])),
        _card("best reward", f"{best['reward']:.4f}" if best else "-"),
        _card("target", f"{target:g} ms" if target else "none"),
        _card("best under target", f"{brief_score_text(under)} @ {under['latency_ms']:.3g} ms" if under else "-"),
    ]
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>", f'<p class="sub">mnas {_e(__version__)} report</p>',
        f'<div class="cards">{"".join(cards)}</div>',
        '<h2>Summary</h2><ul>',
        f"<li>best by reward: {_e(_best_line(best))}"
        + (f' <br><code>{_e(best["arch"])}</code>' if best else "") + "</li>",
        f"<li>best under the target ({_e(f'{target:g} ms' if target else 'no target')}): {_e(_best_line(under))}"
        + (f' <br><code>{_e(under["arch"])}</code>' if under else "") + "</li>",
        f"<li>Pareto front{' of the retrained trials' if s.get('pareto_front_source') else ''}:"
        f" {len(s.get('pareto_front') or [])} trials"
        + (f" ({_e(', '.join(f'#{n}' for n in s['pareto_front']))})" if s.get("pareto_front") else "") + "</li>",
        "</ul>",
    ]
    if not s["n_complete"]:
        parts.append('<div class="empty">no complete trials yet</div>')
    parts += ['<h2>Plots</h2><div class="plots">', _image(pareto_png, "accuracy vs latency"),
              _image(history_png, "reward per trial"), "</div>"]
    if alphas_png is not None:
        parts += ["<h2>Architecture weights</h2><p class=\"note\">The gradient search's softmax weight of every op"
                  " (choice) on every edge (decision) after each epoch; the thick line is the largest weight at the last"
                  " epoch (a DARTS cell then keeps the two best inputs of each node, never <code>none</code>). The"
                  " derived trial's accuracy is the search network's running validation figure, not the architecture"
                  " trained alone (<code>mnas train</code> gives that).</p>",
                  f'<div class="plots">{_image(alphas_png, "architecture weights over epochs")}</div>']
    if deployment is not None:
        parts += _deployment_section(deployment, deployment_png, top)
    if op_types is not None:
        parts += _op_types_section(op_types, op_types_png)
    shown = f"top {len(rows)} of {s['n_complete']} complete trials by reward" if top is not None else "trials"
    parts.append(f"<h2>Best trials</h2><p class=\"note\">{_e(shown)}; click a column to sort. "
                 "Orange edge: on the Pareto front; red latency: over the target.</p>")
    parts.append(_table(rows) if rows else '<div class="empty">no complete trials yet</div>')
    if failures:
        items = "".join(f"<li>#{f['number']}: {_e(f.get('failure') or 'unknown failure')}</li>" for f in failures)
        parts.append(f"<h2>Failed trials</h2><ul>{items}</ul>")
    if s.get("config") is not None:
        config = json.dumps(s["config"], indent=2, sort_keys=True, default=str)
        parts.append(f"<h2>Search config</h2><details open><summary>study.meta['config']</summary>"
                     f"<pre>{_e(config)}</pre></details>")
    parts.append(f"<script>{_JS}</script></body></html>")
    return "\n".join(parts) + "\n"
