"""Does the runtime and precision a search measures change its pick? (issue 20's last figure)

On NAS-Bench-Macro (tabular accuracy: the benchmark's 50-epoch CIFAR-10 results; 6,561 keys, 3,969
distinct networks), with latency from two lookup tables of this CPU for the same space and size
(32x32, 1 thread) — by default ONNX Runtime fp32 (what mnas measured until issue 20) and LiteRT
int8 (what a phone ships) — each validated with `mnas latency validate`:

- Kendall tau between the two tables' latencies over the distinct networks;
- at the 25th/50th/75th latency percentile of *each* runtime (the same target: "as fast as the
  space's median network, in the runtime I ship"): the constrained optimum of each, and whether they
  are the same network;
- the boundary search (mnas's default under a hard target; 100 trials; one benchmark seed's accuracy
  seen; the pick is the best feasible trial it saw) run on each table, for every seed: how often the
  two picks differ, and the fp32-ONNX-Runtime pick judged in LiteRT int8 — its latency over the
  LiteRT target (over 1 = it breaks the deployed budget) and its benchmark accuracy against the
  LiteRT int8 pick's.
- `--measure K`: the first K seeds' two picks measured for real in the second runtime (converted
  and timed here, not from the table), beside the table's figure.

    mnas latency build-lut --space nbmacro --data ../shared/data/cifar10_10k.npz --backend litert \
        --precision int8 --references none --out runs/nbm-litert-int8.lut.json
    python benchmarks/deploy_search.py --lut-a runs/nbm.lut.json --lut-b runs/nbm-litert-int8.lut.json \
        --seeds 20 --measure 3

Prints measured numbers with their spread; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import load_landscape, mean_se, targets  # noqa: E402
from nbmacro_strategies import run_mnas, select  # noqa: E402


def deployment(lut: str) -> str:
    from mnas.latency import LookupTable

    return " ".join(LookupTable.load(lut).deployment)


def main(argv=None) -> int:
    from scipy.stats import kendalltau

    from mnas.space.presets import nas_bench_macro_space

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lut-a", required=True, help="the table the search measured until now (ONNX Runtime fp32)")
    p.add_argument("--lut-b", required=True, help="the deployed runtime's table (e.g. LiteRT int8)")
    p.add_argument("--seeds", type=int, default=20)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--strategy", default="boundary")
    p.add_argument("--measure", type=int, default=0, help="measure the picks of the first K seeds in lut-b's runtime")
    args = p.parse_args(argv)
    a, b = load_landscape(args.lut_a), load_landscape(args.lut_b)
    name_a, name_b = deployment(args.lut_a), deployment(args.lut_b)
    space = nas_bench_macro_space()
    distinct = a.distinct()
    print(f"NAS-Bench-Macro: {len(a.keys)} keys, {len(distinct)} distinct networks; A = {name_a} ({args.lut_a}),"
          f" B = {name_b} ({args.lut_b}); load {os.getloadavg()[0]:.2f}")
    ratio = b.lat[distinct] / a.lat[distinct]
    print(f"Kendall tau of the two tables' latencies over the distinct networks: "
          f"{kendalltau(a.lat[distinct], b.lat[distinct]).statistic:.3f}; B/A per network: median "
          f"{np.median(ratio):.2f} ({ratio.min():.2f}-{ratio.max():.2f})")
    ta, tb = targets(a), targets(b)
    rows = []
    for q in ta:
        opt_a = max((r for r in distinct if a.lat[r] <= ta[q]), key=lambda r: a.acc[r])
        opt_b = max((r for r in distinct if b.lat[r] <= tb[q]), key=lambda r: b.acc[r])
        print(f"\n{q}: target A {ta[q]:.3f} ms, B {tb[q]:.3f} ms. Optimum under A: {a.keys[opt_a]} "
              f"{100 * a.acc[opt_a]:.2f}% (in B: {b.lat[opt_a] / tb[q]:.2f} T_B); under B: {b.keys[opt_b]} "
              f"{100 * b.acc[opt_b]:.2f}% (in A: {a.lat[opt_b] / ta[q]:.2f} T_A)")
        picks = []
        for seed in range(args.seeds):
            pa = select(a, run_mnas(args.strategy, space, a, ta[q], args.trials, seed), ta[q], seed)
            pb = select(b, run_mnas(args.strategy, space, b, tb[q], args.trials, seed), tb[q], seed)
            if pa is None or pb is None:  # no feasible trial seen: no pick to compare
                print(f"  seed {seed}: no feasible trial under {'A' if pa is None else 'B'}'s target; left out")
                continue
            picks.append((pa, pb))
        if not picks:
            continue
        same = sum(a.arch[pa] == b.arch[pb] for pa, pb in picks)
        over = [b.lat[pa] / tb[q] for pa, _ in picks]
        diff = [100 * (b.acc[pb] - a.acc[pa]) for pa, pb in picks]
        n = len(picks)
        print(f"  {args.strategy}, {n} seeds: the picks differ in {n - same}/{n};"
              f" A's pick in B: {mean_se(over)} T_B (breaks B's target in {sum(o > 1 for o in over)}/{n});"
              f" B's pick - A's pick, benchmark accuracy: {mean_se(diff)} points; B's pick at"
              f" {mean_se([b.lat[pb] / tb[q] for _, pb in picks])} T_B, gap to B's optimum"
              f" {mean_se([100 * (b.acc[opt_b] - b.acc[pb]) for _, pb in picks])} points")
        rows.append((q, picks, tb[q]))
    if args.measure:
        from mnas.latency import LookupTable, get_backend

        table = LookupTable.load(args.lut_b)
        runtime, precision = table.deployment
        backend = get_backend(runtime, precision=precision, threads=1)
        print(f"\nmeasured in {runtime} {precision} (1 thread; load {os.getloadavg()[0]:.2f}):")
        for q, picks, t in rows:
            for seed, (pa, pb) in enumerate(picks[:args.measure]):
                for who, r in (("A's pick", pa), ("B's pick", pb)):
                    m = backend.measure(space.decode(list(a.tokens[r])), 32, 10)
                    print(f"  {q} seed {seed} {who} {a.keys[r]}: table {b.lat[r]:.3f} ms, measured {m.median_ms:.3f} ms"
                          f" (CV {100 * m.cv:.1f}%) = {m.median_ms / t:.2f} T_B")
    print(f"load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
