"""Search strategies against each other on a fast synthetic objective.

Space: the factorized MnasNet space, `MnasNetSpace(num_classes=10, input_size=224)` (42 decisions,
~2.8e18 members). Objective: `mnas.strategies.SyntheticObjective(space, seed)` (see its docstring:
additive latency, accuracy correlated with capacity plus pairwise interactions, soft MnasNet reward at
the median latency of random architectures). Each run uses its own objective seed and strategy seed,
the same pair for every strategy, asks in batches of `--batch` (the controller updates every
`batch_size` results), and records the best reward found after 50, 200 and 1000 trials.

    python benchmarks/search.py                  # 10 seeds, 1000 trials, all strategies
    python benchmarks/search.py --seeds 3 --trials 200 --strategies ppo random
    python benchmarks/search.py --set ppo lr=0.05 --set ppo batch_size=20

Constraints, small budgets and the multi-objective mode: benchmarks/strategies_constrained.py.

Prints a table of mean (std) over seeds, the best random-sample reward in 10,000 for scale, and wall
time per strategy (all seeds, one torch thread).

Last run (default arguments; a 2-core machine shared with other jobs, load average ~6, so the wall
times are inflated and only comparable within the run):

    strategy             best@50          best@200         best@1000   wall s
    -------------------------------------------------------------------------
    ppo          0.8337 (0.0121)   0.8792 (0.0105)   0.9253 (0.0101)    120.5
    reinforce    0.8318 (0.0148)   0.9003 (0.0117)   0.9228 (0.0082)     85.9
    evolution    0.8412 (0.0143)   0.9013 (0.0075)   0.9291 (0.0084)     13.4
    random       0.8308 (0.0122)   0.8464 (0.0084)   0.8647 (0.0101)     11.6

(best of 10,000 random samples: 0.8750 (0.0052)). After 50 trials every strategy is still
essentially random (the controller has made at most 5 updates, evolution fills its population with
random samples); by 200 trials all three beat random search's 1,000-trial result.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mnas.space import MnasNetSpace
from mnas.strategies import MULTI_OBJECTIVE, STRATEGIES, SyntheticObjective, get_strategy

CHECKPOINTS = (50, 200, 1000)


def run(name: str, seed: int, trials: int, batch: int, hyper: dict) -> list[float]:
    """Best-so-far reward after each trial of one search."""
    space = MnasNetSpace(num_classes=10, input_size=224)
    objective = SyntheticObjective(space, seed=1000 + seed)
    strategy = get_strategy(name, space, seed=seed, **hyper)
    best, curve = -np.inf, []
    while len(curve) < trials:
        tokens = strategy.ask(min(batch, trials - len(curve)))
        rewards = objective.rewards(tokens).tolist()
        acc, lat = objective.accuracy_latency(tokens)
        strategy.tell(tokens, rewards, infos=[{"accuracy": a, "latency_ms": la} for a, la in zip(acc, lat, strict=True)])
        for r in rewards:
            best = max(best, r)
            curve.append(best)
    return curve


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=max(CHECKPOINTS))
    parser.add_argument("--batch", type=int, default=10, help="sequences per ask (a worker pool's width)")
    single = [n for n in STRATEGIES if n not in MULTI_OBJECTIVE]
    parser.add_argument("--strategies", nargs="+", default=single, choices=single)
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("STRATEGY", "KEY=VALUE"),
                        help="override a hyperparameter of one strategy")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the controller is small)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    hyper: dict[str, dict] = {name: {} for name in args.strategies}
    for name, kv in args.set:
        key, _, value = kv.partition("=")
        hyper.setdefault(name, {})[key] = parse_value(value)
    checkpoints = [c for c in CHECKPOINTS if c <= args.trials]

    space = MnasNetSpace(num_classes=10, input_size=224)
    ref = []
    for seed in range(args.seeds):
        objective = SyntheticObjective(space, seed=1000 + seed)
        rng = np.random.default_rng(seed)
        ref.append(objective.rewards([space.sample_tokens(rng) for _ in range(10_000)]).max())
    print(f"space: {space!r}")
    print(f"seeds: {args.seeds}, trials per run: {args.trials}, ask batch: {args.batch}, torch threads: {args.threads}")
    print(f"best of 10,000 random samples (for scale): {np.mean(ref):.4f} ({np.std(ref):.4f})\n")
    header = f"{'strategy':<10} " + " ".join(f"{'best@' + str(c):>17}" for c in checkpoints) + f" {'wall s':>8}"
    print(header)
    print("-" * len(header))
    for name in args.strategies:
        start = time.perf_counter()
        curves = np.array([run(name, s, args.trials, args.batch, hyper[name]) for s in range(args.seeds)])
        wall = time.perf_counter() - start
        cells = " ".join(f"{curves[:, c - 1].mean():>8.4f} ({curves[:, c - 1].std():.4f})" for c in checkpoints)
        label = name + ("*" if hyper[name] else "")
        print(f"{label:<10} {cells} {wall:>8.1f}", flush=True)
    for name, h in hyper.items():
        if h:
            print(f"* {name}: {h}")


if __name__ == "__main__":
    main()
