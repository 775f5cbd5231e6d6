"""`mnas export`: a study's chosen trial, an ARCH, or a trained model file to ONNX, TorchScript, JSON,
LiteRT (.tflite) or ExecuTorch (.pte), in fp32 or int8."""

from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path
from typing import Any

from mnas.cli._common import (
    UsageError,
    check_writable_output,
    emit_json,
    nonneg_int,
    positive_float,
    positive_int,
    resolve_arch,
)
from mnas.cli.report_cmd import read_study


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="ONNX / TorchScript / JSON of a chosen trial, an architecture or a trained model",
        description="Export the architecture of a study's trial (STUDY with --best, the default, --best-under-target"
                    " or --trial N), of --arch ARCH, or of a trained model file (--weights DIR/model.pt, alone or"
                    " with STUDY/--arch, whose architecture it must match). With --weights, the trained weights are"
                    " exported and classes, channels and input size come from the file.")
    p.add_argument("study", nargs="?", metavar="STUDY", help="the study: 'sqlite:///runs/x.db' or a path such as runs/x.db")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=nonneg_int, metavar="N", help="export trial number N")
    pick.add_argument("--best", action="store_true", help="the complete trial with the highest reward (default)")
    pick.add_argument("--best-under-target", action="store_true",
                      help="the most accurate complete trial within the latency target")
    p.add_argument("--arch", metavar="ARCH", help="export this architecture instead of a study's (zoo name, string or JSON file)")
    p.add_argument("--weights", metavar="FILE", help="a model.pt written by 'mnas train': export its trained weights")
    p.add_argument("--untrained", action="store_true",
                   help="export ONNX/TorchScript with random weights (e.g. to measure latency elsewhere); without"
                        " --weights or --untrained only --format json (the architecture) is written")
    p.add_argument("--format", choices=("onnx", "torchscript", "json", "tflite", "pte"),
                   help="default: from --out's suffix (.onnx, .pt, .json, .tflite, .pte); tflite needs the litert"
                        " extra, pte the executorch extra")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32",
                   help="int8 (onnx, tflite, pte): static post-training quantization with the runtime's own quantizer,"
                        " per-channel weights, activations calibrated on --calibration training images")
    p.add_argument("--calibration", type=positive_int, metavar="N", default=None,
                   help="int8: calibration images (default 100 from --data, or 8 random inputs without data)")
    p.add_argument("--data", metavar="DATA",
                   help="int8: the training data to calibrate on (default: the data --weights was trained on, when"
                        " it can be found): digits, cifar10/cifar100 (with --data-root), a .npz or an image folder")
    p.add_argument("--data-root", help="folder holding the CIFAR batches (for --data cifar10/cifar100)")
    p.add_argument("--out", required=True, metavar="FILE", help="the file to write")
    p.add_argument("--input-size", type=positive_int, metavar="S",
                   help="input resolution (default: the weights', else the study's search space's, else 224)")
    p.add_argument("--num-classes", type=positive_int, metavar="C",
                   help="classifier outputs (default: the weights', else the study's, else 1000)")
    p.add_argument("--in-chans", type=positive_int, metavar="C",
                   help="input channels (default: the weights', else the study's data's, else 3)")
    p.add_argument("--target-ms", type=positive_float, help="latency target for --best-under-target (default: the study's)")
    p.add_argument("--no-adapt-strides", action="store_true",
                   help="with a zoo --arch below 224x224, keep the zoo's strides (default: adapt them as 'mnas train' does)")
    p.add_argument("--check", action="store_true", help="reload the written file and compare its logits with PyTorch's")
    p.add_argument("--json", action="store_true", help="print what was written as one JSON document")
    p.set_defaults(handler=cmd_export)


def _config_defaults(meta: dict[str, Any]) -> dict[str, int]:
    """input_size, num_classes and in_chans as the study's search saw them, where recorded."""
    config = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    settings = ((config.get("space") or {}).get("settings") or {}) if isinstance(config.get("space"), dict) else {}
    data = ((config.get("evaluation") or {}).get("data") or {}) if isinstance(config.get("evaluation"), dict) else {}
    found = {"input_size": settings.get("input_size") or data.get("input_size"),
             "num_classes": settings.get("num_classes") or data.get("num_classes"),
             "in_chans": data.get("channels")}
    return {k: v for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}


def _trial_line(t: Any) -> str:
    from mnas.reports import clean_trials

    t = clean_trials([t])[0][0]  # a figure of the wrong type (a file edited outside mnas) prints as '?'
    acc = "?" if t.accuracy is None else t.score_text(2)  # a likelihood score says so
    lat = "?" if t.latency_ms is None else f"{t.latency_ms:.3g} ms"
    reward = "?" if t.reward is None else f"{t.reward:.4f}"
    return f"#{t.number} ({acc} at {lat}, reward {reward})"


def _pick_trial(study: Any, args: argparse.Namespace, name: str):
    """The trial the flags choose; UsageError with one line when there is none to export."""
    from mnas.study import TrialState

    trials = study.trials
    if not trials:
        raise UsageError(f"study {name} has no trials yet: nothing to export")
    if args.trial is not None:
        if args.trial >= len(trials):
            raise UsageError(f"no trial {args.trial} in study {name}: it has trials 0 to {len(trials) - 1}")
        t = study.storage.get_trial(args.trial)
        if t.state is not TrialState.COMPLETE:
            why = f" ({t.failure})" if t.failure and t.state is TrialState.FAILED else ""
            status = {"failed": "failed", "running": "is still running"}.get(t.state.value, f"is {t.state.value}")
            raise UsageError(f"trial {t.number} {status}{why}: choose a complete trial (--best, or --trial N)")
        return t
    complete = study.complete_trials
    if not complete:
        counts = ", ".join(f"{sum(t.state is s for t in trials)} {s.value}" for s in TrialState
                           if any(t.state is s for t in trials))
        raise UsageError(f"study {name} has no complete trials yet ({counts}): nothing to export")
    if args.best_under_target:
        from mnas.reports import study_target_ms

        target = args.target_ms or study_target_ms(study.meta)
        if target is None:
            raise UsageError(f"study {name} records no latency target: pass --target-ms")
        best = study.best(target)
        if best is None:
            fastest = min((t for t in complete if math.isfinite(t.latency_ms)), key=lambda t: t.latency_ms, default=None)
            hint = f" (fastest: #{fastest.number} at {fastest.latency_ms:.3g} ms)" if fastest else ""
            raise UsageError(f"no complete trial in study {name} is within the {target:g} ms target{hint}")
        return best
    return study.best()


def cmd_export(args: argparse.Namespace) -> int:
    from mnas.deploy import export, format_from_path
    from mnas.space import adapt_strides

    if args.study and args.arch:
        raise UsageError("pass STUDY or --arch, not both")
    if not args.study and (args.trial is not None or args.best or args.best_under_target):
        raise UsageError("--trial, --best and --best-under-target choose a trial of STUDY: pass STUDY")
    if not (args.study or args.arch or args.weights):
        raise UsageError("nothing to export: pass STUDY, --arch ARCH or --weights DIR/model.pt")
    if args.target_ms and not args.best_under_target:
        raise UsageError("--target-ms applies to --best-under-target")
    check_writable_output(args.out, "--out")  # before the export's work, not after it
    try:
        fmt = args.format or format_from_path(args.out)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.untrained and args.weights:
        raise UsageError("--untrained and --weights contradict each other: pass one")
    if args.precision == "int8" and fmt not in ("onnx", "tflite", "pte"):
        raise UsageError(f"--precision int8 is written as onnx, tflite or pte, not {fmt}: choose one of those formats")
    if args.precision != "int8" and (args.calibration or args.data):
        raise UsageError("--calibration and --data calibrate an int8 export: add --precision int8")

    trial, arch, defaults, source, searched = None, None, {}, None, {}
    if args.study:
        with read_study(args.study) as study:
            trial = _pick_trial(study, args, args.study)
            defaults = _config_defaults(study.meta)
            searched = _searched_data(study.meta)
        arch, source = trial.arch, f"trial {_trial_line(trial)} of {args.study}"
    elif args.arch:
        arch, source = resolve_arch(args.arch), f"--arch {args.arch}"
    if args.weights and not Path(args.weights).is_file():
        raise UsageError(f"--weights {args.weights}: no such file")
    if args.arch and _is_zoo(args.arch) and not args.no_adapt_strides:
        # As `mnas train` does: a zoo model's 224x224 strides, adapted to a small input.
        size = args.input_size or (_saved_input_size(args.weights) if args.weights else 224)
        arch = adapt_strides(arch, size)
    if args.weights:
        source = (source + f" with weights {args.weights}") if source else f"weights {args.weights}"
    explicit = {"input_size": args.input_size, "num_classes": args.num_classes, "in_chans": args.in_chans}
    # With weights, the file decides (explicit flags must agree); otherwise flag > study config > built-in default.
    sizes = {k: v if v is not None or args.weights else defaults.get(k) for k, v in explicit.items()}
    if fmt != "json" and not args.weights and not args.untrained:
        raise UsageError(f"--format {fmt} without --weights would write an UNTRAINED network (random weights, about"
                         " chance accuracy): train it first ('mnas train ARCH --out DIR') and pass --weights DIR/model.pt,"
                         " or pass --untrained to export random weights on purpose")
    try:
        with warnings.catch_warnings():  # the CLI says it below, on stdout, after --untrained was asked for
            warnings.simplefilter("ignore", UserWarning)
            calibration = _calibration(args, sizes, searched) if args.precision == "int8" else None
            result = export(arch, args.out, fmt, weights=args.weights, trial=trial, check=args.check,
                            precision=args.precision, calibration=calibration, **sizes)
    except ValueError as exc:
        if args.weights and "different architecture" in str(exc) and trial is not None:
            raise UsageError(f"trial {trial.number}: {exc}") from None
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json(result.to_dict())
        return 0
    checked = ""
    if result.max_abs_diff is not None:
        checked = (f", logits match PyTorch (max diff {result.max_abs_diff:.2g})" if result.precision == "fp32" else
                   f", int8 logits differ from PyTorch's fp32 by up to {result.max_abs_diff:.2g}")
    if result.precision == "int8":
        checked += (f", int8 calibrated on {result.calibration} "
                    + ("training images" if result.calibration_source == "data" else "RANDOM inputs (pass --data for"
                       " a deployable model)"))
    print(f"wrote {result.path}: {result.format}, {result.bytes / 1024:.0f} kB, input {result.in_chans}x"
          f"{result.input_size}x{result.input_size} -> {result.num_classes} classes{checked}")
    if fmt != "json":
        print(result.input_note())
    print(f"from {source}", file=sys.stderr)
    return 0


def _searched_data(meta: dict[str, Any]) -> dict[str, Any]:
    """The data, validation fraction and split seed the study's search loaded (its recorded command line), where
    recorded: an int8 export of one of its trials calibrates on the training images the search's int8 score did."""
    record = meta.get("cli") if isinstance(meta.get("cli"), dict) else {}
    given = record.get("args") if isinstance(record.get("args"), dict) else {}
    return {k: given[k] for k in ("data", "val_fraction", "seed") if given.get(k) is not None}


def _calibration(args: argparse.Namespace, sizes: dict[str, Any], searched: dict[str, Any] | None = None) -> Any:
    """Calibration inputs for an int8 export: N training images normalised as in training, or a
    number of random inputs when no data is given or recorded.

    The images are the ones a search's int8 score calibrated on (`mnas.evaluate.quantized.calibration_inputs`:
    the same draw from the same training split), so the file is the one the search scored: the split is the
    one the --weights file was trained on (its recorded validation fraction and seed), else the one the
    study's search loaded, when it is the same data; else the data's default split."""
    import dataclasses

    from mnas.evaluate.quantized import calibration_inputs
    from mnas.latency.quantize import DEFAULT_CALIBRATION

    source, norm, split = args.data, None, {}
    searched = searched or {}
    if args.weights:
        from mnas.train.checkpoint import load_file

        info = load_file(args.weights)
        norm = info.get("normalization")
        trained = (info.get("data") or {}).get("source") or {}
        recorded = trained.get("data")
        if source is None and isinstance(recorded, str) and (recorded == "digits" or Path(recorded).exists()):
            source = recorded
        if isinstance(recorded, str) and _same_data(source, recorded):
            split = _split(trained)
    if source is None:
        return args.calibration or DEFAULT_CALIBRATION
    if not split and isinstance(searched.get("data"), str) and _same_data(source, searched["data"]):
        split = _split(searched)
    from mnas.cli._common import check_data_args
    from mnas.train import load

    check_data_args(source, args.data_root)
    data = load(source, root=args.data_root, image_size=sizes.get("input_size") or 32, **split)
    if isinstance(norm, dict):
        data = dataclasses.replace(data, mean=tuple(float(m) for m in norm["mean"]),
                                   std=tuple(float(s) for s in norm["std"]))
    if data.x_train.shape[1] != (sizes.get("input_size") or data.x_train.shape[1]):
        raise UsageError(f"--data {source} has {data.x_train.shape[1]}x{data.x_train.shape[2]} images, the export is"
                         f" for {sizes.get('input_size')}: calibrate on data of the model's input size")
    return calibration_inputs(data, args.calibration or 100)


def _same_data(given: str | None, recorded: str) -> bool:
    """Whether --data names the recorded data: the same text, or the same file however it is spelled
    (relative, absolute, through a link); a built-in name ('digits') only by its text."""
    if given is None:
        return False
    if given == recorded:
        return True
    try:
        return Path(given).exists() and Path(recorded).exists() and Path(given).resolve() == Path(recorded).resolve()
    except OSError:
        return False


def _split(source: dict[str, Any]) -> dict[str, Any]:
    """`val_fraction` and `seed` of a recorded data source, those that are valid."""
    split = {}
    fraction, seed = source.get("val_fraction"), source.get("seed")
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 <= fraction < 1:
        split["val_fraction"] = float(fraction)
    if isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0:
        split["seed"] = seed
    return split


def _saved_input_size(weights: str) -> int:
    from mnas.train.checkpoint import load_file

    return int(load_file(weights).get("input_size") or 224)


def _is_zoo(text: str) -> bool:
    from mnas.space import is_zoo_name

    return is_zoo_name(text.strip())
