"""`mnas instance train|eval|export`: InstaNAS, an architecture per image under a latency budget."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnas.cli._common import UsageError, emit_json, load_run_checkpoint, nonneg_int, positive_float, positive_int
from mnas.cli._resume import instance_resume, keep_source, resume_command, track_given

__all__ = ["register"]


def _unit(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in (0, 1], got {text!r}")
    return value


def _strides(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 7 comma-separated strides of 1 or 2, got {text!r}") from None
    if len(values) != 7 or any(v not in (1, 2) for v in values):
        raise argparse.ArgumentTypeError(f"expected 7 comma-separated strides of 1 or 2, got {text!r}")
    return values


def _data_args(p: argparse.ArgumentParser, train: bool = False) -> None:
    kinds = "'digits', 'cifar10', 'cifar100', a .npz file or an image folder"
    if train:
        p.add_argument("--data", help=f"{kinds} (default digits; with --resume: the run's own)")
        p.add_argument("--val-fraction", type=float, help="training data held out for validation (default 0.1)")
        p.add_argument("--seed", type=nonneg_int,
                       help="seeds the validation split, the meta-graph and the controller's training (default 0)")
    else:
        p.add_argument("--data", help=f"{kinds} (default: the data the model was trained on)")
        p.add_argument("--val-fraction", type=float,
                       help="training data held out for validation (default: the training run's)")
        p.add_argument("--seed", type=nonneg_int, help="seed of the validation split (default: the training run's)")
    p.add_argument("--data-root", help="folder of the official CIFAR batches (with --data cifar10/cifar100)")


def _qos_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=_unit, help="module on where its probability >= T (default 0.5)")
    g.add_argument("--budget-ms", type=positive_float, help="per-image latency budget (table ms, controller included)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("instance", help="instance-aware models (InstaNAS): train, evaluate, export",
                       description="InstaNAS: a controller picks, per image, which modules of a one-shot meta-graph"
                                   " run, trading accuracy for latency under a budget.")
    cmds = p.add_subparsers(dest="instance_command", metavar="ACTION")

    t = cmds.add_parser("train", help="pre-train the meta-graph, then train controller and meta-graph in turn",
                        description="Writes DIR/checkpoint.pt after every epoch, DIR/latency_table.json (measured on"
                                    " ONNX Runtime, 1 thread, batch 1) and DIR/instance.pt at the end.")
    _data_args(t, train=True)
    t.add_argument("--out", required=True, metavar="DIR",
                   help="the run's directory: checkpoint.pt, latency_table.json, instance.pt")
    t.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out with the settings it was trained with (--threads and"
                        " --stop-after may change; other options must agree)")
    t.add_argument("--width", type=positive_float, help="filter multiplier of the meta-graph (default 0.5)")
    t.add_argument("--stem-stride", type=positive_int, help="stride of the stem (default 2; InstaNAS's CIFAR graph: 1)")
    t.add_argument("--strides", type=_strides, help="the 7 stages' strides, e.g. 1,1,2,2,1,2,1 (the default)")
    t.add_argument("--pretrain-epochs", type=nonneg_int, help="epochs of the meta-graph alone, modules dropped at"
                                                              " random (default 3)")
    t.add_argument("--search-epochs", type=positive_int, help="epochs of controller, then meta-graph (default 3)")
    t.add_argument("--finetune-epochs", type=float, help="meta-graph epochs per search epoch (default 1; 0: none)")
    t.add_argument("--batch-size", type=positive_int, help="images per step (default 128)")
    t.add_argument("--window-end", type=positive_float, help="final upper bound of the latency window as a"
                                                             " multiple of MobileNetV2's route (paper: 0.5)")
    t.add_argument("--latency", choices=("onnxruntime", "macs"), default="onnxruntime",
                   help="per-module latency table: measured on ONNX Runtime (default) or a MACs stand-in (dry runs)")
    t.add_argument("--threads", type=positive_int, help="torch threads (default: torch's)")
    t.add_argument("--stop-after", type=positive_int, metavar="N", help="stop after N epochs, leaving a checkpoint")
    t.add_argument("--quiet", action="store_true", help="no progress lines")
    t.add_argument("--json", action="store_true", help="print the final figures as one JSON document")
    t.set_defaults(handler=cmd_train)
    track_given(t)

    e = cmds.add_parser("eval", help="accuracy, latency and routes on a split under a QoS knob",
                        description="Scores DIR/instance.pt on a split; --measure times the controller and every"
                                    " route used (or a sample of the images) on ONNX Runtime, 1 thread, batch 1.")
    e.add_argument("model", metavar="DIR", help="the training output directory (or its instance.pt)")
    _data_args(e)
    e.add_argument("--split", choices=("val", "test"), default="test", help="the split to score (default test)")
    _qos_args(e)
    e.add_argument("--measure", type=nonneg_int, nargs="?", const=60, default=0, metavar="N",
                   help="time the routes of N images drawn uniformly from the split (--measure alone: 60;"
                        " default 0: the table's figures only)")
    e.add_argument("--json", action="store_true", help="print one JSON document")
    e.set_defaults(handler=cmd_eval)

    x = cmds.add_parser("export", help="ONNX for the controller and each route, with a manifest for the runner",
                        description="Writes OUT/manifest.json, OUT/controller.onnx and OUT/routes/<route>.onnx for"
                                    " the routes the controller picks on a split (see mnas.instance.runner).")
    x.add_argument("model", metavar="DIR", help="the training output directory (or its instance.pt)")
    x.add_argument("--out", required=True, metavar="OUT", help="the folder to write (manifest, controller, routes)")
    _data_args(x)
    x.add_argument("--split", choices=("val", "test"), default="val",
                   help="the split whose routes are exported (default val)")
    _qos_args(x)
    x.add_argument("--max-routes", type=positive_int, help="export only the N most frequent routes")
    x.add_argument("--json", action="store_true", help="print one JSON document")
    x.set_defaults(handler=cmd_export)
    p.set_defaults(handler=lambda args: _missing(p))


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _log(args: argparse.Namespace, text: str) -> None:
    if not getattr(args, "quiet", False):
        print(text, file=sys.stderr, flush=True)


def _load_data(args: argparse.Namespace, source: dict | None = None):
    from mnas.train import data as datamod

    source = source or {}
    if args.val_fraction is not None and not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction {args.val_fraction}: expected a number in [0, 1)")
    return datamod.load(args.data or source.get("data", "digits"), root=args.data_root or source.get("root"),
                        val_fraction=args.val_fraction if args.val_fraction is not None else source.get("val_fraction", 0.1),
                        seed=args.seed if args.seed is not None else source.get("seed", 0),
                        image_size=source.get("image_size", 32))


def cmd_train(args: argparse.Namespace) -> int:
    from mnas.instance.train import CHECKPOINT, InstanceConfig, train_instance

    saved = None
    if args.resume:
        saved = load_run_checkpoint(args.out, CHECKPOINT, "mnas.instance.checkpoint/1", "mnas instance")
        instance_resume(args, saved, args.out)  # the data options restored, every given option checked
    data = _load_data(args, saved["data"]["source"] if saved else None)
    if saved:
        keep_source(data, saved["data"]["source"])
    overrides = {k: v for k, v in {
        "width": args.width, "stem_stride": args.stem_stride, "stage_strides": args.strides,
        "pretrain_epochs": args.pretrain_epochs, "search_epochs": args.search_epochs,
        "finetune_epochs": args.finetune_epochs, "batch_size": args.batch_size, "window_end": args.window_end,
        "threads": args.threads, "seed": args.seed}.items() if v is not None}
    if args.finetune_epochs is not None and args.finetune_epochs < 0:
        raise UsageError(f"--finetune-epochs {args.finetune_epochs}: expected a number >= 0")
    base = InstanceConfig.from_dict(saved["config"]) if saved else InstanceConfig()
    config = InstanceConfig.from_dict({**base.to_dict(), **overrides})
    table = None
    if args.latency == "macs" and not args.resume:
        from mnas.instance.controller import Controller
        from mnas.instance.latency import LatencyTable
        from mnas.instance.metagraph import MetaGraph

        meta = MetaGraph(config.meta_config(data))
        table = LatencyTable.from_macs(meta, Controller(meta.num_layers, in_chans=data.channels,
                                                        downsample=config.controller_downsample,
                                                        width=config.controller_width))
    _log(args, f"data: {data!r}")
    final = train_instance(data, config, args.out, resume=args.resume, table=table, stop_after=args.stop_after,
                           log=lambda s: _log(args, s))
    if final.get("stopped"):
        _log(args, f"stopped after epoch {final['epoch']} of {final['epochs']}: resume with:"
                   f" {resume_command('instance train', '--out', args.out)}")
    elif not args.json:
        print(f"test accuracy {final['accuracy']:.4f} ± {final['accuracy_se']:.4f}  mean latency (table)"
              f" {final['mean_latency_ms']:.3f} ms  {final['distinct_routes']} routes  {final['seconds']:.0f}s"
              f"  model: {final['model']}")
    if args.json:
        emit_json(final)
    return 0


def _load_model(args: argparse.Namespace):
    from mnas.instance.latency import LatencyTable
    from mnas.instance.train import MODEL, load_instance

    path = Path(args.model)
    if not (path / MODEL).is_file() and not path.is_file():
        raise UsageError(f"no trained instance model at {args.model} (expected DIR/{MODEL} from mnas instance train)")
    meta, controller, info = load_instance(path)
    data = _load_data(args, info["data"]["source"])
    if data.input_size != meta.config.input_size or data.channels != meta.config.in_chans:
        raise UsageError(f"data {data.name} is {data.input_size}x{data.input_size}x{data.channels}: the model takes"
                         f" {meta.config.input_size}x{meta.config.input_size}x{meta.config.in_chans}")
    data.mean, data.std = tuple(info["normalization"]["mean"]), tuple(info["normalization"]["std"])
    return meta, controller, info, data, LatencyTable.from_dict(info["table"])


def cmd_eval(args: argparse.Namespace) -> int:
    import numpy as np

    from mnas.instance.report import route_distribution
    from mnas.instance.runtime import evaluate_instance, measure_routes

    meta, controller, info, data, table = _load_model(args)
    ev = evaluate_instance(meta, controller, data, args.split, table, threshold=args.threshold, budget_ms=args.budget_ms)
    summary = {k: v for k, v in ev.items() if k not in ("routes", "correct", "labels", "latency_ms")}
    summary["controller_ms_table"] = table.controller_ms
    summary["route_distribution"] = route_distribution(ev["routes"], ev["labels"].tolist(), list(data.class_names))
    if args.measure:
        idx = np.random.default_rng(0).permutation(len(ev["routes"]))[:args.measure]
        lat = measure_routes(meta, controller, [ev["routes"][i] for i in idx], log=lambda s: print(s, file=sys.stderr))
        per = np.array([lat["controller_ms"] + lat["routes"][ev["routes"][i]]["median_ms"] for i in idx])
        summary.update({"measured_latency_ms": float(per.mean()), "measured_sample": len(idx),
                        "measured_latency_se_ms": float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else 0.0,
                        "controller_ms": lat["controller_ms"], "controller_share": lat["controller_ms"] / float(per.mean())})
    if args.json:
        emit_json(summary)
        return 0
    print(f"{args.split} accuracy {ev['accuracy']:.4f} ± {ev['accuracy_se']:.4f} (n={ev['n']})  mean latency (table)"
          f" {ev['mean_latency_ms']:.3f} ms  {ev['distinct_routes']} distinct routes")
    if args.measure:
        print(f"measured (ONNX Runtime, 1 thread, batch 1, {summary['measured_sample']} images):"
              f" {summary['measured_latency_ms']:.3f} ± {summary['measured_latency_se_ms']:.3f} ms, controller"
              f" {summary['controller_ms']:.3f} ms ({100 * summary['controller_share']:.1f}%)")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from mnas.instance.export import export_instance
    from mnas.instance.runtime import evaluate_instance

    meta, controller, info, data, table = _load_model(args)
    ev = evaluate_instance(meta, controller, data, args.split, table, threshold=args.threshold, budget_ms=args.budget_ms)
    manifest = export_instance(meta, controller, ev["routes"], args.out, table=table, mean=list(data.mean),
                               std=list(data.std), class_names=list(data.class_names),
                               threshold=args.threshold or 0.5, max_routes=args.max_routes)
    summary = {"out": str(args.out), "routes_exported": len(manifest["routes"]), "routes_seen": manifest["routes_seen"],
               "split": args.split, "threshold": args.threshold, "budget_ms": args.budget_ms}
    if args.json:
        emit_json(summary)
    else:
        print(f"exported the controller and {summary['routes_exported']} of {summary['routes_seen']} routes to {args.out}")
    return 0


def is_instance_run(path: str) -> bool:
    """True when `path` is an `mnas instance train --out` directory (it holds the trained model)."""
    from mnas.instance.train import MODEL

    return Path(path).is_dir() and (Path(path) / MODEL).is_file()


def cmd_report_run(args: argparse.Namespace) -> int:
    """`mnas report RUN_DIR --out DIR` for an instance-aware run: evaluate, then write the plots, JSON, HTML."""
    from mnas._util import require
    from mnas.instance.summary import read_baselines, summarize_run, write_instance_report

    require("matplotlib", "mnas report")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out}: exists and is not a directory")
    load_args = argparse.Namespace(model=args.study, data=args.data, data_root=None, val_fraction=None, seed=None)
    meta, controller, info, data, table = _load_model(load_args)
    try:
        baselines = read_baselines(args.study)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    quiet = getattr(args, "json", False)
    summary = summarize_run(meta, controller, table, data, split=args.split, budgets_ms=args.budget_ms,
                            measure=args.measure, baselines=baselines,
                            log=None if quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
    summary["run"] = str(args.study)
    files = write_instance_report(summary, out, title=args.title or f"mnas instance-aware run: {Path(args.study).name}")
    if args.json:
        emit_json({**summary, "files": files})
        return 0
    for p in summary["tradeoff"]["instance"]:
        best = (f"best single at <= latency {p['best_single']} {100 * p['best_single_accuracy']:.2f}%"
                if p["best_single"] else "no single architecture as fast")
        print(f"{p['label']:22s} acc {100 * p['accuracy']:.2f} ± {100 * p['accuracy_se']:.2f}%  latency"
              f" {p['latency_ms']:.3f} ± {p['latency_se_ms']:.3f} ms  routes {p['distinct_routes']}  | {best}")
    print(f"latency: {summary['latency_source']}, {summary['latency_sample']} images")
    print(f"wrote {files['html']} (images embedded), {files['tradeoff']}, {files['routes']}, {files['json']}")
    return 0
