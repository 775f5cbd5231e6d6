"""A longer search on the CIFAR-10 subset, and the reference models on the same proxy and device.

    python benchmarks/search_cifar.py --hours 0.5 --epochs 2 --storage runs/cifar.db

Searches `MnasNetSpace(10, 32, width_mult=0.5)` (strides adapted to 32x32) on
`../shared/data/cifar10_10k.npz` with ONNX Runtime latency (1 thread, batch 1) and the soft MnasNet
reward at a target of MobileNetV2 x0.5's measured latency; then trains MnasNet-B1 x0.5 and
MobileNetV2 x0.5 (same stride adaptation) with the same proxy and measures them on the same backend,
and prints them next to the best architecture found under the target. Training and measurement
alternate in one process, so latency is never measured while a model trains.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from mnas.evaluate import train_candidate
from mnas.latency import OnnxRuntime
from mnas.loop import Budget, search
from mnas.objectives import Reward
from mnas.space import MnasNetSpace, adapt_strides, get_arch
from mnas.train import ProxyConfig, load

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--hours", type=float, default=0.5)
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--strategy", default="ppo")
    parser.add_argument("--storage", default="runs/cifar-search.db")
    parser.add_argument("--references", default="mnasnet_b1_x0.5,mobilenetv2_x0.5,mnasnet_b1_x0.35,mobilenetv2_x0.35")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    data = load(args.data, val_fraction=0.1, seed=0)
    space = MnasNetSpace(10, 32, width_mult=0.5)
    latency = OnnxRuntime(threads=1)
    proxy = ProxyConfig(epochs=args.epochs, batch_size=64, lr=0.1, threads=args.threads, seed=0)
    target_ms = latency.measure(adapt_strides(get_arch("mobilenetv2_x0.5"), 32), 32, 10).median_ms
    reward = Reward.soft(target_ms)
    print(f"# data {data}; space {space!r}")
    print(f"# proxy: {args.epochs:g} epochs, batch 64, lr 0.1, {args.threads} threads; latency: ONNX Runtime, 1 thread")
    print(f"# target: MobileNetV2 x0.5 at 32x32 = {target_ms:.3f} ms; budget {args.trials} trials / {args.hours:g} h")
    started = time.perf_counter()
    study = search(space, data=data, latency=latency, reward=reward, strategy=args.strategy, proxy=proxy,
                   budget=Budget(trials=args.trials, hours=args.hours), storage=args.storage, seed=0)
    wall = time.perf_counter() - started
    summary = study.summary(target_ms=target_ms)
    print(f"# search: {summary['n_trials']} trials {summary['states']} in {wall / 60:.1f} min")

    rows = []
    for name in args.references.split(","):
        arch = adapt_strides(get_arch(name), 32)
        result = train_candidate(str(arch), data, proxy)
        lat = latency.measure(arch, 32, 10).median_ms
        rows.append({"model": name, "accuracy": result["accuracy"], "latency_ms": lat,
                     "reward": reward(result["accuracy"], lat), "params": result["params"], "macs": result["macs"]})
    best = study.best(target_ms=target_ms)
    top = study.best()
    for label, trial in (("search: best under target", best), ("search: best reward", top)):
        if trial is not None:
            rows.append({"model": f"{label} (trial {trial.number})", "accuracy": trial.accuracy,
                         "latency_ms": trial.latency_ms, "reward": trial.reward, "params": trial.params,
                         "macs": trial.macs, "arch": trial.arch})
    print(f"\n{'model':38s} {'val acc':>8s} {'latency ms':>11s} {'reward':>8s} {'params':>10s} {'MACs':>8s}")
    for r in rows:
        print(f"{r['model']:38s} {100 * r['accuracy']:7.1f}% {r['latency_ms']:11.3f} {r['reward']:8.4f} "
              f"{r['params']:>10,d} {r['macs'] / 1e6:7.1f}M")
    for r in rows:
        if "arch" in r:
            print(f"{r['model']}: {r['arch']}")
    Path(args.storage).with_suffix(".json").write_text(json.dumps({"target_ms": target_ms, "rows": rows,
                                                                   "wall_seconds": wall, "summary": summary},
                                                                  indent=2, default=str))


if __name__ == "__main__":
    main()
