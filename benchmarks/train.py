"""Proxy-trainer throughput against a minimal hand-written PyTorch loop, and a short proxy run's accuracy.

    python benchmarks/train.py                      # MnasNet-B1 x0.5 at 32x32 on the CIFAR-10 subset
    python benchmarks/train.py --epochs 0           # throughput only
    python benchmarks/train.py --data digits --arch mnasnet_small_x0.5

Both loops train the same architecture on the same data with the same batch size, threads and
memory layout; the minimal loop reads batches from a tensor that is already normalised, so the
ratio also charges the trainer for its on-the-fly augmentation and normalisation. Variants run
interleaved, round after round, and each figure is the median over rounds, so that load from other
processes on a shared machine hits every variant alike. Prints measured figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mnas._util import seed_everything
from mnas.data import load
from mnas.models import build_model
from mnas.space import adapt_strides, as_arch, get_arch, is_zoo_name
from mnas.train import ProxyConfig, train_proxy

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def minimal_loop(arch, data, x_all, y_all, batch_size: int, steps: int, channels_last: bool) -> tuple[float, float]:
    """The baseline: images per wall-clock second and per CPU second of a bare loop over a pre-normalised tensor."""
    seed_everything(0)
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    perm = torch.randperm(len(y_all))
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(steps):
        idx = perm[i * batch_size:(i + 1) * batch_size]
        x = x_all[idx].contiguous(memory_format=fmt)
        loss = F.cross_entropy(model(x), y_all[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    images = steps * batch_size
    return images / (time.perf_counter() - start), images / (time.process_time() - cpu)


def trainer(arch, data, batch_size: int, steps: int, threads: int, channels_last: bool) -> tuple[float, float]:
    """The proxy trainer's images per second (its own figure) and per CPU second of the whole call (set-up
    included; the validation split is cut to one image so that scoring does not count as training)."""
    seed_everything(0)
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    tiny_val = dataclasses.replace(data, x_val=data.x_val[:1], y_val=data.y_val[:1])
    cpu = time.process_time()
    r = train_proxy(model, tiny_val, ProxyConfig(steps=steps, batch_size=batch_size, threads=threads,
                                                 channels_last=channels_last, lr=0.05))
    cpu = time.process_time() - cpu
    if not r.ok:
        raise RuntimeError(r.failure)
    return r.images_per_second, r.steps * batch_size / cpu


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA), help="data set (default: the CIFAR-10 subset)")
    p.add_argument("--arch", default="mnasnet_b1_x0.5")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--steps", type=int, default=8, help="steps per variant per round")
    p.add_argument("--rounds", type=int, default=3, help="measured rounds (after one warm-up round)")
    p.add_argument("--epochs", type=float, default=3.0, help="epochs of the proxy accuracy run (0: skip)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate of the proxy accuracy run")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()

    if args.data == str(DEFAULT_DATA) and not DEFAULT_DATA.is_file():
        print(f"{DEFAULT_DATA} not found; using the built-in digits", file=sys.stderr)
        args.data = "digits"
    data = load(args.data, val_fraction=0.1, seed=0)
    arch = as_arch(args.arch) if not is_zoo_name(args.arch) else adapt_strides(get_arch(args.arch), data.input_size)
    torch.set_num_threads(args.threads)
    x_all = ((torch.from_numpy(data.x_train).permute(0, 3, 1, 2).float() / 255
              - torch.tensor(data.mean).view(1, -1, 1, 1)) / torch.tensor(data.std).view(1, -1, 1, 1)).contiguous()
    y_all = torch.from_numpy(data.y_train)
    print(f"# {args.arch} on {data!r}, batch {args.batch_size}, {args.threads} threads, torch {torch.__version__}",
          file=sys.stderr)
    print(f"# strides: stem {arch.stem_stride}, blocks {[b.stride for b in arch.blocks]}", file=sys.stderr)

    variants = {
        "trainer channels_last": lambda: trainer(arch, data, args.batch_size, args.steps, args.threads, True),
        "minimal channels_last": lambda: minimal_loop(arch, data, x_all, y_all, args.batch_size, args.steps, True),
        "trainer NCHW": lambda: trainer(arch, data, args.batch_size, args.steps, args.threads, False),
        "minimal NCHW": lambda: minimal_loop(arch, data, x_all, y_all, args.batch_size, args.steps, False),
    }
    wall: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for rnd in range(args.rounds + 1):
        for name, fn in variants.items():
            ips, cps = fn()
            if rnd:  # round 0 warms up oneDNN's primitive caches
                wall[name].append(ips)
                cpu[name].append(cps)
            print(f"round {rnd}{' (warm-up)' if not rnd else ''}  {name:22s} {ips:8.1f} img/s  {cps:8.1f} img/cpu-s",
                  file=sys.stderr, flush=True)
    report = {"arch": args.arch, "data": data.name, "batch_size": args.batch_size, "threads": args.threads}
    print(f"\n{args.arch}, {data.name}, {data.input_size}x{data.input_size}, batch {args.batch_size},"
          f" {args.threads} threads (median of {args.rounds} rounds x {args.steps} steps)")
    print(f"  {'':22s} {'img/s':>8s} {'img/cpu-s':>10s}")
    for name in variants:
        print(f"  {name:22s} {statistics.median(wall[name]):8.1f} {statistics.median(cpu[name]):10.1f}")
    for unit, figures in (("wall", wall), ("cpu", cpu)):
        med = {k: statistics.median(v) for k, v in figures.items()}
        ratios = {
            "images_per_second": med,
            "ratio_trainer_over_minimal_channels_last": med["trainer channels_last"] / med["minimal channels_last"],
            "ratio_trainer_over_minimal_nchw": med["trainer NCHW"] / med["minimal NCHW"],
            "channels_last_speedup_trainer": med["trainer channels_last"] / med["trainer NCHW"],
            "channels_last_speedup_minimal": med["minimal channels_last"] / med["minimal NCHW"],
        }
        report[unit] = ratios
        print(f"  [{unit}] ratio trainer / minimal loop: {ratios['ratio_trainer_over_minimal_channels_last']:.3f}"
              f" (channels_last), {ratios['ratio_trainer_over_minimal_nchw']:.3f} (NCHW);"
              f" channels_last speed-up {ratios['channels_last_speedup_trainer']:.2f}x (trainer),"
              f" {ratios['channels_last_speedup_minimal']:.2f}x (minimal loop)")

    if args.epochs > 0:
        seed_everything(0)
        model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
        config = ProxyConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads)
        r = train_proxy(model, data, config)
        report["proxy_run"] = {"config": {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr},
                               **r.to_dict()}
        if r.ok:
            print(f"  {args.epochs:g}-epoch proxy run: val accuracy {r.accuracy:.4f}, val loss {r.loss:.3f},"
                  f" {r.images_per_second:.1f} img/s, {r.seconds:.0f}s (batch {args.batch_size}, lr {args.lr})")
        else:
            print(f"  {args.epochs:g}-epoch proxy run failed: {r.failure}")
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
