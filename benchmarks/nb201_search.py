"""A 20-trial evolution search on the NAS-Bench-201 cell space, and a lookup table checked on cells.

    cpu-slot python benchmarks/nb201_search.py            # about 10-15 minutes of one core

1. Latency target: the median ONNX Runtime latency (1 thread, batch 1, 32x32) of `--target-cells`
   random cells of the space (seeded), measured here.
2. Search: regularized evolution, `--trials` trials on `NB201Space(10, 32, channels, cells_per_stage)`
   (the benchmark's cell, 16 channels; `--cells-per-stage` 1 instead of the benchmark's 5, so that
   each proxy run fits on one shared core), proxy training for `--steps` steps of batch 64 on
   ``../shared/data/cifar10_10k.npz`` (stated as a fraction of an epoch), latency measured by ONNX
   Runtime (1 thread) for every candidate, soft MnasNet reward at the target.
3. Lookup table: every op of the space at each stage's shape (`mnas.latency.lut_build.build_lut`),
   fitted on `--fit` cells, validated on `--validate` other random cells measured whole
   (within +-10%, MAPE, Spearman).
Prints measured figures only, with the machine's load (`uptime`) before and after.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from mnas.latency import OnnxRuntime
from mnas.latency.lut_build import build_lut, validate_lut
from mnas.loop import Budget, search
from mnas.objectives import Reward
from mnas.space import NB201Space
from mnas.train import ProxyConfig, load

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--steps", type=int, default=70, help="proxy steps of batch 64 per candidate")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--cells-per-stage", type=int, default=1)
    parser.add_argument("--target-cells", type=int, default=5)
    parser.add_argument("--fit", type=int, default=8)
    parser.add_argument("--validate", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not Path(args.data).is_file():
        sys.exit(f"data not found: {args.data}")

    torch.set_num_threads(1)
    print(f"# start {time.strftime('%H:%M:%S')}; load: {uptime()}")
    data = load(args.data, val_fraction=0.1, seed=0)
    space = NB201Space(10, 32, channels=args.channels, cells_per_stage=args.cells_per_stage)
    latency = OnnxRuntime(threads=1)
    n_train = len(data.split("train")[1])
    proxy = ProxyConfig(steps=args.steps, batch_size=64, lr=0.05, threads=1, seed=args.seed)
    print(f"# data {data}; space {space!r} (c{args.channels}_n{args.cells_per_stage})")
    print(f"# proxy: {args.steps} steps x batch 64 = {args.steps * 64} images = {args.steps * 64 / n_train:.2f} epoch"
          f" of {n_train} training images, SGD lr 0.05 cosine, 1 thread; latency: ONNX Runtime, 1 thread, batch 1")

    rng = np.random.default_rng([args.seed, 7])
    probe = [space.sample(rng) for _ in range(args.target_cells)]
    probe_ms = [latency.measure(a, 32, 10).median_ms for a in probe]
    target_ms = float(np.median(probe_ms))
    print(f"# target: median of {len(probe)} random cells = {target_ms:.3f} ms (cells: "
          f"{', '.join(f'{m:.3f}' for m in sorted(probe_ms))} ms)")

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        study = search(space, data=data, latency=latency, reward=Reward.soft(target_ms), strategy="evolution",
                       proxy=proxy, budget=Budget(trials=args.trials), storage=str(Path(tmp) / "nb201.db"),
                       seed=args.seed)
        wall = time.perf_counter() - started
        summary = study.summary(target_ms=target_ms)
        trials = [t for t in study.trials if t.accuracy is not None]
        print(f"# search: {summary['n_trials']} trials {summary['states']} in {wall / 60:.1f} min")
        if trials:
            acc = np.array([t.accuracy for t in trials])
            lat = np.array([t.latency_ms for t in trials])
            under = np.mean(lat <= target_ms)
            print(f"# candidates: accuracy mean {100 * acc.mean():.1f}% (sd {100 * acc.std(ddof=1):.1f}, n {acc.size}),"
                  f" latency {lat.min():.3f}-{lat.max():.3f} ms, {100 * under:.0f}% under the target")
        for label, trial in (("best under target", study.best(target_ms=target_ms)), ("best reward", study.best())):
            if trial is not None:
                print(f"{label}: trial {trial.number}, val acc {100 * trial.accuracy:.1f}%, latency"
                      f" {trial.latency_ms:.3f} ms, reward {trial.reward:.4f}, params {trial.params:,},"
                      f" MACs {trial.macs / 1e6:.1f}M\n  {trial.arch}")

        print(f"# load after search: {uptime()}")
        t0 = time.perf_counter()
        table = build_lut(space, latency, Path(tmp) / "nb201.lut.json", fit_archs=args.fit, seed=args.seed)
        build_s = time.perf_counter() - t0
        print(f"# lookup table: {len(table.entries)} op signatures, fit {table.scale:.3f} x sum"
              f" {table.overhead_ms:+.3f} ms on {args.fit} cells, built in {build_s:.0f} s")
        report = validate_lut(table, latency, n=args.validate, seed=12345)
    rho = "n/a" if report["spearman"] is None else f"{report['spearman']:.3f}"
    print(f"lookup table on {report['n']} random cells (not used in the fit): {100 * report['within_10pct']:.0f}%"
          f" within +-10%, MAPE {report['mape']:.1f}%, Spearman {rho}, largest error {report['max_abs_pct']:.1f}%")
    for row in report["rows"][:3]:
        print(f"  {row['error_pct']:+6.1f}%  predicted {row['predicted_ms']:.3f} ms, measured {row['measured_ms']:.3f} ms"
              f" (cv {row['measured_cv']:.3f})  {row['arch']}")
    print(f"# end {time.strftime('%H:%M:%S')}; load: {uptime()}")


if __name__ == "__main__":
    main()
