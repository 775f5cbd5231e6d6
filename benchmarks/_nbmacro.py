"""NAS-Bench-Macro as a landscape for the benchmarks: every key's accuracies (mean and per seed) and
its latency on this CPU from a validated lookup table (`mnas latency build-lut --space nbmacro`).

Latencies are predicted once per distinct network and cached beside the table
(``<table>.latency.json``), so every benchmark sees the same figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRUTH = ROOT / ".." / "shared" / "data" / "nas-bench-macro_cifar10.json"
DATA = ROOT / ".." / "shared" / "data" / "cifar10_10k.npz"


@dataclass
class Landscape:
    keys: list[str]                 # the benchmark's 6,561 keys
    tokens: np.ndarray              # (6561, 8): key digits = the preset space's tokens
    arch: list[str]                 # canonical text of each key's network (equivalent keys share one)
    acc: np.ndarray                 # (6561,) three-seed mean accuracy, fraction
    seeds: np.ndarray               # (6561, 3) per-seed accuracy
    lat: np.ndarray                 # (6561,) predicted latency, ms
    index: dict[str, int]           # key -> row

    def row(self, tokens) -> int:
        return self.index["".join(str(int(t)) for t in tokens)]

    def distinct(self) -> np.ndarray:
        """Row of the first key of each distinct network (3,969 rows)."""
        seen: dict[str, int] = {}
        for i, a in enumerate(self.arch):
            seen.setdefault(a, i)
        return np.array(sorted(seen.values()))

    def optimum(self, target_ms: float | None) -> float:
        ok = np.ones(len(self.acc), bool) if target_ms is None else self.lat <= target_ms
        return float(self.acc[ok].max())


def load_landscape(lut_path: str | Path, truth_path: str | Path = TRUTH) -> Landscape:
    from mnas.latency import LookupTable
    from mnas.space.presets import nas_bench_macro_space

    doc = json.loads(Path(truth_path).read_text())
    space = nas_bench_macro_space()
    keys = sorted(doc)
    tokens = np.array([[int(c) for c in k] for k in keys])
    archs = [str(space.decode(list(t))) for t in tokens]
    cache = Path(str(lut_path) + ".latency.json")
    lut_mtime = Path(lut_path).stat().st_mtime
    lat_by_arch: dict[str, float] = {}
    if cache.is_file() and cache.stat().st_mtime >= lut_mtime:
        lat_by_arch = json.loads(cache.read_text())
    if not set(archs) <= set(lat_by_arch):
        table = LookupTable.load(lut_path)
        lat_by_arch = {a: float(table.predict(a)) for a in sorted(set(archs))}
        cache.write_text(json.dumps(lat_by_arch))
    return Landscape(keys, tokens, archs, np.array([doc[k]["mean_acc"] / 100 for k in keys]),
                     np.array([[s / 100 for s in doc[k]["test_acc"]] for k in keys]),
                     np.array([lat_by_arch[a] for a in archs]), {k: i for i, k in enumerate(keys)})


def targets(land: Landscape, quantiles=(0.25, 0.5, 0.75)) -> dict[str, float]:
    """Latency targets at percentiles of the distinct networks' latencies."""
    lat = land.lat[land.distinct()]
    return {f"p{int(q * 100)}": float(np.quantile(lat, q)) for q in quantiles}


def mean_se(x) -> str:
    x = np.asarray(x, dtype=float)
    return f"{x.mean():.3f} ± {x.std(ddof=1) / np.sqrt(len(x)):.3f}" if len(x) > 1 else f"{x.mean():.3f}"
