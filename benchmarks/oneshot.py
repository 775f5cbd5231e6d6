"""One-shot figures on the CIFAR-10 subset (issue 9): supernet training cost against one standalone
network of the largest size, sub-networks evaluated per minute, the evaluation floor, and a rank
check (Kendall tau, Spearman rho, +-10% latency bands, bootstrap intervals, free predictors' tau,
the seed-to-seed noise ceiling, and tau against the number of BN recalibration images).

    python benchmarks/oneshot.py --out /tmp/oneshot                    # everything, in order
    python benchmarks/oneshot.py --out /tmp/oneshot --phase standalone  # the K standalone trainings
    python benchmarks/oneshot.py --out /tmp/oneshot --phase supernet    # floor, ratio, supernet, inherited
    python benchmarks/oneshot.py --out /tmp/oneshot --phase report      # the statistics from both

The standalone and supernet phases are independent (the sub-networks are chosen from the space
alone), so on two cores they can run at once; every phase caches what it measured under --out and
continues where it stopped. Prints measured figures with seeds, sample sizes and the load; asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mnas.data import load
from mnas.models import build_model
from mnas.oneshot import build_supernet
from mnas.oneshot.evaluate import evaluate_subnet, recalibrate_bn
from mnas.oneshot.rank import choose_archs, free_predictors, rank_report, reference_archs, standalone_accuracy
from mnas.oneshot.sampling import make_predictor
from mnas.oneshot.train import SupernetTrainConfig, load_supernet, train_supernet
from mnas.space import MnasNetSpace, adapt_strides, get_arch
from mnas.train import recipe
from mnas.train.augment import BatchTransform
from mnas.train.checkpoint import atomic_write_json
from mnas.train.datasets import NO_AUGMENT

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"
CALIBRATION_SIZES = (250, 500, 1000, 2000)


def say(*args) -> None:
    print(*args, flush=True)


def uptime() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def setup(args):
    data = load(args.data, val_fraction=0.2, seed=0)
    strides = [int(s) for s in args.strides.split(",")] if args.strides else None
    space = MnasNetSpace(data.num_classes, data.input_size, width_mult=args.width, strides=strides)
    predictor = make_predictor(space, None, data.channels)  # MACs: free, and ranks like latency on one core
    archs = choose_archs(space, args.n, predictor, args.seed)
    names = [f"random{i}" for i in range(len(archs))]
    have = {str(a) for a in archs}
    for name, arch in reference_archs(space).items():
        if str(arch) not in have:
            archs.append(arch)
            names.append(name)
    return data, space, archs, names


def standalone_recipe(args):
    return recipe("fast", epochs=args.standalone_epochs, batch_size=128, threads=1)


def phase_standalone(args, data, space, archs) -> None:
    keys = [str(a) for a in archs]
    jobs = [(a, args.seed) for a in keys] + [(a, args.seed + 1) for a in keys[:args.noise]]
    started = time.perf_counter()
    results = standalone_accuracy(jobs, data, standalone_recipe(args), Path(args.out) / "standalone",
                                  workers=args.workers, log=say)
    say(f"standalone: {len(results)} trainings ({len(keys)} archs, {args.noise} second seeds), "
        f"{time.perf_counter() - started:.0f} s this call; load {uptime()}")


def measure_floor(data, repeats: int = 2) -> dict:
    """The floor of one sub-network's evaluation: a plain MobileNetV2 x0.5 at the data's size (the
    zoo's stride rule), 2,000 training images through BN in train mode, then 2,000 validation images."""
    arch = adapt_strides(get_arch("mobilenetv2_x0.5"), data.input_size)
    model = build_model(arch, data.num_classes, data.channels).to(memory_format=torch.channels_last)
    tf = BatchTransform(data.mean, data.std, NO_AUGMENT, None, "cpu", True)
    cal = [tf(torch.from_numpy(data.x_train[i:i + 250]), train=False) for i in range(0, 2000, 250)]
    val = [tf(torch.from_numpy(data.x_val[i:i + 250]), train=False) for i in range(0, 2000, 250)]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        recalibrate_bn(model, cal)
        with torch.inference_mode():
            for x in val:
                model(x)
        times.append(time.perf_counter() - t)
    return {"arch": str(arch), "seconds": times}


def phase_supernet(args, data, space, archs) -> None:
    out = Path(args.out)
    torch.set_num_threads(1)
    info_path = out / "supernet-info.json"
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    if "floor" not in info:
        info["floor"] = measure_floor(data)
        info["floor_ours"] = []
        net_mbv2 = build_supernet(MnasNetSpace(data.num_classes, data.input_size, width_mult=0.5, act="relu6"),
                                  in_chans=data.channels)
        ref = adapt_strides(get_arch("mobilenetv2_x0.5"), data.input_size)
        for _ in range(2):
            r = evaluate_subnet(net_mbv2, ref, data, num_images=2000, batch_size=250)
            info["floor_ours"].append(r.seconds)
        del net_mbv2
        info["floor_load"] = uptime()
        atomic_write_json(info, info_path)
    say(f"evaluation floor (plain MobileNetV2 x0.5, 2000 BN + 2000 val images, 1 thread): "
        f"{statistics.median(info['floor']['seconds']):.1f} s (runs {[round(s, 1) for s in info['floor']['seconds']]});"
        f" evaluate_subnet on the same arch from a supernet: {statistics.median(info['floor_ours']):.1f} s"
        f" (runs {[round(s, 1) for s in info['floor_ours']]}), ratio "
        f"{statistics.median(info['floor_ours']) / statistics.median(info['floor']['seconds']):.2f}; load {info['floor_load']}")

    torch.manual_seed(args.seed)
    net = build_supernet(space, in_chans=data.channels)
    cfg = SupernetTrainConfig(train=recipe("fast", epochs=args.epochs, batch_size=128, threads=1, seed=args.seed),
                              warmup_epochs=args.warmup, sampler=args.sampler, num_random=2, eval_images=500)
    if "largest_standalone" not in info:
        # The ratio's other side: one epoch of the largest sub-network as a plain model, same recipe.
        from mnas.oneshot.rank import train_standalone

        r = train_standalone(str(net.largest_arch()), data, recipe("fast", epochs=1, batch_size=128, threads=1), 0)
        info["largest_standalone"] = {"images_per_second": r["images_per_second"], "seconds": r["seconds"],
                                      "macs": r["macs"], "load": uptime()}
        atomic_write_json(info, info_path)
    ckpt = Path(args.supernet) if args.supernet else out / "supernet.pt"
    done = bool(args.supernet)  # a given checkpoint is only evaluated, never trained further
    if not done and ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        done = state["epoch"] >= args.epochs
    if not done:
        result = train_supernet(net, data, cfg, ckpt, resume=ckpt.is_file(), log=say,
                                progress=_LineProgress())
        info["supernet"] = {k: v for k, v in result.items() if k != "history"}
        info["supernet"]["history"] = result["history"]
        info["supernet"]["load"] = uptime()
        atomic_write_json(info, info_path)
    net, state = load_supernet(ckpt)
    hist = state["history"]
    sn_ips = statistics.mean(h["images_per_second"] for h in hist[int(args.warmup):]) if len(hist) > args.warmup else float("nan")
    sn_seconds = sum(h["train_seconds"] for h in hist)
    ls = info["largest_standalone"]
    say(f"supernet: {len(hist)} epochs ({args.warmup:g} warm-up on the largest), {sn_seconds:.0f} s of training,"
        f" {sn_ips:.1f} img/s in sandwich epochs (4 sub-networks per image); largest standalone"
        f" ({ls['macs'] / 1e6:.1f} MMACs): {ls['images_per_second']:.1f} img/s; per-epoch cost ratio"
        f" supernet/standalone-largest = {ls['images_per_second'] / sn_ips:.2f}; load {ls['load']}")
    for h in hist:
        say(f"  epoch {h['epoch']}: loss {h['train_loss']:.3f} val(largest) {h.get('val_accuracy_largest', float('nan')):.3f}"
            f" val(smallest) {h.get('val_accuracy_smallest', float('nan')):.3f} {h['images_per_second']:.1f} img/s")

    inh_path = out / f"inherited{args.tag}.json"
    inherited = json.loads(inh_path.read_text()) if inh_path.is_file() else {}
    for n_img in args.bn_images:
        key = str(n_img)
        rows = inherited.get(key, [])
        for arch in archs[len(rows):]:
            rows.append(evaluate_subnet(net, arch, data, num_images=n_img, batch_size=250).to_dict())
            inherited[key] = rows
            atomic_write_json(inherited, inh_path)
        secs = [r["seconds"] for r in rows]
        say(f"inherited with {n_img} BN images: {len(rows)} sub-networks, median {statistics.median(secs):.2f} s each"
            f" -> {60 / statistics.median(secs):.1f} sub-networks/minute on one core; load {uptime()}")


class _LineProgress:
    def start_epoch(self, epoch, epochs, steps):
        self.t, self.epochs = time.perf_counter(), epochs

    def step(self, loss, accuracy, ips):
        pass

    def end_epoch(self, m):
        say(f"  supernet epoch {m['epoch']}/{self.epochs}: loss {m['train_loss']:.3f} {m['images_per_second']:.1f} img/s"
            f" val(largest) {m.get('val_accuracy_largest', float('nan')):.3f} eta {m['eta_seconds']:.0f} s; load {uptime()}")


def phase_report(args, data, space, archs, names) -> dict:
    out = Path(args.out)
    keys = [str(a) for a in archs]
    trained = standalone_accuracy([(a, args.seed) for a in keys] + [(a, args.seed + 1) for a in keys[:args.noise]],
                                  data, standalone_recipe(args), out / "standalone", workers=1, log=lambda _: None)
    standalone = [r["accuracy"] for r in trained[:len(keys)]]
    noise = ([r["accuracy"] for r in trained[:args.noise]], [r["accuracy"] for r in trained[len(keys):]])
    inherited = json.loads((out / f"inherited{args.tag}.json").read_text())
    predictors = free_predictors(archs, space, data.channels, None)
    try:
        from mnas.latency import OnnxRuntime

        lat_path = out / "latency.json"
        if lat_path.is_file():
            predictors["latency_ms"] = json.loads(lat_path.read_text())
        else:
            backend = OnnxRuntime(threads=1)
            predictors["latency_ms"] = [float(backend.measure(a, data.input_size, data.num_classes).median_ms) for a in archs]
            atomic_write_json(predictors["latency_ms"], lat_path)
    except ImportError as exc:
        say(f"no measured latency ({exc}); bands by MACs")
    band_by = predictors.get("latency_ms", predictors["macs"])
    reports = {}
    for n_img in args.bn_images:
        rows = inherited.get(str(n_img), [])
        if len(rows) < len(keys):
            continue
        acc = [r["accuracy"] for r in rows[:len(keys)]]
        reports[n_img] = rank_report(acc, standalone, predictors, band_by, noise, n_resamples=1000, seed=args.seed)
    say(f"\nrank check: K = {len(keys)} sub-networks ({len(keys) - args.n} reference models: "
        f"{[n for n in names if not n.startswith('random')]}), standalone recipe fast {args.standalone_epochs:g} epochs"
        f" batch 128 seed {args.seed}; noise ceiling on {args.noise} archs with seed {args.seed + 1};"
        f" bands of +-10% {'latency (ONNX Runtime, 1 thread)' if 'latency_ms' in predictors else 'MACs'}")
    say(f"standalone val accuracy: mean {np.mean(standalone):.3f}, range {min(standalone):.3f}-{max(standalone):.3f};"
        f" seed-to-seed mean |diff| {np.mean(np.abs(np.subtract(*noise))):.3f}")
    say(f"{'predictor':<22}{'tau':>7}  {'tau 95% CI':<16}{'rho':>7}  {'rho 95% CI':<16}{'top5':>6}  band tau (sizes)")
    for n_img, rep in reports.items():
        _row(f"inherited ({n_img} BN)", rep["inherited"])
    last = reports[max(reports)] if reports else None
    if last:
        for name, stats in last["predictors"].items():
            _row(name, stats)
        if "noise_ceiling" in last:
            nc = last["noise_ceiling"]
            say(f"{'seed-to-seed (ceiling)':<22}{nc['tau']:>7.3f}  [{nc['tau_ci'][0]:.2f}, {nc['tau_ci'][1]:.2f}]    "
                f"{nc['rho']:>7.3f}  [{nc['rho_ci'][0]:.2f}, {nc['rho_ci'][1]:.2f}]  n={nc['n']}")
        say(f"bands: {last['bands']}")
    atomic_write_json({str(k): v for k, v in reports.items()}, out / f"report{args.tag}.json")
    say(f"load {uptime()}")
    return reports


def _row(name: str, s: dict) -> None:
    bands = s["in_bands"]
    per = ", ".join(f"{b['tau']:.2f}" for b in bands["bands"])
    say(f"{name:<22}{s['tau']:>7.3f}  [{s['tau_ci'][0]:.2f}, {s['tau_ci'][1]:.2f}]    {s['rho']:>7.3f}  "
        f"[{s['rho_ci'][0]:.2f}, {s['rho_ci'][1]:.2f}]  {s['top5_overlap']:>5.2f}  mean {bands['mean_tau']:.2f} ({per})")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="/tmp/oneshot-bench")
    p.add_argument("--phase", choices=("all", "standalone", "supernet", "report"), default="all")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--strides", default="2,1,1,2,2,1,1,1", help="stem + 7 block strides ('' = the space's default)")
    p.add_argument("--n", type=int, default=30, help="random sub-networks in the rank check")
    p.add_argument("--noise", type=int, default=6, help="sub-networks trained with a second seed")
    p.add_argument("--standalone-epochs", type=float, default=2.0)
    p.add_argument("--epochs", type=int, default=8, help="supernet epochs")
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--sampler", default="stratified", choices=("uniform", "stratified"))
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--supernet", help="evaluate this trained checkpoint instead of training out/supernet.pt")
    p.add_argument("--tag", default="", help="suffix of the inherited/report files (one per supernet)")
    p.add_argument("--bn-images", type=int, nargs="+", default=list(CALIBRATION_SIZES),
                   help="BN recalibration sizes to evaluate (default 250 500 1000 2000)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.supernet and not Path(args.supernet).is_file():
        print(f"--supernet {args.supernet}: file not found (train one with 'mnas supernet train')", file=sys.stderr)
        return 2
    if not Path(args.data).is_file() and args.data != "digits":
        print(f"data not found: {args.data}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    data, space, archs, names = setup(args)
    say(f"space: {space!r}; data {data.name}: {len(data.y_train)} train / {len(data.y_val)} val; "
        f"{len(archs)} sub-networks; torch {torch.__version__}, {torch.get_num_threads()} thread; load {uptime()}")
    if args.phase in ("all", "standalone"):
        phase_standalone(args, data, space, archs)
    if args.phase in ("all", "supernet"):
        phase_supernet(args, data, space, archs)
    if args.phase in ("all", "report"):
        phase_report(args, data, space, archs, names)
    return 0


if __name__ == "__main__":
    sys.exit(main())
