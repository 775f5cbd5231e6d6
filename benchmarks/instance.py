"""InstaNAS on the CIFAR-10 subset: does an architecture per image beat one architecture for all?

    python benchmarks/instance.py                       # ~60 min of one loaded core: the figures in docs/design/instance.md
    python benchmarks/instance.py --quick               # a 2-minute dry run on 600 images (numbers meaningless)

Steps (each cached in --out, so a rerun after a crash resumes where it stopped):
1. measure the per-module latency table on ONNX Runtime (1 thread, batch 1);
2. train the instance-aware model (`mnas.instance.train_instance`: pre-training with every module on
   first, the keep probability falling linearly to --keep-end, then controller / meta-graph epochs);
3. train MobileNetV2 x0.5 with the same strides, recipe ("fast") and number of epochs (pre-training
   plus fine-tuning epochs), and list it in RUN_DIR/baselines.json for `mnas report RUN_DIR`;
4. single architectures from the same meta-graph: the fixed routes (every module, each module type
   everywhere, the smallest) and random routes, each as a plain network with batch norm
   recalibrated on 2,000 training images;
5. the instance-aware model at several QoS settings (threshold 0.5, latency budgets) on the test split;
6. latency measured on ONNX Runtime, 1 thread, batch 1: the controller and each route's network. The
   average over the test set is estimated from a uniform sample of --sample test images whose routes
   are all measured (exact when there are no more distinct routes than that), with its standard error;
7. the exported runner (NumPy + ONNX Runtime) on those sampled images, wall clock per image.

Prints measured figures with seeds, sample sizes and noise; asserts nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mnas.data import load
from mnas.instance.latency import LatencyTable
from mnas.instance.report import route_distribution, tradeoff_data
from mnas.instance.routes import fixed_routes
from mnas.instance.runtime import evaluate_instance, evaluate_route, measure_routes
from mnas.instance.summary import BASELINES
from mnas.instance.train import MODEL, InstanceConfig, load_instance, train_instance
from mnas.space import adapt_strides, as_arch, get_arch
from mnas.train import recipe, train_full
from mnas.train.datasets import from_arrays

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def mbv2_arch(stem_stride: int):
    """MobileNetV2 x0.5 with the meta-graph's strides (the zoo's CIFAR strides, stem at `stem_stride`)."""
    arch = adapt_strides(get_arch("mobilenetv2_x0.5"), 32)  # stem and second stage at stride 1
    text = str(arch)
    return as_arch(text.replace("| s1_", f"| s{stem_stride}_")) if stem_stride != 1 else arch


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--out", default="/tmp/instance_bench")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--pretrain-epochs", type=int, default=5)
    p.add_argument("--keep-start", type=float, default=1.0,
                   help="module keep probability in the first pre-training epoch (falls linearly to --keep-end)")
    p.add_argument("--keep-end", type=float, default=0.6,
                   help="keep probability in the last pre-training epoch (random paths from scratch do not train; notes)")
    p.add_argument("--lr-per-256", type=float, default=0.1)
    p.add_argument("--search-epochs", type=int, default=3)
    p.add_argument("--finetune-epochs", type=float, default=0.25)
    p.add_argument("--window-end", type=float, default=1.0,
                   help="final upper bound of the latency window, x the k3e6 route (paper 0.5; see the notes)")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--random-routes", type=int, default=3)
    p.add_argument("--sample", type=int, default=40, help="test images whose routes are measured on ONNX Runtime")
    p.add_argument("--train-images", type=int, default=0, help="train on this many of the training images (0: all)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    log(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    data = load(args.data, val_fraction=0.1, seed=args.seed)
    if args.quick:
        rng = np.random.default_rng(0)
        tr, te = rng.permutation(len(data.y_train))[:500], rng.permutation(len(data.y_test))[:200]
        data = from_arrays("quick", data.x_train[tr], data.y_train[tr], data.x_test[te], data.y_test[te],
                           class_names=data.class_names, val_fraction=0.2, seed=0)
        args.pretrain_epochs, args.search_epochs, args.finetune_epochs = 1, 2, 0.5
        args.random_routes, args.sample = 2, 10
    if args.train_images and not args.quick:
        tr = np.random.default_rng(0).permutation(len(data.y_train))[:args.train_images]
        data = dataclasses.replace(data, x_train=data.x_train[tr], y_train=data.y_train[tr], name=data.name + "-sub")
    log(f"data: {data!r}")
    config = InstanceConfig(width=args.width, pretrain_epochs=args.pretrain_epochs, search_epochs=args.search_epochs,
                            finetune_epochs=args.finetune_epochs, window_end=args.window_end, seed=args.seed,
                            keep_start=args.keep_start, keep_end=args.keep_end, lr_per_256=args.lr_per_256)
    run_dir = out / "instance"
    results: dict = {"config": config.to_dict(), "data": data.to_dict() | {"class_names": list(data.class_names)}}

    # 1-2. latency table and the instance-aware model
    if not (run_dir / MODEL).is_file():
        t = time.perf_counter()
        final = train_instance(data, config, run_dir, resume=(run_dir / "checkpoint.pt").is_file(), log=log)
        log(f"instance model trained: {final['seconds']:.0f}s of training ({time.perf_counter() - t:.0f}s with table)")
    meta, controller, info = load_instance(run_dir)
    table = LatencyTable.from_dict(info["table"])
    history = info["history"]
    train_seconds = info["metrics"]["seconds"]
    results["history"] = history
    ft_epochs = args.search_epochs * args.finetune_epochs
    base_epochs = int(round(args.pretrain_epochs + ft_epochs))

    # 3. MobileNetV2 x0.5, same recipe and epochs
    mb_dir = out / "mobilenetv2"
    arch = mbv2_arch(config.stem_stride)
    if not (mb_dir / "metrics.json").is_file():
        mb_cfg = recipe("fast", epochs=base_epochs, batch_size=config.batch_size, seed=args.seed, device="cpu",
                        lr=config.lr_per_256 * config.batch_size / 256,
                        warmup_epochs=min(1.0, base_epochs / 3))
        train_full(arch, data, mb_cfg, mb_dir, resume=(mb_dir / "checkpoint.pt").is_file(), log=log)
    mb = json.loads((mb_dir / "metrics.json").read_text())
    mb_lat = _measure_arch(arch, data)
    mb_se = math.sqrt(mb["test_accuracy"] * (1 - mb["test_accuracy"]) / mb["num_test"])
    results["mobilenetv2"] = {"arch": str(arch), "epochs": base_epochs, "accuracy": mb["test_accuracy"],
                              "accuracy_se": mb_se, "latency_ms": mb_lat["median_ms"], "latency_iqr_ms": mb_lat["iqr_ms"],
                              "train_seconds": mb["seconds"]}
    log(f"MobileNetV2 x0.5: test acc {mb['test_accuracy']:.4f}, {mb_lat['median_ms']:.3f} ms")
    # for `mnas report RUN_DIR`: the baseline trained alike, drawn with the instance-aware points
    (run_dir / BASELINES).write_text(json.dumps([{"label": f"MobileNetV2 x0.5 ({base_epochs} epochs)",
                                                  "accuracy": mb["test_accuracy"], "accuracy_se": mb_se,
                                                  "latency_ms": mb_lat["median_ms"]}], indent=1))

    # 4. single architectures from the same meta-graph
    singles_path = out / "singles.json"
    singles = json.loads(singles_path.read_text()) if singles_path.is_file() else []
    done = {s["label"] for s in singles}
    rng = np.random.default_rng(args.seed + 7)
    routes = dict(fixed_routes(meta.skippable))
    for k in range(args.random_routes):
        keep = 0.2 + 0.6 * k / max(1, args.random_routes - 1)
        policy = rng.random((1, meta.num_layers, 5)) < keep
        from mnas.instance.routes import policy_bits

        routes[f"random{k}(keep {keep:.2f})"] = tuple(int(b) for b in policy_bits(policy, meta.skippable)[0])
    for label, route in routes.items():
        if label in done:
            continue
        r = evaluate_route(meta, route, data, "test", recalibrate=2000)
        lat = measure_routes(meta, controller, [r["route"]])
        m = lat["routes"][r["route"]]
        singles.append({"label": label, "route": r["route"], "accuracy": r["accuracy"], "accuracy_se": r["accuracy_se"],
                        "latency_ms": m["median_ms"], "latency_spread_ms": m["iqr_ms"],
                        "predicted_ms": table.route_ms(route) - table.controller_ms})
        singles_path.write_text(json.dumps(singles, indent=1))
        log(f"single {label}: acc {r['accuracy']:.4f}  {m['median_ms']:.3f} ms")
    results["singles"] = singles

    # 5-6. the instance-aware model at QoS settings, latency measured on a uniform sample
    k3e6_total = table.route_ms(fixed_routes(meta.skippable)["k3e6"])
    settings = [("threshold 0.5", {"threshold": 0.5})] + [
        (f"budget {f:.1f}x k3e6 ({f * k3e6_total:.2f} ms)", {"budget_ms": f * k3e6_total}) for f in (1.0, 0.8, 0.6)]
    measured: dict[str, dict] = {}
    ctrl_ms = None
    instance_points, sample_idx = [], np.random.default_rng(args.seed + 11).permutation(len(data.y_test))[:args.sample]
    for label, qos in settings:
        ev = evaluate_instance(meta, controller, data, "test", table, **qos)
        todo = [r for r in dict.fromkeys(ev["routes"][i] for i in sample_idx) if r not in measured]
        if todo or ctrl_ms is None:
            lat = measure_routes(meta, controller, todo, log=log)
            measured.update(lat["routes"])
            ctrl_ms = ctrl_ms or lat["controller_ms"]
        per_image = np.array([ctrl_ms + measured[ev["routes"][i]]["median_ms"] for i in sample_idx])
        predicted = ev["latency_ms"]
        point = {"label": label, **qos, "accuracy": ev["accuracy"], "accuracy_se": ev["accuracy_se"],
                 "latency_ms": float(per_image.mean()),
                 "latency_se_ms": float(per_image.std(ddof=1) / math.sqrt(len(per_image))) if len(per_image) > 1 else 0.0,
                 "latency_spread_ms": float(per_image.std()), "latency_sample": len(per_image),
                 "predicted_ms": float(predicted.mean()), "predicted_sample_ms": float(predicted[sample_idx].mean()),
                 "distinct_routes": ev["distinct_routes"], "controller_ms": ctrl_ms,
                 "controller_share": ctrl_ms / float(per_image.mean())}
        dist = route_distribution(ev["routes"], ev["labels"].tolist(), list(data.class_names), top=6)
        point["route_distribution"] = dist
        instance_points.append(point)
        log(f"instance {label}: acc {ev['accuracy']:.4f}  measured {point['latency_ms']:.3f} ms  routes"
            f" {ev['distinct_routes']}")
    results["instance"] = instance_points
    results["controller_ms"] = ctrl_ms

    # 7. the exported runner on the sampled images (threshold 0.5)
    results["runner"] = _runner_check(meta, controller, data, table, sample_idx, out, log)
    results["train_seconds"] = {"instance": train_seconds, "mobilenetv2": mb["seconds"],
                                "benchmark_total": time.perf_counter() - t_start}
    baselines = [{"label": "MobileNetV2 x0.5 (standalone)", "accuracy": mb["test_accuracy"], "accuracy_se": mb_se,
                  "latency_ms": mb_lat["median_ms"]}]
    results["tradeoff"] = tradeoff_data(instance_points, singles, baselines)
    (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    _print(results, data)
    try:
        from mnas.instance.report import plot_route_distribution, plot_tradeoff

        plot_tradeoff(results["tradeoff"], out / "tradeoff.png")
        plot_route_distribution(instance_points[0]["route_distribution"], out / "routes_per_class.png")
        log(f"figures: {out / 'tradeoff.png'}, {out / 'routes_per_class.png'}")
    except ImportError as exc:
        log(f"no figures: {exc}")
    log(f"uptime: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    return 0


def _measure_arch(arch, data) -> dict:
    from mnas.latency.base import Protocol
    from mnas.latency.ort import OnnxRuntime

    res = OnnxRuntime(threads=1, protocol=Protocol(max_time_s=2.0)).measure(arch, 32, data.num_classes, 1,
                                                                            data.channels)
    return {"median_ms": res.median_ms, "iqr_ms": res.iqr_ms}


def _runner_check(meta, controller, data, table, sample_idx, out: Path, log) -> dict:
    """Export the sampled images' routes, run the torch-free runner on those images, compare."""
    from mnas.instance.export import export_instance
    from mnas.instance.runner import InstanceRunner

    sub = dataclasses.replace(data, x_test=data.x_test[sample_idx], y_test=data.y_test[sample_idx])
    ev = evaluate_instance(meta, controller, sub, "test", table, threshold=0.5)
    export_dir = out / "export"
    export_instance(meta, controller, ev["routes"], export_dir, table=table, mean=list(data.mean), std=list(data.std),
                    class_names=list(data.class_names))
    runner = InstanceRunner(export_dir, threshold=0.5)
    runner.warm()
    res = runner.predict(data.x_test[sample_idx])
    agree = float((res["labels"] == _torch_pred(meta, controller, sub, table)).mean())
    size = sum(f.stat().st_size for f in export_dir.rglob("*.onnx"))
    log(f"runner: {len(sample_idx)} images, median {np.median(res['wall_ms']):.3f} ms/image wall clock")
    return {"images": len(sample_idx), "wall_ms_median": float(np.median(res["wall_ms"])),
            "wall_ms_mean": float(res["wall_ms"].mean()), "wall_ms_iqr": float(np.subtract(*np.percentile(res["wall_ms"],
                                                                                                        [75, 25]))),
            "fallbacks": res["fallbacks"], "label_agreement_with_torch": agree,
            "routes_exported": len(set(ev["routes"])), "export_bytes": size,
            "accuracy": float((res["labels"] == data.y_test[sample_idx]).mean())}


def _torch_pred(meta, controller, sub, table) -> np.ndarray:
    from mnas.instance.runtime import RoutedRuntime
    from mnas.train.augment import BatchTransform
    from mnas.train.datasets import NO_AUGMENT

    x = BatchTransform(sub.mean, sub.std, NO_AUGMENT)(torch.from_numpy(sub.x_test), train=False)
    logits, _ = RoutedRuntime(meta, controller, table, threshold=0.5)(x)
    return logits.argmax(1).numpy()


def _print(r: dict, data) -> None:
    cfg = r["config"]
    print(f"\nInstaNAS on {data.name}: {len(data.y_train)} train / {len(data.y_val)} val / {len(data.y_test)} test,"
          f" 32x32, seed {cfg['seed']}; meta-graph width {cfg['width']}, stem stride {cfg['stem_stride']};"
          f" {cfg['pretrain_epochs']} pre-training + {cfg['search_epochs']} search epochs"
          f" (fine-tuning {cfg['finetune_epochs']} epoch each)")
    print(f"latency: ONNX Runtime 1 thread, batch 1, median per network; load {os.getloadavg()}")
    mb = r["mobilenetv2"]
    print(f"\nMobileNetV2 x0.5 ({mb['epochs']} epochs, same recipe): acc {100 * mb['accuracy']:.2f} ± "
          f"{100 * mb['accuracy_se']:.2f}%  latency {mb['latency_ms']:.3f} ms (IQR {mb['latency_iqr_ms']:.3f})")
    print("\nsingle architectures from the meta-graph (BN recalibrated on 2,000 training images):")
    print(f"  {'label':28s} {'acc %':>12s} {'measured ms':>12s} {'table ms':>9s}")
    for s in sorted(r["singles"], key=lambda s: s["latency_ms"]):
        print(f"  {s['label']:28s} {100 * s['accuracy']:6.2f} ± {100 * s['accuracy_se']:4.2f} {s['latency_ms']:8.3f}"
              f" ±{s['latency_spread_ms']:.3f} {s['predicted_ms']:9.3f}")
    print("\ninstance-aware model (controller included; latency: mean over a uniform test sample, ± s.e.):")
    for p in r["tradeoff"]["instance"]:
        best = (f"best single at <= latency: {p['best_single']} {100 * p['best_single_accuracy']:.2f}%"
                f" (gain {100 * p['accuracy_gain']:+.2f} pt)" if p["best_single"] else "no single architecture as fast")
        print(f"  {p['label']:34s} acc {100 * p['accuracy']:6.2f} ± {100 * p['accuracy_se']:4.2f}%  latency"
              f" {p['latency_ms']:.3f} ± {p['latency_se_ms']:.3f} ms (n={p['latency_sample']}, table {p['predicted_ms']:.3f})"
              f"  routes {p['distinct_routes']}  controller {100 * p['controller_share']:.1f}%  | {best}")
    ru = r["runner"]
    print(f"\nrunner (numpy + onnxruntime, threshold 0.5) on {ru['images']} test images: median {ru['wall_ms_median']:.3f}"
          f" ms/image wall clock (IQR {ru['wall_ms_iqr']:.3f}), {ru['routes_exported']} routes exported"
          f" ({ru['export_bytes'] / 1e6:.1f} MB), fallbacks {ru['fallbacks']}, label agreement with PyTorch"
          f" {100 * ru['label_agreement_with_torch']:.1f}%")
    ts = r["train_seconds"]
    print(f"training time (one core): instance {ts['instance']:.0f}s, MobileNetV2 {ts['mobilenetv2']:.0f}s;"
          f" benchmark total {ts['benchmark_total']:.0f}s")
    print("\nper-epoch history:")
    for h in r["history"]:
        print("  " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}))
    d = r["instance"][0]["route_distribution"]
    print(f"\nroutes per class at threshold 0.5 ({d['distinct']} distinct; top {len(d['routes'])} columns):")
    for name, row in zip(d["classes"], d["counts"], strict=True):
        print(f"  {name:12s} " + " ".join(f"{c:4d}" for c in row))
    for j, route in enumerate(d["routes"]):
        print(f"  column {j}: {route}")


if __name__ == "__main__":
    sys.exit(main())
