"""Does a trained supernet know the space between its extremes? Inherited accuracy of the largest and
smallest sub-networks, of the largest with one decision changed in every block at once, and of
random sub-networks.

    python benchmarks/supernet_probe.py runs/supernet.pt [--data ../shared/data/cifar10_10k.npz] [--random 10]

A supernet that trained only its two extremes (the sandwich rule on a space whose op families have
separate weights) scores its largest well, collapses to chance when one decision of it changes, and
scores random sub-networks at chance; one that trained the family keeps both close to the extremes.
Batch norm recalibrated on --images training images (default 500), scored on the validation split
(val fraction 0.2, seed 0); one torch thread. Prints measured figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import numpy as np
import torch

from mnas.data import load
from mnas.oneshot.evaluate import evaluate_subnet
from mnas.oneshot.train import load_supernet

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--images", type=int, default=500, help="BN recalibration images")
    p.add_argument("--random", type=int, default=10, help="random sub-networks (seed 0)")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load(args.data, val_fraction=0.2, seed=0)
    net = load_supernet(args.checkpoint)[0]
    space = net.space

    def acc(arch) -> float:
        return evaluate_subnet(net, arch, data, num_images=args.images).accuracy

    largest, smallest = net.largest_arch(), net.smallest_arch()
    print(f"{args.checkpoint}: {space!r}, val split {len(data.y_val)} images, BN images {args.images},"
          f" load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"largest  {acc(largest):.4f}   {largest}")
    print(f"smallest {acc(smallest):.4f}   {smallest}")
    tokens, per = space.encode(largest), len(space.options)
    for k, key in enumerate(space.options):
        for j, choice in enumerate(space.options[key]):
            changed = [j if i % per == k else t for i, t in enumerate(tokens)]
            arch = space.decode(changed)
            if arch != largest:
                print(f"largest with every block's {key} = {choice}: {acc(arch):.4f}")
    rng = np.random.default_rng(0)
    scores = [acc(space.sample(rng)) for _ in range(args.random)]
    if scores:
        sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
        print(f"{len(scores)} random sub-networks: mean {statistics.mean(scores):.4f} (sd {sd:.4f}),"
              f" range {min(scores):.4f}-{max(scores):.4f}; chance {1 / data.num_classes:.3f}")


if __name__ == "__main__":
    main()
