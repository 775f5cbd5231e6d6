"""Strategies x {unconstrained, hard target, soft targets} x budgets {50, 100, 200}, and the multi-objective
mode (issue 14), on the synthetic objective over a space small enough to enumerate.

Space: 11 token-only decisions of 4, 3, 4, ... 3, 2 choices (497,664 members). Objective:
`SyntheticObjective(space, seed=1000 + s)`: latency additive over the decisions and correlated with
capacity (slower choices tend to be more accurate: correlation 0.6), accuracy in [0.5, 0.95] with
pairwise interactions. Every optimum is exact (all members enumerated).
- unconstrained: `Reward.accuracy()`; the gap is max accuracy minus the best accuracy found;
- hard: `Reward.hard(T)`, T the 35th percentile of the space's latencies (35% of the space feasible);
  the strategies are told `violation = max(0, LAT / T - 1)` and the latency limit T; the gap is the
  constrained optimum's accuracy minus the best *feasible* accuracy found (0.5, the floor of accuracy,
  when none is feasible);
- soft: `Reward.soft(T)`, T the median latency; the gap is in reward;
- soft-tight: `Reward.soft(T)` at the hard setting's T (65% of the space over it): a soft target is a
  reward, not a constraint (issue 22); the gap is in reward, to the exact optimum of that reward.
What the strategies are told is what the search loop tells them (`mnas.loop.runner.strategy_infos`, and
`latency_limit_ms` given to `set_latency_limit`); `--target-as-constraint` tells every target as a
constraint instead, as the loop did before issue 22.
Each run asks batches of 10; every proposal is evaluated and counts (also repeats). Mean +- standard
error over seeds; the same (objective, strategy) seed pair for every strategy.

Multi-objective: NSGA-II over (accuracy, latency) with 300 trials, against three hard-target searches
of 100 trials each at the 25th, 50th and 75th latency percentiles (the same total budget), pooling
their trials. Hypervolume (`mnas.objectives.hypervolume`) of all evaluated points, reference point
(accuracy 0.5, the space's largest latency), as a fraction of the exact front's hypervolume.

    python benchmarks/strategies_constrained.py --seeds 20
    python benchmarks/strategies_constrained.py --seeds 5 --settings soft-tight --skip-mo --target-as-constraint
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mnas.loop.runner import latency_limit_ms, strategy_infos
from mnas.objectives import Reward, hypervolume, pareto_front
from mnas.space import Decision, SearchSpace
from mnas.strategies import get_strategy
from mnas.strategies.synthetic import SyntheticObjective

SIZES = (4, 3, 4, 3, 4, 3, 4, 3, 4, 3, 2)
BUDGETS = (50, 100, 200)
STRATEGIES = ("random", "evolution", "ppo", "replay", "predictor", "tpe")


class TokenSpace(SearchSpace):
    """Decisions only: strategies never decode (a tabular benchmark's situation)."""

    def __init__(self, sizes):
        self.decisions = tuple(Decision(f"d{i}", tuple(range(k))) for i, k in enumerate(sizes))


class Landscape:
    """One objective seed, enumerated: accuracy and latency of every member, targets and optima."""

    def __init__(self, space: TokenSpace, seed: int) -> None:
        self.objective = SyntheticObjective(space, seed=1000 + seed)
        grids = np.meshgrid(*[np.arange(k) for k in space.num_choices], indexing="ij")
        self.all_tokens = np.stack([g.ravel() for g in grids], 1)
        self.acc, self.lat = self.objective.accuracy_latency(self.all_tokens)
        self.hard_ms = float(np.quantile(self.lat, 0.35))
        self.soft_ms = float(np.median(self.lat))
        self.optimum = {"unconstrained": float(self.acc.max()),
                        "hard": float(self.acc[self.lat <= self.hard_ms].max()),
                        "soft": float(np.max(self.acc * (self.lat / self.soft_ms) ** -0.07)),
                        "soft-tight": float(np.max(self.acc * (self.lat / self.hard_ms) ** -0.07))}


def search(name: str, space, land: Landscape, setting: str, budget: int, seed: int, target_ms: float | None = None,
           as_before: bool = False):
    """Best-so-far score after each trial (accuracy, feasible accuracy or soft reward), and all points.
    `as_before`: tell every target as a constraint and give no latency limit (the loop before issue 22)."""
    reward = {"unconstrained": Reward.accuracy(), "soft": Reward.soft(land.soft_ms),
              "soft-tight": Reward.soft(land.hard_ms), "hard": Reward.hard(target_ms or land.hard_ms)}[setting]
    strategy = get_strategy(name, space, seed)
    strategy.set_latency_limit(None if as_before else latency_limit_ms(reward))
    best, curve, points = -np.inf, [], []
    while len(curve) < budget:
        tokens = strategy.ask(min(10, budget - len(curve)))
        acc, lat = land.objective.accuracy_latency(tokens)
        rewards = [reward(a, la) for a, la in zip(acc, lat, strict=True)]
        if as_before:
            infos = [{"accuracy": float(a), "latency_ms": float(la),
                      "violation": 0.0 if reward.target_ms is None else max(0.0, la / reward.target_ms - 1.0)}
                     for a, la in zip(acc, lat, strict=True)]
        else:
            infos = [strategy_infos(reward, None, float(a), float(la)) for a, la in zip(acc, lat, strict=True)]
        strategy.tell(tokens, rewards, infos=infos)
        for r, a, la in zip(rewards, acc, lat, strict=True):
            score = r if setting.startswith("soft") else (a if reward.feasible(la) else 0.5)
            best = max(best, score)
            curve.append(best)
            points.append((float(a), float(la)))
    return np.array(curve), points


def mean_se(x: np.ndarray) -> str:
    mean = x.mean() if abs(x.mean()) >= 5e-5 else 0.0  # no "-0.0000" for a gap of (rounding error) zero
    return f"{mean:.4f} ± {x.std(ddof=1) / np.sqrt(len(x)):.4f}"


def margin(worse: np.ndarray, better: np.ndarray) -> str:
    """How many standard errors `better`'s mean gap is below `worse`'s: unpaired, and paired over seeds."""
    se = np.sqrt(worse.var(ddof=1) / len(worse) + better.var(ddof=1) / len(better))
    d = worse - better
    return f"{d.mean() / se:+.1f} s.e. (paired {d.mean() / (d.std(ddof=1) / np.sqrt(len(d))):+.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--settings", nargs="+", default=["unconstrained", "hard", "soft", "soft-tight"],
                        choices=["unconstrained", "hard", "soft", "soft-tight"])
    parser.add_argument("--skip-mo", action="store_true", help="leave out the multi-objective comparison")
    parser.add_argument("--target-as-constraint", action="store_true",
                        help="tell every target as a constraint, as the loop did before issue 22")
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = TokenSpace(SIZES)
    lands = [Landscape(space, s) for s in range(args.seeds)]
    feasible = np.mean([(la.lat <= la.hard_ms).mean() for la in lands])
    print(f"space: {len(SIZES)} decisions, {space.size:,} members; seeds: {args.seeds} (objective 1000+s, strategy s); "
          f"ask batch 10; infos: {'every target a constraint (before issue 22)' if args.target_as_constraint else 'the loop'}")
    print(f"corr(accuracy, latency) over the space: {np.mean([np.corrcoef(la.acc, la.lat)[0, 1] for la in lands]):.2f}; "
          f"hard target feasible fraction: {feasible:.2f}")
    gaps: dict[tuple[str, str], np.ndarray] = {}
    for setting in args.settings:
        print(f"\n[{setting}] gap to the {'constrained ' if setting == 'hard' else ''}optimum "
              f"({'soft reward' if setting.startswith('soft') else 'accuracy'}), mean ± s.e. over {args.seeds} seeds")
        header = f"{'strategy':<10} " + " ".join(f"{'@' + str(b):>17}" for b in BUDGETS) + f" {'wall s':>7}"
        print(header)
        print("-" * len(header))
        for name in args.strategies:
            start = time.perf_counter()
            curves = np.array([search(name, space, la, setting, max(BUDGETS), s, as_before=args.target_as_constraint)[0]
                               for s, la in enumerate(lands)])
            opt = np.array([la.optimum[setting] for la in lands])
            g = opt[:, None] - curves  # (seeds, trials)
            gaps[setting, name] = g
            cells = " ".join(f"{mean_se(g[:, b - 1]):>17}" for b in BUDGETS)
            print(f"{name:<10} {cells} {time.perf_counter() - start:>7.1f}", flush=True)
        names = [n for n in args.strategies if n not in ("random", "tpe")]
        if "random" in args.strategies and names:
            g100 = {n: gaps[setting, n][:, 99] for n in args.strategies}
            best = min(names, key=lambda n: g100[n].mean())
            line = f"@100: best mnas strategy {best}; vs random: {margin(g100['random'], g100[best])}"
            if "tpe" in g100:
                line += f"; vs tpe: {margin(g100['tpe'], g100[best])}"
            if "ppo" in g100:
                line += f"; ppo vs random: {margin(g100['random'], g100['ppo'])}"
            line += f"; gap closed vs random: {1 - g100[best].mean() / g100['random'].mean():.0%}"
            print(line)
    if args.skip_mo:
        return
    print(f"\n[multi-objective] hypervolume / exact front's, 300 trials in all, mean ± s.e. over {args.seeds} seeds")
    rows: dict[str, list[float]] = {"nsga2 (300)": [], "3x evolution hard (100 each)": [], "3x replay hard (100 each)": [],
                                    "3x tpe hard (100 each)": [], "random (300)": []}
    start = time.perf_counter()
    for s, la in enumerate(lands):
        ref = (0.5, float(la.lat.max()))
        front = pareto_front(np.column_stack([la.acc, la.lat]).tolist())
        exact = hypervolume([(la.acc[i], la.lat[i]) for i in front], ref)
        rows["nsga2 (300)"].append(hypervolume(search("nsga2", space, la, "unconstrained", 300, s)[1], ref) / exact)
        rows["random (300)"].append(hypervolume(search("random", space, la, "unconstrained", 300, s)[1], ref) / exact)
        for name in ("evolution", "replay", "tpe"):
            pts = []
            for q in (0.25, 0.5, 0.75):
                pts += search(name, space, la, "hard", 100, s, target_ms=float(np.quantile(la.lat, q)))[1]
            rows[f"3x {name} hard (100 each)"].append(hypervolume(pts, ref) / exact)
    for label, values in rows.items():
        print(f"{label:<30} {mean_se(np.array(values))}")
    print(f"(wall {time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
