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
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import DATA  # noqa: E402


def _fair_sandwich(trainer_cls):
    """Patch the trainer so a sandwich step is [largest] + a FairNAS group of 3 (no smallest)."""
    from mnas.oneshot.sampling import FairSampler

    def archs_for(self, step):
        if step < self.warmup_steps:
            return [self.largest]
        rng = np.random.default_rng([self.config.train.seed, step, 0x5a4d])
        return [self.largest, *FairSampler(self.net.space).sample_group(rng, 3)]

    trainer_cls.archs_for = archs_for


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("continue")
    c.add_argument("src")
    c.add_argument("out")
    c.add_argument("--rule", choices=["fair", "sandwich"], default="fair")
    c.add_argument("--epochs", type=int, default=3)
    c.add_argument("--lr", type=float, default=0.03)
    f = sub.add_parser("fair-sandwich")
    f.add_argument("out")
    f.add_argument("--epochs", type=int, default=14)
    p.add_argument("--data", default=str(DATA))
    args = p.parse_args()
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
