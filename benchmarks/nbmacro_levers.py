"""Two supernet-training levers of issue 19 item 2 that `mnas supernet train` does not offer, as
measured in docs/design/nbmacro.md ("Stop 28"): score the checkpoints with `nbmacro_scores.py`.

- ``continue SRC OUT --rule fair|sandwich``: continue a trained supernet for a few more epochs under
  another training rule (fresh cosine schedule from `--lr`, no warm-up): FairNAS's strict fairness
  (3 paths a step that run every op of every layer once, on the labels) or the sandwich rule again
  (the control: as many extra epochs of the rule it was trained with);
- ``fair-sandwich OUT``: from scratch, the sandwich's largest sub-network (the teacher, on the
  labels) plus a FairNAS group of 3 paths distilled from it, in place of the smallest and 2 uniform
  paths (4 sub-networks a step, as the default).

Both train on NAS-Bench-Macro's space at width 0.5 on cifar10_10k (split seed 0, one thread), as
supernet A of the ranking table.

    python benchmarks/nbmacro_levers.py continue runs/A.pt runs/F1.pt --rule fair --epochs 3 --lr 0.03
    python benchmarks/nbmacro_levers.py fair-sandwich runs/V4.pt --epochs 14
    python benchmarks/nbmacro_scores.py runs/A.pt runs/F1.pt runs/V4.pt
    python benchmarks/nbmacro_levers.py few-shot runs/A.pt runs/FS --layer 0 --ops 0,1 &
    python benchmarks/nbmacro_levers.py few-shot runs/A.pt runs/FS --layer 0 --ops 2
    python benchmarks/nbmacro_levers.py few-shot-score runs/FS --layer 0 --workers 2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import DATA, TRUTH  # noqa: E402


def _fair_sandwich(trainer_cls):
    """Patch the trainer so a sandwich step is [largest] + a FairNAS group of 3 (no smallest)."""
    from mnas.oneshot.sampling import FairSampler

    def archs_for(self, step):
        if step < self.warmup_steps:
            return [self.largest]
        rng = np.random.default_rng([self.config.train.seed, step, 0x5a4d])
        return [self.largest, *FairSampler(self.net.space).sample_group(rng, 3)]

    trainer_cls.archs_for = archs_for


def _fix_layer(trainer_cls, layer: int, op: int):
    """Patch the trainer so every sub-network it trains (the largest and smallest included) has op
    `op` at layer `layer`: one few-shot sub-supernet."""
    init, draw = trainer_cls.__init__, trainer_cls.archs_for

    def fixed(space, arch):
        tokens = list(space.encode(arch))
        tokens[layer] = op
        return space.decode(tokens)

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.largest, self.smallest = fixed(self.net.space, self.largest), fixed(self.net.space, self.smallest)

    def archs_for(self, step):
        return [fixed(self.net.space, a) for a in draw(self, step)]

    trainer_cls.__init__, trainer_cls.archs_for = __init__, archs_for


def few_shot_paths(prefix: str, layer: int, ops: int) -> list[str]:
    return [f"{prefix}-L{layer}-{op}.pt" for op in range(ops)]


def few_shot_score(args) -> int:
    """Score the 250 networks, each in the sub-supernet of its op at `args.layer`."""
    import torch
    from nbmacro_scores import logits_for, scores
    from scipy.stats import kendalltau

    from mnas.oneshot.rank import band_stats, rank_stats
    from mnas.oneshot.rank_truth import _sample, free_predictors, quantile_groups
    from mnas.oneshot.train import load_supernet
    from mnas.space import as_arch
    from mnas.space.ground_truth import load_ground_truth
    from mnas.space.presets import nas_bench_macro_space
    from mnas.train import load

    torch.set_num_threads(1)
    truth = load_ground_truth(args.truth)
    data = load(args.data, val_fraction=0.2, seed=0)
    entries = [truth.entries[i] for i in _sample(truth, 250, 0)]
    acc = np.array([e.accuracy for e in entries])
    tokens = np.array([e.tokens for e in entries])
    space = nas_bench_macro_space()
    macs = np.array(free_predictors([as_arch(e.arch) for e in entries], space, 3, None)["macs"], float)
    groups = quantile_groups(macs, 5)
    paths = few_shot_paths(args.prefix, args.layer, space.num_choices[args.layer])
    missing = [q for q in paths if not Path(q).is_file()]
    if missing:
        print(f"train the sub-supernets first: {', '.join(missing)} missing", file=sys.stderr)
        return 2
    y = np.asarray(data.y_val)
    logits = None
    for op, path in enumerate(paths):
        net, _ = load_supernet(path)
        rows = np.flatnonzero(tokens[:, args.layer] == op)
        part, y = logits_for(path, [truth.arch_in(entries[i], net.space) for i in rows], data, 500, args.workers)
        if logits is None:
            logits = np.zeros((len(entries), *part.shape[1:]), np.float32)
        logits[rows] = part
    print(f"# few-shot on layer {args.layer}: {', '.join(paths)}; {len(entries)} networks (seed 0)")
    for name, v in scores(logits, y).items():
        s = rank_stats(v, acc, top_k=10, n_resamples=1000)
        same = [kendalltau(v[tokens[:, args.layer] == op], acc[tokens[:, args.layer] == op])[0]
                for op in range(len(paths))]
        print(f"{name:<16} tau {s['tau']:.3f} [{s['tau_ci'][0]:.3f}, {s['tau_ci'][1]:.3f}] top-10"
              f" {s['top10_overlap'] * 10:.0f}/10 in 5 MACs bands {band_stats(v, acc, groups)['mean_tau']:.3f};"
              f" inside each sub-supernet {', '.join(f'{t:.3f}' for t in same)}")
    return 0


def few_shot_train(args) -> int:
    import torch

    import mnas.oneshot.train as T
    from mnas.train import load
    from mnas.train.config import recipe

    torch.set_num_threads(1)
    net, _ = T.load_supernet(args.src)
    count = net.space.num_choices[args.layer]
    ops = range(count) if args.ops is None else [int(o) for o in args.ops.split(",")]
    data = load(args.data, val_fraction=0.2, seed=0)
    for op in ops:
        out = few_shot_paths(args.out, args.layer, count)[op]
        if Path(out).exists():
            print(f"{out} exists: skipped", file=sys.stderr)
            continue
        net, _ = T.load_supernet(args.src)
        trainer = type("FewShotTrainer", (T._Trainer,), {})
        _fix_layer(trainer, args.layer, op)
        saved, T._Trainer = T._Trainer, trainer
        try:
            train = recipe("fast", epochs=args.epochs, batch_size=128, lr=args.lr, threads=1, seed=1,
                           warmup_epochs=0.0)
            started = time.time()
            result = T.train_supernet(net, data, T.SupernetTrainConfig(train=train, warmup_epochs=0.0), out)
        finally:
            T._Trainer = saved
        print(json.dumps({"op": op, "out": out, "seconds": round(time.time() - started),
                          "largest": result["history"][-1].get("val_accuracy_largest"),
                          "smallest": result["history"][-1].get("val_accuracy_smallest")}), flush=True)
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("continue")
    c.add_argument("src")
    c.add_argument("out")
    c.add_argument("--rule", choices=["fair", "sandwich"], default="fair")
    c.add_argument("--epochs", type=int, default=3)
    c.add_argument("--lr", type=float, default=0.03)
    fs = sub.add_parser("few-shot")
    fs.add_argument("src")
    fs.add_argument("out", help="prefix of the sub-supernets' files")
    fs.add_argument("--layer", type=int, default=0)
    fs.add_argument("--ops", help="comma-separated ops to train (default: all of the layer's)")
    fs.add_argument("--epochs", type=int, default=3)
    fs.add_argument("--lr", type=float, default=0.03)
    sc = sub.add_parser("few-shot-score")
    sc.add_argument("prefix")
    sc.add_argument("--layer", type=int, default=0)
    sc.add_argument("--workers", type=int, default=1)
    sc.add_argument("--truth", default=str(TRUTH))
    sd = sub.add_parser("seed")
    sd.add_argument("out")
    sd.add_argument("--seed", type=int, default=1)
    sd.add_argument("--epochs", type=int, default=14)
    f = sub.add_parser("fair-sandwich")
    f.add_argument("out")
    f.add_argument("--epochs", type=int, default=14)
    p.add_argument("--data", default=str(DATA))
    args = p.parse_args()
    if args.cmd == "few-shot-score":
        return few_shot_score(args)
    if args.cmd == "few-shot":
        return few_shot_train(args)
    if Path(args.out).exists():
        print(f"{args.out} exists: choose another output file", file=sys.stderr)
        return 2

    import torch

    import mnas.oneshot.train as T
    from mnas.oneshot import build_supernet
    from mnas.space.presets import nas_bench_macro_space
    from mnas.train import load
    from mnas.train.config import recipe

    torch.set_num_threads(1)
    data = load(args.data, val_fraction=0.2, seed=0)
    if args.cmd == "continue":
        net, _ = T.load_supernet(args.src)
        train = recipe("fast", epochs=args.epochs, batch_size=128, lr=args.lr, threads=1, seed=1, warmup_epochs=0.0)
        if args.rule == "fair":
            cfg = T.SupernetTrainConfig(train=train, warmup_epochs=0.0, num_random=3, sandwich=False, distill=False,
                                        sampler="fair")
        else:
            cfg = T.SupernetTrainConfig(train=train, warmup_epochs=0.0)
    elif args.cmd == "seed":
        torch.manual_seed(args.seed)
        net = build_supernet(nas_bench_macro_space(10, 32, width_mult=0.5), in_chans=3)
        cfg = T.SupernetTrainConfig(train=recipe("fast", epochs=args.epochs, batch_size=128, threads=1, seed=args.seed))
    else:
        _fair_sandwich(T._Trainer)
        torch.manual_seed(0)
        net = build_supernet(nas_bench_macro_space(10, 32, width_mult=0.5), in_chans=3)
        cfg = T.SupernetTrainConfig(train=recipe("fast", epochs=args.epochs, batch_size=128, threads=1, seed=0))
    started = time.time()
    result = T.train_supernet(net, data, cfg, args.out)
    print(json.dumps({"seconds": round(time.time() - started), "epochs": [
        {"epoch": h["epoch"], "train_seconds": round(h["train_seconds"]), "largest": h.get("val_accuracy_largest"),
         "smallest": h.get("val_accuracy_smallest")} for h in result["history"]]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
