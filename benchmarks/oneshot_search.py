"""The one-hour supernet search and its pick next to the hand-designed networks (issue 9; issue 19
item 5).

The search is two commands (timed by the shell; the hour includes supernet training). Issue 19's run
used the layer-wise space (MobileNetV2's stages, one op per layer), whose supernet recipe is the one
measured to rank against NAS-Bench-Macro, at width 0.5 with the CIFAR strides:

    mnas supernet train --data cifar10_10k.npz --space layerwise --width 0.5 --epochs 8 \
        --out runs/sn/supernet.pt
    mnas search --supernet runs/sn/supernet.pt --data cifar10_10k.npz --target mobilenetv2_x0.5 \
        --reward hard --trials 60 --storage runs/sn/search.db --retrain-top 2 --retrain-epochs 15

This script is the comparison that follows: the study's pick (`Study.best()`, the retrained trial),
MobileNetV2 x0.5 and MnasNet-B1 x0.5 with the space's strides, each trained from scratch with the
same recipe (`mnas.loop.retrain.default_recipe("scratch", epochs)`, the recipe `--retrain-top`
used) for every seed in --seeds (the pick: --pick-seeds, other than the seed its retraining chose it
on), then: validation and test accuracy (mean, standard error over the seeds, and the binomial
standard error of one test figure), latency on ONNX Runtime with one thread, MACs and parameters;
the pick's difference to each reference in Welch standard errors; and the recipe's own noise as
rank-check's reliability line (seed sd against architecture sd, intraclass correlation).

    python benchmarks/oneshot_search.py --study runs/sn/search.db --out runs/sn/compare \
        --strides 1,1,1,2,2,1,2,1 --epochs 15 --seeds 0 1 2 --pick-seeds 1 2 3

Every training checkpoints each epoch under --out; a rerun skips finished ones and resumes the
rest, and `--only best|REFERENCE` trains one model (two processes; a reference needs no --study).
Prints measured figures and the load; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"
REFERENCES = ("mobilenetv2_x0.5", "mnasnet_b1_x0.5")


def say(*args) -> None:
    print(*args, flush=True)


def uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def train(arch, data, config, folder: Path) -> dict:
    from mnas.train import train_full
    from mnas.train.full import CHECKPOINT, METRICS

    if (folder / METRICS).is_file():
        return json.loads((folder / METRICS).read_text())
    return train_full(arch, data, config, folder, resume=(folder / CHECKPOINT).is_file(), log=say)


def mean_se(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=float)
    return float(a.mean()), float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else math.nan


def main(argv=None) -> int:
    import mnas
    from mnas.latency import OnnxRuntime
    from mnas.loop.retrain import default_recipe
    from mnas.models import build_model, count_params
    from mnas.oneshot.sampling import estimate_macs
    from mnas.space import as_arch, get_arch
    from mnas.space.zoo import for_space
    from mnas.train import load

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", help="the search's study (its best trial is the pick; not needed with --only REFERENCE)")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--pick-seeds", type=int, nargs="+",
                   help="seeds of the pick (default --seeds); seeds other than the study's keep the choice of the"
                        " pick, made on the retraining's seed, from flattering its own figure")
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--strides", default="2,1,1,2,2,1,1,1", help="the space's stem + block strides ('' = the zoo's)")
    p.add_argument("--only", help="train just this one: 'best' or a reference name (for two processes)")
    args = p.parse_args(argv)
    if args.only in (None, "best") and not args.study:
        p.error("--study is needed to compare the pick (or --only REFERENCE to train a reference alone)")
    torch.set_num_threads(1)
    data = load(args.data, val_fraction=0.2, seed=0)
    strides = [int(s) for s in args.strides.split(",")] if args.strides else None
    models = {}
    study = best = None
    if args.only in (None, "best"):
        study = mnas.load_study(args.study)
        best = study.best()
        if best is None:
            say(f"{args.study}: no complete trial to compare")
            return 1
        models[f"search pick (trial {best.number})"] = as_arch(best.arch)
    for name in REFERENCES:
        models[name] = for_space(get_arch(name), data.input_size, strides)
    config = default_recipe("scratch", args.epochs)
    say(f"data {data.name}: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test; recipe "
        f"{json.dumps({k: config.to_dict()[k] for k in ('epochs', 'batch_size', 'lr', 'optimizer', 'schedule')})};"
        f" seeds {args.seeds}; load {uptime()}")
    backend = OnnxRuntime(threads=1)
    rows, per_seed = [], {}
    for label, arch in models.items():
        key = "best" if label.startswith("search") else label
        if args.only and args.only != key:
            continue
        seeds = args.pick_seeds if key == "best" and args.pick_seeds else args.seeds
        runs = [train(arch, data, config.replace(seed=s), Path(args.out) / f"{key}-seed{s}") for s in seeds]
        lat = backend.measure(arch, data.input_size, data.num_classes).median_ms
        val = mean_se([r["val_accuracy"] for r in runs])
        test = mean_se([r["test_accuracy"] for r in runs])
        binom = math.sqrt(test[0] * (1 - test[0]) / len(data.y_test))
        rows.append((label, lat, estimate_macs(arch, data.input_size, data.num_classes, 3) / 1e6,
                     count_params(build_model(arch, data.num_classes)) / 1e6, val, test, binom,
                     [round(r["test_accuracy"], 4) for r in runs], sum(r["seconds"] for r in runs)))
        per_seed[label] = [r["test_accuracy"] for r in runs]
    if study is not None:
        say(f"\nlatency target of the study: {study.meta.get('target_ms')} ms; pick {best.arch}")
    say(f"{'model':<24}{'latency ms':>11}{'MMACs':>8}{'Mparams':>9}  {'val mean +- se':<18}{'test mean +- se':<18}"
        f"{'binom se':>9}  test per seed   train s")
    for label, lat, macs, params, val, test, binom, per, secs in rows:
        say(f"{label:<24}{lat:>11.3f}{macs:>8.2f}{params:>9.3f}  {val[0]:.4f} +- {val[1]:.4f}   "
            f"{test[0]:.4f} +- {test[1]:.4f}   {binom:>8.4f}  {per}  {secs:.0f}")
    summarise(per_seed)
    say(f"load {uptime()}")
    return 0


def summarise(per_seed: dict[str, list[float]]) -> None:
    """The pick against each reference (difference of test means, Welch standard error, and how many
    standard errors that is), and the recipe's own noise: rank-check's reliability line over the
    seeds every model has (seed sd against architecture sd, intraclass correlation)."""
    from mnas.oneshot.rank import reliability_seeds

    pick = next((k for k in per_seed if k.startswith("search")), None)
    if pick is not None and len(per_seed[pick]) > 1:
        for name, values in per_seed.items():
            if name == pick or len(values) < 2:
                continue
            a, b = np.asarray(per_seed[pick]), np.asarray(values)
            diff = a.mean() - b.mean()
            se = math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
            say(f"pick - {name}: {diff * 100:+.2f} test points +- {se * 100:.2f} (Welch s.e.;"
                f" {diff / se if se > 0 else math.inf:+.1f} s.e.)")
    two = [v for v in per_seed.values() if len(v) >= 2]
    if len(two) >= 2:
        r = reliability_seeds(two)
        say(f"recipe noise over {len(two)} models ({r['k']} seeds each): seed sd {r['seed_sd']:.4f} vs architecture"
            f" sd {r['arch_sd']:.4f}, intraclass correlation {r['icc']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
