"""Supernet search on NAS-Bench-Macro under hard latency targets, scored by the benchmark (issue 19,
item 3).

A supernet of NAS-Bench-Macro's space (any width: candidates are scored by the sub-network of the
same tokens, `SupernetEvaluator`'s width proxy) gives inherited accuracy; latency is the full-width
network's on this CPU from a validated lookup table (ONNX Runtime, 1 thread, 32x32). Targets are the
25th/50th/75th percentiles of the distinct networks' latency. Each search spends `--trials`
inherited evaluations per target; the pick is reported with its benchmark accuracy (three-seed mean)
against the true best under the same latency and against the uniform networks (all identity, all
MBConv k3 e3, all MBConv k5 e6) that are no slower than the pick. Mean ± s.e. over `--seeds` seeds.

Inherited accuracies are deterministic for a checkpoint (fixed BN images), so they are cached in
``<checkpoint>.inherited.json`` and shared by every seed, target and strategy: the cost reported is
the number of distinct networks evaluated, and their seconds.

Methods:
- ``random``, ``evolution``, ``predictor``, ``boundary`` (`mnas.strategies.boundary`): mnas's
  strategies, asked and told as `mnas search` does with `Reward.hard(T)` (the predictor and the
  boundary strategy get the lookup table as their latency model);
- ``random-cached``: random search whose samples are drawn from the networks already evaluated
  (`benchmarks/nbmacro_rank.py`'s 250 uniform networks share the cache): random search at no cost;
- two picks per search: ``inherited``, the best inherited accuracy among the feasible evaluated (what
  `Study.best()` returns), and ``smoothed``, the best by the mean of inherited accuracy and a ridge
  surrogate's (one-hot tokens, fitted to all the search's inherited accuracies).

    python benchmarks/nbmacro_search.py --supernet runs/a.pt --lut runs/nbm.lut.json --seeds 5 --trials 60
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import DATA, load_landscape, mean_se, targets  # noqa: E402

UNIFORM = {"all identity": "00000000", "all k3e3": "11111111", "all k5e6": "22222222"}


class Inherited:
    """Inherited accuracy of full-width networks by token in the supernet, cached on disk; with
    ``metric="loss"`` the inherited likelihood instead, exp(-mean cross-entropy) (the geometric mean of
    the true class's probability): in (0, 1] like an accuracy and a monotone map of the log-likelihood,
    so feasible candidates under a hard target are ordered as the log-likelihood orders them; it is
    this value, not the log-likelihood, that the hard reward scales for an over-target network and that
    the smoothed pick averages with its ridge fit."""

    def __init__(self, checkpoint: str, data, images: int, workers: int, metric: str = "accuracy",
                 subset: str = "") -> None:
        from mnas.oneshot.train import load_supernet

        self.net, self.state = load_supernet(checkpoint)
        self.data, self.images, self.workers, self.metric = data, images, workers, metric
        tag = "" if metric == "accuracy" else f"-{metric}"
        self.path = Path(f"{checkpoint}.inherited-{images}{subset}{tag}.json")
        self.cache: dict[str, float] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        self.seconds, self.evaluated = 0.0, 0

    def __call__(self, land, rows: list[int]) -> list[float]:
        from mnas.oneshot.evaluate import evaluate_subnets

        todo = sorted({land.arch[r] for r in rows if land.arch[r] not in self.cache})
        if todo:
            started = time.perf_counter()
            stand_in = [str(self.net.space.decode(list(land.tokens[land.arch.index(a)]))) for a in todo]
            results = evaluate_subnets(self.net, stand_in, self.data, num_images=self.images, workers=self.workers)
            self.cache.update({a: r.accuracy if self.metric == "accuracy" else math.exp(-r.loss)
                               for a, r in zip(todo, results, strict=True)})
            self.seconds += time.perf_counter() - started
            self.evaluated += len(todo)
            self.path.write_text(json.dumps(self.cache))
        return [self.cache[land.arch[r]] for r in rows]


def make_strategy(name: str, space, land, target_ms: float, seed: int):
    from mnas.strategies import get_strategy
    from mnas.strategies.boundary import BoundarySearch

    latency_model = lambda toks: [land.lat[land.row(t)] for t in toks]  # noqa: E731 (the lookup table's figures)
    if name == "boundary":
        strategy = BoundarySearch(space, seed, latency_model=latency_model)
    else:
        options = {"target_ms": target_ms, "latency_model": latency_model} if name == "predictor" else {}
        strategy = get_strategy(name, space, seed, **options)
    strategy.set_latency_limit(target_ms)  # what the search loop does under a hard target
    return strategy


def strategy_search(name: str, space, land, inherited, target_ms: float, trials: int, seed: int) -> dict[str, int]:
    """Rows of the picks: by the best inherited accuracy among the feasible evaluated (what `Study.best()`
    returns under a hard reward), and by the mean of inherited and the ridge surrogate's accuracy."""
    from mnas.objectives import Reward
    from mnas.strategies.boundary import ridge_fit

    reward = Reward.hard(target_ms)
    rows: list[int] = []
    if name == "random-cached":  # random search over networks whose inherited accuracy is already cached
        pool = [r for r in land.distinct() if land.arch[r] in inherited.cache]
        rows = [int(r) for r in np.random.default_rng(seed).choice(pool, size=min(trials, len(pool)), replace=False)]
    else:
        strategy = make_strategy(name, space, land, target_ms, seed)
    while name != "random-cached" and len(rows) < trials:
        tokens = strategy.ask(min(10, trials - len(rows)))
        batch = [land.row(t) for t in tokens]
        acc = inherited(land, batch)
        lat = [float(land.lat[r]) for r in batch]
        strategy.tell(tokens, [reward(a, la) for a, la in zip(acc, lat, strict=True)],
                      infos=[{"accuracy": a, "latency_ms": la, "feasible": la <= target_ms,
                              "violation": max(0.0, la / target_ms - 1.0)} for a, la in zip(acc, lat, strict=True)])
        rows += batch
    ok = sorted({r for r in rows if land.lat[r] <= target_ms})
    if not ok:
        return {"inherited": -1, "smoothed": -1}
    scores = np.array(inherited(land, ok))
    every = sorted(set(rows))
    x = np.eye(3)[land.tokens[every]].reshape(len(every), -1)
    fit = ridge_fit(x, np.array(inherited(land, every)))
    smooth = 0.5 * (scores + fit(np.eye(3)[land.tokens[ok]].reshape(len(ok), -1)))
    return {"inherited": ok[int(np.argmax(scores))], "smoothed": ok[int(np.argmax(smooth))]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True)
    p.add_argument("--lut", required=True)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--trials", type=int, default=60, help="inherited evaluations per search")
    p.add_argument("--images", type=int, default=500, help="BN recalibration images")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--metric", choices=["accuracy", "loss"], default="accuracy",
                   help="what the search is told: inherited accuracy, or the inherited likelihood exp(-cross-entropy)")
    p.add_argument("--val-images", type=int, help="score on this many validation images (the seeded subset of"
                   " nbmacro_rank.py; default all 2,000)")
    p.add_argument("--first-seed", type=int, default=0, help="search seeds first-seed .. first-seed + seeds - 1")
    p.add_argument("--methods", nargs="+", default=["boundary", "evolution", "predictor", "random"])
    p.add_argument("--targets", nargs="+", default=["p25", "p50", "p75"])
    args = p.parse_args()
    if args.val_images is not None and args.val_images < 1:
        p.error(f"--val-images {args.val_images}: expected a positive number of validation images")
    if args.metric != "accuracy" and "random-cached" in args.methods:
        p.error("random-cached draws from nbmacro_rank.py's accuracy cache: use it with --metric accuracy")

    import torch

    from mnas.space.presets import nas_bench_macro_space
    from mnas.train import load

    torch.set_num_threads(1)
    land = load_landscape(args.lut)
    space = nas_bench_macro_space()
    data = load(args.data, val_fraction=0.2, seed=0)
    subset = ""
    if args.val_images and args.val_images < len(data.y_val):
        import dataclasses

        keep = np.sort(np.random.default_rng(0).permutation(len(data.y_val))[:args.val_images])
        data = dataclasses.replace(data, x_val=data.x_val[keep], y_val=data.y_val[keep])
        subset = f"-val{args.val_images}"
    inherited = Inherited(args.supernet, data, args.images, args.workers, args.metric, subset)
    train_min = inherited.state.get("seconds", 0) / 60
    print(f"# supernet {args.supernet}: {inherited.state.get('epoch')} epochs, {train_min:.1f} min of training;"
          f" {args.images} BN images, {len(data.y_val)} val images, told {args.metric}; {args.trials} evaluations"
          f" a search, seeds {args.first_seed}-{args.first_seed + args.seeds - 1}; load {os.getloadavg()[0]:.2f}")
    tg = targets(land)
    for tname in args.targets:
        t = tg[tname]
        opt = land.optimum(t)
        uni = {k: land.row([int(c) for c in v]) for k, v in UNIFORM.items()}
        print(f"\n## {tname}: T = {t:.3f} ms; optimum under T {100 * opt:.2f}%; uniform: " + ", ".join(
            f"{k} {100 * land.acc[r]:.2f}% @ {land.lat[r]:.3f} ms" for k, r in uni.items()))
        print(f"{'method/pick':<20} {'gap (points)':>15} {'lat/T':>13} {'beats uniform':>14} {'evaluated':>9}")
        for method in args.methods:
            before = inherited.evaluated
            seeds = range(args.first_seed, args.first_seed + args.seeds)
            picks = [strategy_search(method, space, land, inherited, t, args.trials, s) for s in seeds]
            for rule in ("inherited", "smoothed"):
                gaps, use, wins = [], [], []
                for pk in picks:
                    pick = pk[rule]
                    acc = land.acc[pick] if pick >= 0 else 0.0
                    gaps.append(100 * (opt - acc))
                    use.append(land.lat[pick] / t if pick >= 0 else 0.0)
                    no_slower = [r for r in uni.values() if land.lat[r] <= land.lat[pick]] if pick >= 0 else []
                    wins.append(pick >= 0 and all(acc > land.acc[r] for r in no_slower))
                print(f"{method + '/' + rule:<20} {mean_se(gaps):>15} {mean_se(use):>13} {sum(wins):>9}/{len(wins):<4}"
                      f" {inherited.evaluated - before:>9}", flush=True)
    print(f"\ninherited evaluations: {len(inherited.cache)} networks cached, {inherited.evaluated} new in"
          f" {inherited.seconds / 60:.1f} min ({inherited.seconds / max(inherited.evaluated, 1):.2f} s each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
