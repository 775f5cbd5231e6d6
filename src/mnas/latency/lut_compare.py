"""Latency by op type across lookup tables of one space (issue 20 item 5, "per op type, from the
tables"): which kinds of layer a runtime or precision speeds up, and which it slows down.

`compare_tables({"onnxruntime/fp32": t1, "litert/int8": t2, ...})` matches the tables' units by key
(the same layer at the same input resolution), groups them by op type (`op_type`: the op, kernel,
expansion and squeeze-excite of a block layer; the stem; the head; a cell op's name) and returns,
per type, the summed latency in each table and the spread of each unit's ratio to the first table
(median, min, max); where a runtime has both an fp32 and an int8 table (labels 'runtime/precision',
as `mnas.latency.ranking.label_of` writes them), also each type's int8/fp32 ratio within that
runtime. Units present in only some tables are counted, not compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FORMAT", "compare_tables", "op_type", "plot_op_types"]

FORMAT = "mnas-lut-op-types/1"
_BLOCK = re.compile(r"^(?P<op>[a-z]+)_k(?P<k>\d+)_s\d+_e(?P<e>\d+)_i\d+_o\d+_se(?P<se>[0-9.eE+-]+)_")


def op_type(key: str) -> str:
    """The op type of a table key: 'stem', 'head', 'mbconv k5 e6 +se', 'ds k3', 'conv k3', 'proj',
    or a cell op's name ('nor_conv_3x3')."""
    name = key.split("@", 1)[0]
    if name.startswith("stem_"):
        return "stem"
    if name.startswith("head_"):
        return "head"
    block = _BLOCK.match(name)
    if block:
        op, k, e = block["op"], block["k"], block["e"]
        text = "proj" if op == "proj" else f"{op} k{k}" + (f" e{e}" if op == "mbconv" else "")
        return text + (" +se" if float(block["se"]) > 0 else "")
    if ":" in name:  # a cell unit: family:kind:op_i.._o.._s..
        parts = name.split(":")
        if len(parts) >= 3 and parts[1] in ("stem", "head"):
            return parts[1]
        return parts[-1].split("_i", 1)[0]
    return name.split("_", 1)[0]


def _space_type(table: Any) -> str:
    return str(table.meta.get("space_type") or "MnasNetSpace")  # tables from before the field: the MnasNet space


def _check_same_space(tables: Mapping[str, Any]) -> None:
    first_label, first = next(iter(tables.items()))
    for label, table in tables.items():
        bad = next((k for k, v in table.entries.items() if not (math.isfinite(v) and v >= 0)), None)
        if bad is not None:
            raise ValueError(f"{label} is a damaged lookup table (unit {bad}: {table.entries[bad]} ms is not a finite"
                             " number >= 0): rebuild it with 'mnas latency build-lut'")
        for what, a, b in (("input size", first.input_size, table.input_size),
                           ("classes", first.num_classes, table.num_classes),
                           ("space", _space_type(first), _space_type(table))):
            if a != b:
                raise ValueError(f"{label} was built for another {what} than {first_label} ({b} against {a}):"
                                 " compare tables of one space, built with the same data and space options")


def _ratios(entries: Mapping[str, Mapping[str, float]], keys: list[str], num: str, den: str) -> dict[str, float] | None:
    r = np.array([entries[num][k] / entries[den][k] for k in keys if entries[den][k] > 0])
    return {"median": float(np.median(r)), "min": float(r.min()), "max": float(r.max())} if len(r) else None


def compare_tables(tables: Mapping[str, Any]) -> dict[str, Any]:
    """Per op type: units shared by every table, their summed latency (ms) per table, and each
    unit's latency ratio to the first table (median, min, max). `tables`: label -> `LookupTable`
    (at least two, one space). ValueError (one line) otherwise, or when they share no unit."""
    if len(tables) < 2:
        raise ValueError("compare at least two lookup tables (say one fp32 and one int8 table of a space)")
    _check_same_space(tables)
    labels = list(tables)
    entries = {label: tables[label].entries for label in labels}
    shared = sorted(set.intersection(*(set(e) for e in entries.values())))
    if not shared:
        raise ValueError(f"the tables share no unit ({', '.join(labels)}): were they built for the same space and"
                         " input size?")
    groups: dict[str, list[str]] = {}
    for key in shared:
        groups.setdefault(op_type(key), []).append(key)
    base = labels[0]
    precisions = {}  # runtime -> (its fp32 label, its int8 label)
    for label in labels:
        runtime, _, precision = label.partition("/")
        if precision == "int8" and f"{runtime}/fp32" in entries:
            precisions[runtime] = (f"{runtime}/fp32", label)
    rows = []
    for kind, keys in groups.items():
        ms = {label: float(sum(entries[label][k] for k in keys)) for label in labels}
        ratio = {label: _ratios(entries, keys, label, base) for label in labels[1:]}
        int8 = {runtime: _ratios(entries, keys, q, f) for runtime, (f, q) in precisions.items()}
        rows.append({"type": kind, "units": len(keys), "ms": ms, "ratio": ratio, "int8_over_fp32": int8})
    rows.sort(key=lambda row: -row["ms"][base])
    total = {label: float(sum(entries[label][k] for k in shared)) for label in labels}
    return {"format": FORMAT, "labels": labels, "base": base, "shared_units": len(shared),
            "only_in": {label: len(set(entries[label]) - set(shared)) for label in labels},
            "input_size": tables[base].input_size, "space_type": _space_type(tables[base]),
            "space": tables[base].meta.get("space") if isinstance(tables[base].meta.get("space"), dict) else None,
            "total_ms": total, "types": rows}


def plot_op_types(data: Mapping[str, Any], path: Any) -> None:
    """Bar chart of each op type's median latency ratio to the first table, one bar per other table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    types = [row for row in data["types"] if any(row["ratio"].values())]
    others = [label for label in data["labels"] if label != data["base"]]
    fig, ax = plt.subplots(figsize=(min(12.0, max(5.0, 0.5 * len(types) * len(others) + 2)), 3.8))
    width = 0.8 / max(1, len(others))
    x = np.arange(len(types))
    for i, label in enumerate(others):
        med = [row["ratio"][label]["median"] if row["ratio"].get(label) else np.nan for row in types]
        lo = [m - row["ratio"][label]["min"] if row["ratio"].get(label) else 0 for m, row in zip(med, types, strict=True)]
        hi = [row["ratio"][label]["max"] - m if row["ratio"].get(label) else 0 for m, row in zip(med, types, strict=True)]
        ax.bar(x + (i - (len(others) - 1) / 2) * width, med, width, yerr=[lo, hi], capsize=2, label=label)
    ax.axhline(1.0, color="0.4", lw=0.8, ls="--")
    ax.set_xticks(x, [f"{row['type']}\n({row['units']})" for row in types], fontsize=7, rotation=30, ha="right")
    ax.set_ylabel(f"latency / {data['base']} (median, range)")
    ax.set_title(f"Latency by op type against {data['base']} ({data['shared_units']} shared units)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
