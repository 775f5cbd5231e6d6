"""Forward+backward time of a supernet with its largest sub-network active vs build_model(largest).

    cpu-slot python benchmarks/supernet_speed.py [--space mnasnet|layerwise] [--width 0.5] [--reps 20]

One thread, 32x32, batch 64 (issue 9 item 1's setting). The two are timed in alternation, so load
changes hit both; the ratio is the median of per-round ratios, with its spread over rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from mnas.models import build_model
from mnas.oneshot import build_supernet
from mnas.space import LayerwiseSpace, MnasNetSpace


def step_time(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    start = time.perf_counter()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--space", choices=("mnasnet", "layerwise"), default="mnasnet")
    parser.add_argument("--width", type=float, default=0.5)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    cls = MnasNetSpace if args.space == "mnasnet" else LayerwiseSpace
    space = cls(10, 32, width_mult=args.width)
    net = build_supernet(space).train()
    arch = net.largest_arch()
    net.set_active(arch)
    static = build_model(arch, 10).train()
    x, y = torch.randn(args.batch, 3, 32, 32), torch.randint(0, 10, (args.batch,))
    for _ in range(3):  # warm-up
        step_time(net, x, y)
        step_time(static, x, y)
    sup, ref = [], []
    for _ in range(args.reps):
        sup.append(step_time(net, x, y))
        ref.append(step_time(static, x, y))
    ratios = [s / r for s, r in zip(sup, ref, strict=True)]
    q = statistics.quantiles(ratios, n=4)
    print(f"space={args.space} width={args.width} batch={args.batch} 32x32 threads=1 reps={args.reps}")
    print(f"largest: {arch}")
    print(f"supernet fwd+bwd median {statistics.median(sup) * 1e3:.1f} ms, build_model {statistics.median(ref) * 1e3:.1f} ms")
    print(f"ratio median {statistics.median(ratios):.3f} (quartiles {q[0]:.3f}-{q[2]:.3f})")
    print(f"load: {os.getloadavg()}")


if __name__ == "__main__":
    main()
