"""A ground truth: architectures with standalone accuracies measured by someone else.

`load_ground_truth(path)` reads

- NAS-Bench-Macro's file as it is published (``nas-bench-macro_cifar10.json``: 8-digit keys, each
  ``{"test_acc": [three seeds], "mean_acc", "std", "params", "flops"}``). Keys are mapped onto
  `mnas.space.presets.nas_bench_macro_space` by token (digit ``i`` is the space's token ``i``); keys
  that differ only in where a stage's identity layers sit are one network, so they are merged into
  one entry (6,561 keys, 3,969 entries). The file gives such keys identical values (each distinct
  network was trained once, three seeds), so an entry keeps one copy; where merged keys carry
  different trainings, they are pooled and the accuracy is their mean. Accuracies are converted from
  percent to fractions.
- a JSON list of ``{"arch": TEXT, "accuracy": A, "seeds": [A1, A2, ...]}`` (``seeds`` optional),
  or an object ``{TEXT: A}`` / ``{TEXT: {"accuracy": A, "seeds": [...]}}``;
- a CSV with an ``arch`` column, an ``accuracy`` column (or only per-seed columns) and optional
  per-seed columns named ``seed*`` or ``accuracy_seed*``.

The architecture text is any registered family's (`as_arch`); with `space` given, each entry also
records the space's canonical tokens, which is how a supernet of the same decisions at another width
ranks it (`GroundTruth.tokens_match`). Layer 1: no torch.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnas.space.arch import as_arch
from mnas.space.base import SearchSpace

__all__ = ["GroundTruth", "TruthEntry", "load_ground_truth"]

_MAX_BYTES = 512 * 2**20
_NBM_KEY = re.compile(r"[0-2]{8}\Z")


@dataclass(frozen=True)
class TruthEntry:
    """One architecture of a ground truth: its canonical text, mean accuracy, the individual
    trainings (seeds, and merged keys) where the file has them, and its source keys."""

    arch: str
    accuracy: float
    seeds: tuple[float, ...] = ()
    tokens: tuple[int, ...] | None = None
    keys: tuple[str, ...] = ()
    params: int | None = None
    flops: int | None = None


@dataclass
class GroundTruth:
    """Entries with distinct architectures; `choices` are the decisions' choice names of the space
    the tokens belong to (None without a space)."""

    entries: list[TruthEntry]
    name: str = "ground truth"
    choices: tuple[tuple[str, ...], ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def tokens_match(self, space: SearchSpace) -> bool:
        """Whether `space` has the same decisions (names of choices, in order) as the space the tokens
        were taken in — then `space.decode(entry.tokens)` is the entry's network in `space`, at
        whatever width or resolution `space` has."""
        return self.choices is not None and tuple(tuple(d.choices) for d in space.decisions) == self.choices

    def arch_in(self, entry: TruthEntry, space: SearchSpace) -> str:
        """The text of `entry`'s network in `space`: by token where the decisions match, otherwise the
        entry's own text, which `space` must contain (ValueError naming the entry otherwise)."""
        if entry.tokens is not None and self.tokens_match(space):
            return str(space.decode(list(entry.tokens)))
        try:
            return str(space.decode(space.encode(as_arch(entry.arch))))
        except (ValueError, NotImplementedError) as exc:
            raise ValueError(f"ground truth entry '{entry.arch[:80]}' is not in the supernet's space ({exc}); give a"
                             " ground truth of this space, or train the supernet on the ground truth's space") from None

    def seed_pairs(self, indices: Sequence[int] | None = None) -> tuple[list[float], list[float]] | None:
        """First and second training of each chosen entry (all of them must have two), else None."""
        chosen = [self.entries[i] for i in (indices if indices is not None else range(len(self.entries)))]
        if not chosen or any(len(e.seeds) < 2 for e in chosen):
            return None
        return [e.seeds[0] for e in chosen], [e.seeds[1] for e in chosen]


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"{where}: expected a number, got {type(value).__name__}")
    try:
        x = float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ValueError(f"{where}: expected a finite number, got {value!r}")
    return x


def _accuracy(value: Any, where: str) -> float:
    """An accuracy: a finite number in [0, 100] (a fraction, or a percentage)."""
    x = _number(value, where)
    if not 0 <= x <= 100:
        raise ValueError(f"{where}: accuracy {value!r} is not in [0, 1] (or [0, 100] in percent)")
    return x


def _count(value: Any, where: str) -> int | None:
    """NAS-Bench-Macro's 'params' / 'flops': a non-negative whole number, or absent (None)."""
    if value is None:
        return None
    x = _number(value, where)
    if x < 0 or x != int(x):
        raise ValueError(f"{where}: expected a non-negative whole number, got {value!r}")
    return int(x)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of repeated keys and drops the others silently: refuse them instead."""
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"key '{key[:60]}' appears twice (JSON keeps only the last): give each architecture once,"
                             " or a list of {'arch', 'accuracy'} objects, whose repeats are pooled")
        doc[key] = value
    return doc


def _entry(arch_text: Any, accuracy: Any, seeds: Any, where: str, space: SearchSpace | None) -> TruthEntry:
    if not isinstance(arch_text, str) or not arch_text.strip():
        raise ValueError(f"{where}: expected an architecture text")
    try:
        arch = as_arch(arch_text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if seeds is not None and not isinstance(seeds, (list, tuple)):
        raise ValueError(f"{where}: 'seeds' must be a list of numbers")
    seed_values = tuple(_accuracy(s, f"{where} seed {i}") for i, s in enumerate(seeds or ()))
    if accuracy is None:
        if not seed_values:
            raise ValueError(f"{where}: no accuracy and no per-seed values")
        accuracy = sum(seed_values) / len(seed_values)
    tokens = None
    if space is not None:
        try:
            tokens = tuple(space.encode(arch))
        except ValueError as exc:
            raise ValueError(f"{where}: not in the given space ({exc})") from None
    return TruthEntry(str(arch), _accuracy(accuracy, where), seed_values, tokens, (str(arch_text),))


def _merge(entries: list[TruthEntry]) -> list[TruthEntry]:
    """One entry per architecture: trainings pooled, accuracy their mean (a mean of means where an
    entry had no per-seed values)."""
    groups: dict[str, list[TruthEntry]] = {}
    for e in entries:
        groups.setdefault(e.arch, []).append(e)
    out = []
    for arch, group in groups.items():
        if len(group) == 1:
            out.append(group[0])
            continue
        # Identical training lists are one training reported under several keys (NAS-Bench-Macro gives
        # equivalent keys the same three values): pool each distinct list once.
        distinct = list(dict.fromkeys(e.seeds for e in group))
        seeds = tuple(s for run in distinct for s in run)
        acc = sum(seeds) / len(seeds) if seeds and all(e.seeds for e in group) else sum(e.accuracy for e in group) / len(group)
        first = group[0]
        out.append(TruthEntry(arch, acc, seeds, first.tokens, tuple(k for e in group for k in e.keys),
                              first.params, first.flops))
    return out


def _is_nas_bench_macro(doc: Any) -> bool:
    return (isinstance(doc, dict) and len(doc) > 0 and all(isinstance(k, str) and _NBM_KEY.match(k) for k in doc)
            and all(isinstance(v, dict) and "test_acc" in v for v in doc.values()))


def _nas_bench_macro(doc: dict[str, Any], path: str) -> GroundTruth:
    from mnas.space.presets import nas_bench_macro_space

    space = nas_bench_macro_space()
    entries = []
    for key, value in doc.items():
        seeds = value.get("test_acc")
        if not isinstance(seeds, list) or not seeds:
            raise ValueError(f"{path}: key {key}: 'test_acc' must be a non-empty list")
        seed_values = tuple(_accuracy(s, f"{path}: key {key}") / 100 for s in seeds)
        arch = space.decode([int(c) for c in key])
        entries.append(TruthEntry(str(arch), sum(seed_values) / len(seed_values), seed_values, tuple(space.encode(arch)),
                                  (key,), _count(value.get("params"), f"{path}: key {key} 'params'"),
                                  _count(value.get("flops"), f"{path}: key {key} 'flops'")))
    merged = _at_least_two(_merge(entries), path)
    return GroundTruth(merged, "NAS-Bench-Macro (CIFAR-10, 50 epochs, 3 seeds)",
                       tuple(tuple(d.choices) for d in space.decisions),
                       {"format": "nas-bench-macro", "keys": len(doc), "space": space.settings()})


def _from_json(doc: Any, path: str, space: SearchSpace | None) -> list[TruthEntry]:
    if isinstance(doc, list):
        out = []
        for i, item in enumerate(doc):
            where = f"{path}: item {i}"
            if not isinstance(item, dict) or "arch" not in item:
                raise ValueError(f"{where}: expected an object with 'arch' and 'accuracy' (or 'seeds')")
            out.append(_entry(item["arch"], item.get("accuracy"), item.get("seeds"), where, space))
        return out
    if isinstance(doc, dict):
        out = []
        for key, value in doc.items():
            where = f"{path}: '{str(key)[:60]}'"
            if isinstance(value, dict):
                out.append(_entry(key, value.get("accuracy"), value.get("seeds"), where, space))
            else:
                out.append(_entry(key, value, None, where, space))
        return out
    raise ValueError(f"{path}: expected a JSON list of {{'arch', 'accuracy'}} objects or an object of arch -> accuracy")


def _from_csv(text: str, path: str, space: SearchSpace | None) -> list[TruthEntry]:
    rows = list(csv.DictReader(text.splitlines()))
    if not rows or "arch" not in (rows[0].keys()):
        raise ValueError(f"{path}: expected a CSV with a header naming an 'arch' column and an 'accuracy' column")
    seed_cols = [c for c in rows[0] if c and (c.startswith("seed") or c.startswith("accuracy_seed"))]
    if "accuracy" not in rows[0] and not seed_cols:
        raise ValueError(f"{path}: expected an 'accuracy' column or per-seed columns (seed0, seed1, ...)")
    out = []
    for i, row in enumerate(rows, 2):
        seeds = [row[c] for c in seed_cols if row.get(c) not in (None, "")]
        acc = row.get("accuracy") or None
        out.append(_entry(row["arch"], acc, seeds or None, f"{path}: line {i}", space))
    return out


def load_ground_truth(path: str | Path, space: SearchSpace | None = None) -> GroundTruth:
    """The ground truth in `path` (see the module docstring for the formats). `space`: record each
    entry's tokens in it (NAS-Bench-Macro's file always uses its own space)."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"ground truth not found: {path}")
    if p.stat().st_size > _MAX_BYTES:
        raise ValueError(f"{path}: {p.stat().st_size / 2**20:.0f} MiB is larger than a ground truth file may be (512 MiB)")
    try:
        text = p.read_text(encoding="utf-8-sig")  # a spreadsheet's CSV often starts with a byte-order mark
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file: expected JSON or CSV") from None
    if p.suffix.lower() == ".csv":
        entries = _from_csv(text, str(path), space)
    else:
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except ValueError as exc:
            if not isinstance(exc, json.JSONDecodeError):
                raise ValueError(f"{path}: {exc}") from None  # a repeated key
            raise ValueError(f"{path}: not valid JSON ({exc.__class__.__name__}): expected JSON, or a .csv file") from None
        except RecursionError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc.__class__.__name__}): expected JSON, or a .csv file") from None
        if _is_nas_bench_macro(doc):
            return _nas_bench_macro(doc, str(path))
        entries = _from_json(doc, str(path), space)
    choices = tuple(tuple(d.choices) for d in space.decisions) if space is not None else None
    _one_scale(entries, str(path))
    return GroundTruth(_at_least_two(_merge(entries), str(path)), p.name, choices,
                       {"format": p.suffix.lower().lstrip(".") or "json"})


def _one_scale(entries: list[TruthEntry], path: str) -> None:
    """Fractions and percentages in one file would rank every fraction below every percentage: refuse the mix."""
    values = [v for e in entries for v in (e.accuracy, *e.seeds)]
    low = [v for v in values if v <= 1]
    high = [v for v in values if v > 1]
    if low and high:
        raise ValueError(f"{path}: accuracies mix fractions (e.g. {low[0]:g}) and percentages (e.g. {high[0]:g}):"
                         " give every accuracy on one scale")


def _at_least_two(entries: list[TruthEntry], path: str) -> list[TruthEntry]:
    """The merged entries, counted after merging (repeats of one architecture are one network), which must
    differ in accuracy somewhere (Kendall tau is undefined otherwise)."""
    if len(entries) < 2:
        raise ValueError(f"{path}: {len(entries)} distinct architecture(s): a ground truth needs at least 2")
    if len({e.accuracy for e in entries}) == 1:
        raise ValueError(f"{path}: all {len(entries)} architectures have the same accuracy: nothing to rank them by")
    return entries
