"""Issue 19 item 3: which rule turns a supernet search's inherited accuracies into the pick? Rules
compared on the boundary strategy's searches of `nbmacro_search.py` (same supernet cache, targets,
trials and seeds, so seeds already searched cost no new evaluation):

- ``inherited``: the best inherited accuracy among the feasible evaluated (`Study.best()`);
- ``smoothed``: the mean of inherited accuracy and a ridge fit on one-hot tokens (`--retrain-top`'s rank);
- ``fit``: the ridge fit alone;
- ``smoothed+lat0.5`` / ``smoothed+lat1`` / ``fit+lat0.5``: plus 0.5 or 1 sd of the score times z(latency)
  among the feasible (the optimum sits near T; picks land lower);
- ``top3-slowest``: the slowest of the three best smoothed;
- ``marginal`` / ``marginal-smoothed``: the marginal-effects fit (`mnas.strategies.boundary.marginal_fit`,
  stop 29) alone, and the mean of the score and it.

Prints the gap to the optimum under each target (points of benchmark accuracy, mean +- s.e. over the
seeds). Choose a rule on some seeds and check it on others (`--seeds 0-4`, then `--seeds 5-9`): with
seven rules, the best on five seeds is partly the best noise.

    python benchmarks/nbmacro_pickrules.py --supernet runs/a.pt --lut runs/nbm.lut.json --seeds 5 6 7 8 9
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import nbmacro_search as ns  # noqa: E402
from _nbmacro import DATA, load_landscape, mean_se, targets  # noqa: E402

RULES = ("inherited", "smoothed", "fit", "smoothed+lat0.5", "smoothed+lat1", "fit+lat0.5", "top3-slowest", "marginal",
         "marginal-smoothed")


def searched_rows(space, land, inherited, target_ms: float, trials: int, seed: int) -> list[int]:
    from mnas.objectives import Reward

    strategy, reward, rows = ns.make_strategy("boundary", space, land, target_ms, seed), Reward.hard(target_ms), []
    while len(rows) < trials:
        tokens = strategy.ask(min(10, trials - len(rows)))
        batch = [land.row(t) for t in tokens]
        acc, lat = inherited(land, batch), [float(land.lat[r]) for r in batch]
        strategy.tell(tokens, [reward(a, la) for a, la in zip(acc, lat, strict=True)],
                      infos=[{"accuracy": a, "latency_ms": la, "feasible": la <= target_ms,
                              "violation": max(0.0, la / target_ms - 1.0)} for a, la in zip(acc, lat, strict=True)])
        rows += batch
    return rows


def picks(land, inherited, rows: list[int], target_ms: float) -> dict[str, int]:
    from mnas.strategies.boundary import marginal_fit, ridge_fit

    ok = sorted({r for r in rows if land.lat[r] <= target_ms})
    every = sorted(set(rows))
    onehot = lambda rs: np.eye(3)[land.tokens[rs]].reshape(len(rs), -1)  # noqa: E731
    score = np.array(inherited(land, ok))
    fit = ridge_fit(onehot(every), np.array(inherited(land, every)))(onehot(ok))
    smooth = 0.5 * (score + fit)
    marginal = marginal_fit(onehot(every), np.array(inherited(land, every)))(onehot(ok))
    lat = np.array([land.lat[r] for r in ok])
    z = (lat - lat.mean()) / (lat.std() or 1.0)
    values = {"inherited": score, "smoothed": smooth, "fit": fit,
              "smoothed+lat0.5": smooth + 0.5 * smooth.std() * z, "smoothed+lat1": smooth + smooth.std() * z,
              "fit+lat0.5": fit + 0.5 * fit.std() * z, "marginal": marginal,
              "marginal-smoothed": 0.5 * (score + marginal)}
    out = {rule: ok[int(np.argmax(v))] for rule, v in values.items()}
    top = np.argsort(-smooth)[:3]
    out["top3-slowest"] = ok[int(top[np.argmax(lat[top])])]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True)
    p.add_argument("--lut", required=True)
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--trials", type=int, default=40, help="inherited evaluations per search")
    p.add_argument("--images", type=int, default=500, help="BN recalibration images")
    p.add_argument("--metric", choices=["accuracy", "loss"], default="accuracy",
                   help="what the search is told: inherited top-1, or the likelihood exp(-CE) (as nbmacro_search.py)")
    args = p.parse_args()

    import torch

    from mnas.space.presets import nas_bench_macro_space
    from mnas.train import load

    torch.set_num_threads(1)
    land, space = load_landscape(args.lut), nas_bench_macro_space()
    inherited = ns.Inherited(args.supernet, load(args.data, val_fraction=0.2, seed=0), args.images, 1, args.metric)
    print(f"# {args.supernet}; boundary strategy, {args.trials} evaluations a search, told {args.metric}; seeds"
          f" {args.seeds}")
    for name, t in targets(land).items():
        opt = land.optimum(t)
        gaps = {rule: [] for rule in RULES}
        for seed in args.seeds:
            chosen = picks(land, inherited, searched_rows(space, land, inherited, t, args.trials, seed), t)
            for rule in RULES:
                gaps[rule].append(100 * (opt - land.acc[chosen[rule]]))
        print(f"{name} (T {t:.3f} ms): " + "; ".join(f"{rule} {mean_se(g)}" for rule, g in gaps.items()), flush=True)
    print(f"new inherited evaluations: {inherited.evaluated} in {inherited.seconds / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
