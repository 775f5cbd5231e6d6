"""Strategies on NAS-Bench-Macro with tabular accuracy and this CPU's latency, against Optuna's TPE.

Protocol (issue 19, item 4): the 6,561 keys of NAS-Bench-Macro (tokens = the benchmark's digits),
latency of each from a lookup table built on this CPU (ONNX Runtime, 1 thread, 32x32; validated by
`mnas latency validate`), hard targets at the 25th/50th/75th percentile of the distinct networks'
latency, and no target. A search of 100 trials (asked in batches of 10) sees one seed's test accuracy
(seed ``s % 3`` of the benchmark, the noise a search really faces); its selected trial is the best
feasible one it saw, scored by the benchmark's three-seed mean. The gap is the optimum under the
target (three-seed mean) minus the selected trial's, in points; mean ± standard error over seeds.
"feasible" is the share of trials under the target, "lat/T" the selected trial's latency over the
target. Beside mnas's strategies: ``optuna-tpe``, Optuna's TPESampler with the latency constraint set
on each trial (`Trial.set_constraint`, Optuna 5), run on the same landscape and seeds.

    python benchmarks/nbmacro_strategies.py --lut runs/nbm.lut.json --seeds 50
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import load_landscape, mean_se, targets  # noqa: E402

STRATEGIES = ("random", "evolution", "ppo", "replay", "predictor", "tpe", "boundary", "optuna-tpe")


def run_mnas(name: str, space, land, target_ms: float | None, trials: int, seed: int) -> list[int]:
    """Rows evaluated, in order, by mnas strategy `name`."""
    from mnas.objectives import Reward
    from mnas.strategies import get_strategy

    reward = Reward.accuracy() if target_ms is None else Reward.hard(target_ms)
    options = {}
    if name == "boundary" and target_ms is not None:  # the search's lookup table as its latency model
        options["latency_model"] = lambda toks: [land.lat[land.row(t)] for t in toks]
    strategy = get_strategy(name, space, seed, **options)
    strategy.set_latency_limit(target_ms)  # what the search loop does under a hard target
    rows: list[int] = []
    while len(rows) < trials:
        tokens = strategy.ask(min(10, trials - len(rows)))
        batch = [land.row(t) for t in tokens]
        acc = [float(land.seeds[r, seed % 3]) for r in batch]
        lat = [float(land.lat[r]) for r in batch]
        rewards = [reward(a, la) for a, la in zip(acc, lat, strict=True)]
        infos = [{"accuracy": a, "latency_ms": la,
                  "feasible": target_ms is None or la <= target_ms,
                  "violation": 0.0 if target_ms is None else max(0.0, la / target_ms - 1.0)}
                 for a, la in zip(acc, lat, strict=True)]
        strategy.tell(tokens, rewards, infos=infos)
        rows += batch
    return rows


def run_optuna_tpe(space, land, target_ms: float | None, trials: int, seed: int) -> list[int]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    rows: list[int] = []

    def objective(trial):
        tokens = [trial.suggest_categorical(d.name, list(range(len(d.choices)))) for d in space.decisions]
        r = land.row(tokens)
        rows.append(r)
        if target_ms is not None:
            trial.set_constraint("latency", float(land.lat[r] / target_ms - 1.0))  # Optuna 5: feasible at <= 0
        return float(land.seeds[r, seed % 3])

    study.optimize(objective, n_trials=trials)
    return rows


def select(land, rows: list[int], target_ms: float | None, seed: int) -> int | None:
    ok = [r for r in rows if target_ms is None or land.lat[r] <= target_ms]
    return max(ok, key=lambda r: land.seeds[r, seed % 3]) if ok else None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lut", required=True, help="lookup table of the nbmacro space (mnas latency build-lut --space nbmacro)")
    p.add_argument("--seeds", type=int, default=50)
    p.add_argument("--trials", type=int, default=100)
    p.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    p.add_argument("--targets", nargs="+", default=["none", "p25", "p50", "p75"])
    args = p.parse_args()

    import torch

    from mnas.space.presets import nas_bench_macro_space

    torch.set_num_threads(1)
    land = load_landscape(args.lut)
    space = nas_bench_macro_space()
    tg = {"none": None, **targets(land)}
    print(f"# NAS-Bench-Macro: {len(land.keys)} keys, {len(land.distinct())} networks; latency from {args.lut}"
          f" ({land.lat.min():.3f}-{land.lat.max():.3f} ms); {args.trials} trials, {args.seeds} seeds; load"
          f" {os.getloadavg()[0]:.2f}")
    for name in args.targets:
        t = tg[name]
        opt = land.optimum(t)
        share = 1.0 if t is None else float((land.lat[land.distinct()] <= t).mean())
        print(f"\n## target {name}" + ("" if t is None else f" = {t:.3f} ms") + f": optimum {100 * opt:.2f}%,"
              f" {share:.0%} of the networks feasible")
        print(f"{'strategy':<11} {'gap (points)':>16} {'feasible':>9} {'lat/T':>7} {'wall s':>7}")
        gaps: dict[str, np.ndarray] = {}
        for strat in args.strategies:
            started = time.perf_counter()
            g, feas, use = [], [], []
            for s in range(args.seeds):
                rows = (run_optuna_tpe(space, land, t, args.trials, s) if strat == "optuna-tpe"
                        else run_mnas(strat, space, land, t, args.trials, s))
                pick = select(land, rows, t, s)
                g.append(100 * (opt - (land.acc[pick] if pick is not None else 0.0)))
                feas.append(np.mean([t is None or land.lat[r] <= t for r in rows]))
                if t is not None and pick is not None:
                    use.append(land.lat[pick] / t)
            gaps[strat] = np.array(g)
            print(f"{strat:<11} {mean_se(g):>16} {np.mean(feas):9.2f} {np.mean(use) if use else float('nan'):7.3f}"
                  f" {time.perf_counter() - started:7.1f}", flush=True)
        if "optuna-tpe" in gaps:
            ref = gaps["optuna-tpe"]
            for strat, g in gaps.items():
                if strat != "optuna-tpe":
                    d = ref - g  # positive: strat's gap is smaller
                    se = np.sqrt(ref.var(ddof=1) / len(ref) + g.var(ddof=1) / len(g))
                    print(f"  {strat} vs optuna-tpe: {d.mean():+.3f} points ({d.mean() / se:+.1f} s.e.)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
