"""Search strategies against each other on a fast synthetic objective, under several rewards (protocols).

Space: the factorized MnasNet space, `MnasNetSpace(num_classes=10, input_size=224)` (42 decisions,
~2.8e18 members). Objective: `mnas.strategies.SyntheticObjective(space, seed)` (see its docstring:
additive latency, accuracy correlated with capacity plus pairwise interactions). Each run uses its own
objective seed (1000 + s) and strategy seed (s), the same pair for every strategy and protocol, asks in
batches of `--batch` (the controller updates every `batch_size` results), and records the best score
found after 50, 100, 200 and 1000 trials (those within `--trials`).

Protocols (`--protocols`); T50 is the median latency of random architectures, T20 their 20th percentile:
- `soft`: `Reward.soft(T50)`, the paper's reward and `mnas search`'s default; score: best reward;
- `soft-tight`: `Reward.soft(T20)`, a target that 80% of random networks miss; score: best reward;
- `acc@T`: `Reward(T20, alpha=0, beta=0)`, accuracy alone written with a target; score: best accuracy.
  It must equal `accuracy` seed for seed (the same search);
- `accuracy`: `Reward.accuracy()`; score: best accuracy;
- `hard`: `Reward.hard(T20)`; score: best accuracy within T20 (0.5, the floor of accuracy, when none).
What the strategies are told is what the search loop tells them: `mnas.loop.runner.strategy_infos` (a
violation only for a hard reward) and `latency_limit_ms` (given to `set_latency_limit`).
`--target-as-constraint` tells instead what the loop told before issue 22: `violation = max(0, LAT/T - 1)`
under every reward with a target, and no latency limit, to measure what that cost.

    python benchmarks/search.py                                  # soft, 10 seeds, 1000 trials, all strategies
    python benchmarks/search.py --protocols soft-tight acc@T accuracy --seeds 5 --trials 200
    python benchmarks/search.py --protocols soft-tight --target-as-constraint --seeds 5 --trials 200
    python benchmarks/search.py --set ppo lr=0.05 --set ppo batch_size=20

Prints, per protocol, a table of mean ± standard error over seeds at each checkpoint and the wall time
per strategy (all seeds, one torch thread); for the reward protocols also the best of 10,000 random
samples, for scale. Constraints, small budgets against exact optima and the multi-objective mode:
benchmarks/strategies_constrained.py. Figures: docs/design/strategies.md.

A run before the protocols (soft at T50, default arguments, mean (standard deviation) over 10 seeds; a
2-core machine shared with other jobs, wall times only comparable within the run):

    strategy             best@50          best@200         best@1000   wall s
    -------------------------------------------------------------------------
    ppo          0.8337 (0.0121)   0.8792 (0.0105)   0.9253 (0.0101)    120.5
    reinforce    0.8318 (0.0148)   0.9003 (0.0117)   0.9228 (0.0082)     85.9
    evolution    0.8412 (0.0143)   0.9013 (0.0075)   0.9291 (0.0084)     13.4
    random       0.8308 (0.0122)   0.8464 (0.0084)   0.8647 (0.0101)     11.6

(best of 10,000 random samples: 0.8750 (0.0052)).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from mnas.loop.runner import latency_limit_ms, strategy_infos
from mnas.objectives import Reward
from mnas.space import MnasNetSpace
from mnas.strategies import MULTI_OBJECTIVE, STRATEGIES, SyntheticObjective, get_strategy

CHECKPOINTS = (50, 100, 200, 1000)
PROTOCOLS = ("soft", "soft-tight", "acc@T", "accuracy", "hard")
_RANDOM = 10_000  # random samples per seed for the targets and the scale reference


class Landscape:
    """One objective seed: targets from random architectures, and the reward of each protocol."""

    def __init__(self, space: MnasNetSpace, seed: int) -> None:
        self.objective = SyntheticObjective(space, seed=1000 + seed)
        rng = np.random.default_rng(seed)
        self.sample = [space.sample_tokens(rng) for _ in range(_RANDOM)]
        acc, lat = self.objective.accuracy_latency(self.sample)
        self.sample_figures = (acc, lat)
        t50, t20 = float(np.median(lat)), float(np.quantile(lat, 0.2))
        self.rewards = {"soft": Reward.soft(t50), "soft-tight": Reward.soft(t20), "acc@T": Reward(t20, 0.0, 0.0),
                        "accuracy": Reward.accuracy(), "hard": Reward.hard(t20)}

    def random_best(self, protocol: str) -> float:
        """The best score of the 10,000 random samples (for scale)."""
        reward = self.rewards[protocol]
        return max(score(protocol, reward, a, la, reward(a, la)) for a, la in zip(*self.sample_figures, strict=True))


def score(protocol: str, reward: Reward, accuracy: float, latency_ms: float, value: float) -> float:
    if protocol in ("soft", "soft-tight"):
        return value
    if protocol == "hard":
        return accuracy if reward.feasible(latency_ms) else 0.5
    return accuracy


def infos(reward: Reward, acc, lat, as_before: bool) -> list[dict]:
    if as_before:  # the loop before issue 22: every target a constraint
        return [{"accuracy": float(a), "latency_ms": float(la),
                 "violation": 0.0 if reward.target_ms is None else max(0.0, la / reward.target_ms - 1.0)}
                for a, la in zip(acc, lat, strict=True)]
    return [strategy_infos(reward, None, float(a), float(la)) for a, la in zip(acc, lat, strict=True)]


def run(name: str, space, land: Landscape, protocol: str, seed: int, trials: int, batch: int, hyper: dict,
        as_before: bool = False) -> list[float]:
    """Best-so-far score after each trial of one search."""
    reward = land.rewards[protocol]
    strategy = get_strategy(name, space, seed=seed, **hyper)
    strategy.set_latency_limit(None if as_before else latency_limit_ms(reward))
    best, curve = -np.inf, []
    while len(curve) < trials:
        tokens = strategy.ask(min(batch, trials - len(curve)))
        acc, lat = land.objective.accuracy_latency(tokens)
        values = [reward(a, la) for a, la in zip(acc, lat, strict=True)]
        strategy.tell(tokens, values, infos=infos(reward, acc, lat, as_before))
        for v, a, la in zip(values, acc, lat, strict=True):
            best = max(best, score(protocol, reward, a, la, v))
            curve.append(best)
    return curve


def mean_se(x: np.ndarray) -> str:
    se = x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else float("nan")
    return f"{x.mean():.4f} ± {se:.4f}"


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
    parser.add_argument("--protocols", nargs="+", default=["soft"], choices=PROTOCOLS)
    parser.add_argument("--target-as-constraint", action="store_true",
                        help="tell the strategies what the loop told before issue 22 (every target a constraint)")
    parser.add_argument("--set", nargs=2, action="append", default=[], metavar=("STRATEGY", "KEY=VALUE"),
                        help="override a hyperparameter of one strategy")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the controller is small)")
    args = parser.parse_args()
    if args.seeds < 2:
        parser.error(f"--seeds {args.seeds}: give at least 2 seeds (standard errors need them)")
    torch.set_num_threads(args.threads)
    hyper: dict[str, dict] = {name: {} for name in args.strategies}
    for name, kv in args.set:
        key, _, value = kv.partition("=")
        hyper.setdefault(name, {})[key] = parse_value(value)
    checkpoints = [c for c in CHECKPOINTS if c <= args.trials] or [args.trials]

    space = MnasNetSpace(num_classes=10, input_size=224)
    lands = [Landscape(space, s) for s in range(args.seeds)]
    told = "every target told as a constraint (the loop before issue 22)" if args.target_as_constraint \
        else "what the search loop tells (strategy_infos)"
    print(f"space: {space!r}")
    print(f"seeds: {args.seeds} (objective 1000+s, strategy s), trials per run: {args.trials}, ask batch: {args.batch}, "
          f"torch threads: {args.threads}; infos: {told}")
    for protocol in args.protocols:
        what = "best reward" if protocol.startswith("soft") else \
            "best accuracy within the target" if protocol == "hard" else "best accuracy"
        print(f"\n[{protocol}] {lands[0].rewards[protocol]} (seed 0); {what}, mean ± s.e. over {args.seeds} seeds")
        print(f"best of {_RANDOM:,} random samples (for scale): {mean_se(np.array([la.random_best(protocol) for la in lands]))}")
        header = f"{'strategy':<10} " + " ".join(f"{'@' + str(c):>17}" for c in checkpoints) + f" {'wall s':>8}"
        print(header)
        print("-" * len(header))
        for name in args.strategies:
            start = time.perf_counter()
            curves = np.array([run(name, space, la, protocol, s, args.trials, args.batch, hyper[name],
                                   args.target_as_constraint) for s, la in enumerate(lands)])
            wall = time.perf_counter() - start
            cells = " ".join(f"{mean_se(curves[:, c - 1]):>17}" for c in checkpoints)
            label = name + ("*" if hyper[name] else "")
            print(f"{label:<10} {cells} {wall:>8.1f}", flush=True)
    for name, h in hyper.items():
        if h:
            print(f"* {name}: {h}")


if __name__ == "__main__":
    main()
