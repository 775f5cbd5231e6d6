"""Latency benchmark: measurement stability, LUT build time, LUT accuracy, prediction speed.

    python benchmarks/latency.py [--lut runs/lut224.json] [--rebuild] [--n 50] [--json out.json]

All figures are measured when it runs (nothing is hard-coded). The LUT build (the whole factorized
space at 224x224 on ONNX Runtime, 1 thread) takes minutes: an existing complete table at --lut is
reused and its recorded build time reported, unless --rebuild.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def stability(repeats: int, input_size: int) -> dict:
    """Ten independent measurements of MnasNet-A1 (fresh export and session each time)."""
    from mnas.latency import OnnxRuntime
    from mnas.space import get_arch

    arch = get_arch("mnasnet_a1")
    backend = OnnxRuntime(threads=1)
    medians, walls, inner_cv = [], [], []
    for _ in range(repeats):
        backend.clear_cache()
        result = backend.measure(arch, input_size)
        medians.append(result.median_ms)
        walls.append(result.wall_median_ms)
        inner_cv.append(result.cv)
    return {"model": "mnasnet_a1", "input_size": input_size, "repeats": repeats, "clock": result.clock,
            "medians_ms": medians, "mean_ms": statistics.fmean(medians),
            "cv_between": statistics.pstdev(medians) / statistics.fmean(medians),
            "wall_medians_ms": walls, "wall_cv_between": statistics.pstdev(walls) / statistics.fmean(walls),
            "mean_cv_within": statistics.fmean(inner_cv), "device": result.device, "runtime": result.runtime}


def build(path: Path, rebuild: bool, input_size: int) -> tuple[object, dict]:
    from mnas.latency import OnnxRuntime, build_lut
    from mnas.space import MnasNetSpace

    if rebuild and path.exists():
        path.unlink()
    reused = path.exists() and json.loads(path.read_text()).get("complete", False)
    space = MnasNetSpace(1000, input_size)
    last = [0.0]

    def progress(done: int, total: int, what: str) -> None:
        if time.monotonic() - last[0] > 30 or done == total:
            last[0] = time.monotonic()
            print(f"  build-lut {done}/{total}", file=sys.stderr, flush=True)

    start = time.perf_counter()
    table = build_lut(space, OnnxRuntime(threads=1), path, progress=progress)
    elapsed = time.perf_counter() - start
    return table, {"path": str(path), "entries": len(table.entries), "reused": reused,
                   "build_seconds_recorded": table.meta.get("build_seconds"),
                   "this_run_seconds": elapsed, "scale": table.scale, "overhead_ms": table.overhead_ms,
                   "empty_graph_ms": table.meta.get("empty_ms")}


def accuracy(table, backend, n: int, seed: int, recalibrate_with: int = 0) -> dict:
    from mnas.latency import validate_lut
    from mnas.models import profile

    start = time.perf_counter()
    report = validate_lut(table, backend, n=n, seed=seed, recalibrate_with=recalibrate_with)
    report["seconds"] = time.perf_counter() - start
    from scipy.stats import spearmanr

    macs = [profile(r["arch"], table.input_size, table.num_classes).macs for r in report["rows"]]
    report["spearman_macs_vs_measured"] = float(spearmanr(macs, [r["measured_ms"] for r in report["rows"]])[0])
    report.pop("backend", None)
    return report


def prediction_speed(table, count: int) -> dict:
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(**table.meta["space"])
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(count)]
    table._arch_cache.clear()
    table._block_cache.clear()
    table._ends_cache.clear()
    start = time.perf_counter()
    for arch in archs:
        table.predict(arch)
    fresh = time.perf_counter() - start
    start = time.perf_counter()
    for arch in archs:
        table.predict(arch)
    cached = time.perf_counter() - start
    return {"archs": count, "fresh_per_s": count / fresh, "fresh_us": 1e6 * fresh / count,
            "cached_per_s": count / cached, "cached_us": 1e6 * cached / count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lut", default="runs/lut224_onnxruntime_1t.json")
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--input-size", type=int, default=224)
    parser.add_argument("--json", help="also write every figure to this file")
    args = parser.parse_args()

    print(f"load average at start: {os.getloadavg()}")
    stab = stability(10, args.input_size)
    print(f"\n== MnasNet-A1, ONNX Runtime, 1 thread, {args.input_size}x{args.input_size}, batch 1 ==")
    print(f"cpu: {stab['device']['cpu']}, onnxruntime {stab['runtime'].get('onnxruntime')}, clock: {stab['clock']}")
    print("ten medians (ms): " + " ".join(f"{m:.3f}" for m in stab["medians_ms"]))
    print(f"mean {stab['mean_ms']:.3f} ms; CV between the ten measurements {100 * stab['cv_between']:.2f}%"
          f" (wall clock: {100 * stab['wall_cv_between']:.2f}%);"
          f" mean CV within one {100 * stab['mean_cv_within']:.2f}%")

    table, info = build(Path(args.lut), args.rebuild, args.input_size)
    print(f"\n== LUT for the factorized space at {args.input_size}x{args.input_size} ==")
    how = "reused (build time as recorded by that build)" if info["reused"] else "built in this run"
    print(f"{info['entries']} layer signatures; {how}: {info['build_seconds_recorded']:.0f} s")
    print(f"fit: measured = {info['scale']:.4f} x sum + {info['overhead_ms']:.4f} ms;"
          f" empty graph {1000 * info['empty_graph_ms']:.2f} us")

    from mnas.latency import OnnxRuntime

    reports = {}
    for label, k in (("as built", 0), ("recalibrated on 10 other networks measured now", 10)):
        # A fresh backend each time: the second pass measures everything again, minutes later.
        acc = reports[label] = accuracy(table, OnnxRuntime(threads=1), args.n, args.seed, k)
        print(f"\n== LUT accuracy on {acc['n']} random architectures, fit {label} ==")
        print(f"fit: {acc['fit']['scale']:.4f} x sum {acc['fit']['overhead_ms']:+.4f} ms")
        print(f"within ±10%: {100 * acc['within_10pct']:.1f}%   MAPE: {acc['mape']:.2f}%   "
              f"Spearman: {acc['spearman']:.4f}   max |error|: {acc['max_abs_pct']:.2f}%   ({acc['seconds']:.0f} s)")
        print(f"(for comparison, Spearman of MACs vs measured latency: {acc['spearman_macs_vs_measured']:.4f})")
        print("largest errors:")
        for row in acc["rows"][:5]:
            print(f"  {row['error_pct']:+6.2f}%  pred {row['predicted_ms']:.3f}  meas {row['measured_ms']:.3f}"
                  f"  (cv {100 * row['measured_cv']:.1f}%)  {row['arch']}")

    first, second = ({r["arch"]: r["measured_ms"] for r in rep["rows"]} for rep in reports.values())
    drift = np.array([100 * (second[a] - first[a]) / first[a] for a in first])
    print(f"\n== Noise floor: the same {len(drift)} networks measured twice, minutes apart ==")
    print(f"second within ±10% of first: {100 * np.mean(np.abs(drift) <= 10):.1f}%;"
          f" mean |difference| {np.mean(np.abs(drift)):.2f}%; max {np.max(np.abs(drift)):.2f}%;"
          f" mean difference {np.mean(drift):+.2f}%")

    speed = prediction_speed(table, 20_000)
    print("\n== LUT prediction speed ==")
    print(f"{speed['fresh_per_s']:,.0f} predictions/s on first sight ({speed['fresh_us']:.1f} us each),"
          f" {speed['cached_per_s']:,.0f}/s cached ({speed['cached_us']:.2f} us)")
    print(f"load average at end: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"stability": stab, "lut": info, "accuracy": reports, "speed": speed,
                                               "remeasure_diff_pct": drift.tolist()},
                                              indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
