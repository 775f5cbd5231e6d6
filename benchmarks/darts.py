"""DARTS vs GDAS search on NB201 with the CPU default `DartsConfig` on ../shared/data/cifar10_10k.npz.

Prints, per strategy and seed: search wall and CPU time, each epoch's losses and accuracies (on the
search split, see mnas.oneshot.darts), the alphas' mean entropy against uniform weights', the edges
of the derived cell changed since the previous epoch, why the search stopped (its stopping rule, the
epoch cap), the derived cell and its share of parameter-free ops, plus the machine load.
Usage: ``python benchmarks/darts.py [--seeds 0 1]``; `benchmarks/darts_converge.py` caches and tabulates.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import torch

from mnas.oneshot.darts import DartsConfig, search_darts
from mnas.space.cells.spaces import NB201Space
from mnas.train.data import load

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--strategies", nargs="+", default=["darts", "gdas"])
    ap.add_argument("--epochs", type=int, default=DartsConfig().epochs)
    args = ap.parse_args()
    if not DATA.is_file():
        raise SystemExit(f"{DATA} is absent")
    torch.set_num_threads(1)
    data = load(DATA)
    space = NB201Space(data.num_classes, data.input_size)
    print(f"data {data}; space {space}; torch threads 1; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    for strategy in args.strategies:
        for seed in args.seeds:
            cfg = DartsConfig(strategy=strategy, seed=seed, epochs=args.epochs)
            t0 = time.perf_counter()
            r = search_darts(space, data, cfg)
            wall = time.perf_counter() - t0
            last, n = r.history[-1], len(r.history)
            print(f"{strategy} seed {seed}: {n} of at most {cfg.epochs} epochs ({r.stop_reason}), {cfg.train_images}"
                  f" images (half weights, half alphas), C={cfg.channels} N={cfg.nb201_cells}: search {wall:.1f} s wall"
                  f" ({wall / n:.1f} s/epoch), {r.cpu_seconds:.1f} s CPU")
            for rec in r.history:
                val = "warm-up" if rec.get("warmup") else f"val loss {rec['val_loss']:.3f} acc {rec['val_acc']:.3f}"
                print(f"  epoch {rec['epoch']}: train loss {rec['train_loss']:.3f} acc {rec['train_acc']:.3f} | {val} |"
                      f" entropy {rec['entropy']:.6f} of {rec['entropy_max']:.6f} | changed {rec['changed']} | unchanged"
                      f" {rec['unchanged_epochs']} | param-free {rec['param_free']:.2f} | {rec['arch']}")
            print(f"  derived: {r.arch}  param-free share {last['param_free']:.2f}; converged: {r.converged}")
    print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
