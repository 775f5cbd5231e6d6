"""`mnas search`: the search from the command line.

With no arguments: a small, complete search on the built-in `digits` data set with ONNX Runtime
latency on this machine's CPU, a target of "as fast as MobileNetV2 at the space's width", stored in
a new `runs/search-<time>.db`. Ctrl-C stops cleanly: finished trials are already stored, running
ones are re-queued by `--resume`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path
from typing import Any

from mnas.cli._common import (
    UsageError,
    add_choice_options,
    add_family_space_options,
    check_lut_file,
    check_output_file,
    check_space_options,
    nonneg_int,
    positive_float,
    positive_int,
    space_from_args,
)
from mnas.cli._gradient import (
    GRADIENT,
    check_gradient_args,
    check_supernet_file,
    checkpoint_space,
    search_gradient,
)
from mnas.cli._progress import Phases
from mnas.cli._report import device_error as _device_error
from mnas.cli._report import report_study as _report
from mnas.cli._resume import INHERITED_SCORES, SearchResume, new_study_record, resume_command, search_resume, track_given
from mnas.cli.retrain_opts import add_retrain_arguments, check_retrain_arguments, run_retrain

DEFAULT_TRIALS = 30
LOCAL_BACKENDS = ("onnxruntime", "torch", "litert", "executorch")
QUANTIZING = ("onnxruntime", "litert", "executorch")  # local backends that measure --precision int8
DEVICE_RUNTIMES = ("onnxruntime", "litert", "executorch")  # what --url measures in (mnas.latency.REMOTE_RUNTIMES)
PRECISION_CHOICES = SCORES = ("fp32", "int8")
DEFAULT_SCORE_CALIBRATION = 100  # training images, as ProxyEvaluator and mnas export
ASK_TELL = ("auto", "ppo", "reinforce", "replay", "evolution", "predictor", "boundary", "random", "tpe", "nsga2", "gp")
STRATEGY_CHOICES = (*ASK_TELL, "enas", *GRADIENT)
# Strategies that need an optional package: (module, what to install).
_EXTRA_NEEDS = {"tpe": (("optuna", "mnas[optuna]"),), "nsga2": (("optuna", "mnas[optuna]"),),
                "gp": (("optuna", "mnas[optuna]"), ("scipy", "mnas[latency]"))}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="search architectures (default: a small search on digits, on this CPU)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data and space")
    g.add_argument("--data", default="digits",
                   help="digits (default), cifar10/cifar100 (with --data-root), a .npz or an image folder")
    g.add_argument("--data-root", help="folder holding the CIFAR batches (for --data cifar10/cifar100)")
    g.add_argument("--val-fraction", type=float, default=0.2, help="training data held out for validation (default 0.2)")
    g.add_argument("--input-size", type=positive_int, help="resolution (default: the data's)")
    g.add_argument("--width-mult", type=positive_float,
                   help="scale every filter count (default 0.35 for images <= 16 px, else 1.0)")
    g.add_argument("--head", type=nonneg_int, help="head conv filters (default 1280; 256 for images <= 16 px)")
    g.add_argument("--strides", help="stem and 7 block strides, e.g. 1,1,1,2,2,1,2,1 (default: adapted to the input size)")
    add_choice_options(g)
    add_family_space_options(g)
    g.add_argument("--supernet", metavar="CHECKPOINT",
                   help="score candidates by their sub-networks in this supernet (mnas supernet train: inherited "
                   "likelihood or accuracy, see --inherited-score) instead of proxy training; the space is the "
                   "checkpoint's")
    g.add_argument("--inherited-score", choices=INHERITED_SCORES, default=None,
                   help="--supernet: the score the reward's accuracy term takes: likelihood (default): exp(-mean "
                   "cross-entropy) on the validation split, which ranked NAS-Bench-Macro's networks better than "
                   "top-1 and picked nearer the optimum under hard targets (docs/design/nbmacro.md), top-1 "
                   "recorded beside it; or accuracy: top-1 (the default under --score int8 and --reward absolute; "
                   "enas and the gradient strategies have their own objective; a resumed study keeps its own)")
    g = p.add_argument_group("objective")
    g.add_argument("--target", type=_target_text, help="latency target: '20ms', '20', 'mobilenetv2', '0.8x mnasnet_b1' "
                   "(default: mobilenetv2 at the space's width)")
    g.add_argument("--reward", choices=("soft", "hard", "absolute", "accuracy"), default="soft",
                   help="soft (default) or hard: MnasNet's reward; absolute: TuNAS's |LAT/T - 1| penalty; accuracy: "
                   "no latency target (hard: the best trial must meet the target)")
    g.add_argument("--alpha", type=float, help="custom exponent below the target (with --beta)")
    g.add_argument("--beta", type=float, help="custom exponent above the target (with --alpha)")
    g.add_argument("--max-params", metavar="N", help="hard limit on parameters, e.g. 1.5M (checked before training)")
    g.add_argument("--max-macs", metavar="N", help="hard limit on multiply-adds, e.g. 300M (checked before training)")
    g.add_argument("--max-peak-memory", metavar="BYTES",
                   help="hard limit on peak activation memory at batch 1, e.g. 256KB (checked before training)")
    g.add_argument("--score", choices=SCORES, default=None,
                   help="the accuracy the reward uses: fp32 (default) or int8: each trained candidate (or supernet "
                   "sub-network) quantized for the latency runtime (--backend's, also with --url; ONNX Runtime for "
                   "--backend torch), "
                   "calibrated on --calibration training images and scored there; the float accuracy is recorded "
                   "beside it (a resumed study keeps its own)")
    g.add_argument("--calibration", type=positive_int, metavar="N", default=None,
                   help=f"--score int8: training images the int8 accuracy is calibrated on (default "
                   f"{DEFAULT_SCORE_CALIBRATION}, as 'mnas export --precision int8 --calibration N'); an int8 latency "
                   "figure does not depend on them (the backend calibrates on 8 seeded random inputs)")
    g = p.add_argument_group("strategy and budget")
    g.add_argument("--strategy", default="auto", choices=STRATEGY_CHOICES,
                   help="auto (default): boundary under a hard target (--reward hard), predictor otherwise; "
                   "boundary: only candidates predicted in [0.9 T, T], ranked by a surrogate of the accuracy seen; "
                   "ppo: MnasNet's RNN controller trained with PPO; reinforce: the same with "
                   "REINFORCE; replay: the same controller fitted to the best of the whole history; evolution: "
                   "regularized evolution; predictor: an MLP ensemble picks which candidates to train; random: random "
                   "search; tpe, gp: Optuna's TPE and Gaussian-process samplers; nsga2: Optuna's NSGA-II over accuracy "
                   "and latency (tpe, nsga2, gp need pip install 'mnas[optuna]'); enas: ENAS on a supernet (--supernet, "
                   "or one trained from scratch; --strategy-opt rounds=10 ...); darts, gdas: differentiable cell search "
                   "on --space nb201/darts (--strategy-opt epochs=30, a cap: a stable, decided cell stops it sooner; "
                   "order=2, recipe=paper ...); fbnet: latency-aware "
                   "gradient search on --space mnasnet/layerwise toward --target, the device's --lut table in its "
                   "loss (--supernet to start from one)")
    g.add_argument("--strategy-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="strategy hyperparameter, e.g. --strategy-opt batch_size=5 (repeatable)")
    g.add_argument("--trials", type=positive_int,
                   help=f"trials in the study (default {DEFAULT_TRIALS}; a resumed study keeps its own unless given)")
    g.add_argument("--hours", type=positive_float,
                   help="wall-clock budget of this run (a resumed study keeps its own unless given)")
    g.add_argument("--seed", type=nonneg_int, default=0,
                   help="seeds the strategy, the validation split and every candidate's training (default 0)")
    g = p.add_argument_group("proxy training")
    g.add_argument("--epochs", type=positive_float, default=3.0, help="proxy epochs per candidate (default 3)")
    g.add_argument("--batch-size", type=positive_int, default=32, help="proxy training batch size (default 32)")
    g.add_argument("--lr", type=positive_float, default=0.05, help="proxy training learning rate (default 0.05)")
    g.add_argument("--threads", type=positive_int, default=1, help="torch threads per training worker (default 1)")
    g.add_argument("--max-train-seconds", type=positive_float, help="cap on each candidate's training time")
    g = p.add_argument_group("latency")
    g.add_argument("--backend", default="onnxruntime", choices=LOCAL_BACKENDS,
                   help="measure locally with this runtime (default onnxruntime; litert: .tflite in LiteRT + XNNPACK,"
                   " extra [litert]; executorch: .pte lowered to XNNPACK, extra [executorch]; both convert each "
                   "candidate in seconds to a minute: prefer a --lut table built with them for long searches); "
                   "with --url, the runtime the device server measures in (onnxruntime, litert or executorch: "
                   "converted here, uploaded); zoo-relative targets are measured the same way")
    g.add_argument("--precision", choices=PRECISION_CHOICES, default=None,
                   help="latency as deployed: fp32 (default) or int8, static post-training quantization (per-channel "
                   "weights) with the runtime's own quantizer (QDQ for onnxruntime, XNNPACK's for litert and "
                   "executorch, also on a device server with --url); not for torch; with --lut, the table's (checked)")
    g.add_argument("--latency-threads", type=positive_int, default=1, help="threads of the measured runtime (default 1)")
    g.add_argument("--url", help="measure on a device server (mnas device serve) at this URL, in --backend's runtime at"
                   " --precision (each candidate converted here and uploaded, as 'mnas latency measure --backend remote"
                   " --runtime R')")
    g.add_argument("--token", help="the device server's token (or set MNAS_DEVICE_TOKEN)")
    g.add_argument("--lut", help="predict latency from a lookup table (mnas latency build-lut): it stands for the runtime"
                   " and precision it was measured in, and refuses a --backend or --precision that differs (with --strategy"
                   " fbnet, --backend measures the derived network)")
    g = p.add_argument_group("storage and execution")
    g.add_argument("--storage", help="study file or sqlite:/// URL (default: a new runs/search-<time>.db)")
    g.add_argument("--resume", action="store_true",
                   help="continue --storage (default: the newest runs/search-*.db) with the settings it was made with;"
                   " --trials, --hours, --executor, --workers and --threads may change, other options must agree")
    g.add_argument("--executor", default="local", choices=("local", "process", "ray"),
                   help="where candidates train: local (default, in this process), process (a pool of --workers "
                   "local processes), ray (Ray tasks; --ray-address)")
    g.add_argument("--workers", type=positive_int, help="parallel trainings for --executor process (default 2)")
    g.add_argument("--ray-address", help="an existing Ray cluster (default: a local Ray instance)")
    p.add_argument("--json", action="store_true", help="print one JSON document at the end")
    p.add_argument("--quiet", action="store_true", help="no live display")
    add_retrain_arguments(p)
    p.set_defaults(handler=cmd_search)
    track_given(p)


def _storage_path(args: argparse.Namespace) -> str:
    if args.storage:
        return args.storage
    runs = Path("runs")
    if args.resume:
        found = sorted(runs.glob("search-*.db"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise UsageError("--resume: no runs/search-*.db to resume here; give --storage")
        return str(found[-1])
    return str(runs / f"search-{time.strftime('%Y%m%d-%H%M%S')}.db")


def _target_text(text: str) -> str:
    """--target: a blank one is refused (it was taken for 'not given' and the default target searched), and
    so is one that is not a positive latency or a zoo model ('-3ms', '0', 'fast'), before anything runs."""
    from mnas.objectives import MAX_TARGET_MS, MIN_TARGET_MS, Target
    from mnas.space.zoo import ZOO, closest_zoo_name, is_zoo_name

    if not text.strip():
        raise argparse.ArgumentTypeError("empty target: give a latency such as '20ms', a zoo model such as"
                                         " 'mobilenetv2', or leave --target out for the default")
    try:
        target = Target.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive latency such as 3ms ({MIN_TARGET_MS:g} to {MAX_TARGET_MS:g} ms) or a reference"
            f" model name such as mobilenetv2 or '0.8x mnasnet_b1', not {text.strip()!r}") from None
    if target.reference is not None and not is_zoo_name(target.reference):
        # one hint: the parser adds its own "(see 'mnas search --help')" (unknown_model_message's "(see 'mnas
        # models')" made two); the nearest name is suggested in the whole target, ready to paste
        close = closest_zoo_name(target.reference)
        what = (f"did you mean {text.strip().lower().replace(target.reference, close, 1)!r}?" if close else
                f"give a latency such as 20ms or a zoo model: {', '.join(ZOO)}")
        raise argparse.ArgumentTypeError(f"unknown model {target.reference!r}: {what}")
    if target.reference is not None:
        from mnas.space.zoo import get_arch

        try:  # 'mnasnet_b1_x0' is a zoo name whose multiplier no network has: refused now, not after the data loads
            get_arch(target.reference)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"{target.reference!r}: {str(exc).splitlines()[0]}") from None
    return text.strip()


def _strategy_options(items: list[str]) -> dict[str, Any]:
    import json

    options = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--strategy-opt {item!r}: expected KEY=VALUE, e.g. batch_size=5")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _check_deployment(args: argparse.Namespace) -> Any:
    """--backend, --precision, --score and --calibration: one line for a combination that cannot work
    (before any data is loaded); with --lut, the table is checked against the runtime and precision
    given (`LookupTable.check_deployment`) and stands for them when they are not. Fills the resolved
    values into `args` (so the study records them); returns the loaded table, or None."""
    from mnas.cli._resume import given_options

    given = given_options(args)
    score = args.score or "fp32"
    if args.calibration is not None and score != "int8":
        raise UsageError(f"--calibration {args.calibration} calibrates the int8 accuracy: it goes with --score int8 (an"
                         " int8 latency does not depend on the calibration images)")
    if score == "int8" and args.strategy in ("enas", *GRADIENT):
        raise UsageError(f"--score int8 scores each trial's trained network (proxy training or --supernet) after int8"
                         f" quantization: --strategy {args.strategy} derives its architectures inside one network;"
                         " quantize its pick with 'mnas export --precision int8'")
    table = None
    if args.url:
        if args.lut and args.strategy != "fbnet":
            raise UsageError("give one latency source: --url (device server) or --lut (lookup table), not both")
        if args.backend not in DEVICE_RUNTIMES:
            if "backend" in given:
                raise UsageError(f"--backend {args.backend}: a device server (--url) measures in"
                                 f" {', '.join(DEVICE_RUNTIMES)}; give one of them, or drop --url to measure"
                                 f" {args.backend} on this machine")
            args.backend = "onnxruntime"  # an older study recorded --backend torch beside --url: it measured ONNX
    if args.lut:
        check_lut_file(args.lut)
        from mnas.latency import LookupTable

        # fbnet: the table is its loss's latency model, --backend (or --url) measures the derived network
        measured_apart = args.strategy == "fbnet" and ("backend" in given or args.url)
        try:
            table = LookupTable.load(args.lut)
            table.check_deployment(args.backend if "backend" in given and not measured_apart else None,
                                   args.precision if "precision" in given else None)
        except ValueError as exc:
            raise UsageError(str(exc).splitlines()[0]) from None  # names the file
        if not args.url:  # recorded: the study's latency is the table's runtime and precision
            runtime, args.precision = table.deployment
            if not measured_apart and runtime in LOCAL_BACKENDS:
                args.backend = runtime
    if not args.url and args.precision == "int8" and args.backend not in QUANTIZING:
        raise UsageError(f"--precision int8 is measured in --backend {', '.join(QUANTIZING)}, not {args.backend}"
                         + (f" (--lut {args.lut} was measured in int8)" if args.lut else ""))
    args.precision = args.precision or "fp32"
    args.score = score
    if score == "int8" and args.calibration is None:
        args.calibration = DEFAULT_SCORE_CALIBRATION
    if args.backend in ("litert", "executorch") and (args.url or not args.lut):
        _check_runtime(args.backend)  # with --url: the converter runs here (and --score int8's runtime)
    return table


def _device_backend(args: argparse.Namespace) -> Any:
    """--url: the device server measuring in --backend at --precision, built as 'mnas latency measure
    --backend remote --runtime R' builds it (`latency_cmd.remote_backend`: the model converted here and
    uploaded; the latency's calibration is the backend's default, --calibration being the int8 accuracy's).
    The server is asked first, before any data is loaded, whether it answers and measures that runtime
    and precision: one line (exit 2) otherwise."""
    from mnas.cli.latency_cmd import remote_backend
    from mnas.latency import DeviceUnavailable

    try:
        backend = remote_backend(args.url, args.token, runtime=args.backend, precision=args.precision or "fp32")
    except ValueError as exc:
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    try:
        backend.check_server(flag="--backend")
    except DeviceUnavailable as exc:
        raise _device_error(args, exc) from None
    except ValueError as exc:  # a refused token, a runtime or precision the server does not measure
        raise UsageError(str(exc).strip().splitlines()[0]) from None
    return backend


def _check_runtime(backend: str) -> None:
    """--backend litert/executorch without its optional packages: one line saying what to install (exit 2),
    before the data is loaded (the backend's own import says the same, later)."""
    import importlib.util

    modules = {"litert": ("ai_edge_litert", "litert_torch"), "executorch": ("executorch",)}[backend]
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"--backend {backend} needs the optional package '{module}': pip install 'mnas[{backend}]'"
                             " (with torch pinned to the installed version: pip install -c constraints.txt ...)")


def _latency_backend(args: argparse.Namespace, resume: SearchResume | None = None, table: Any = None,
                     device: Any = None):
    """The latency source the options describe (after `_check_deployment`): a device server (`device`,
    from `_device_backend`), a lookup table, or a local runtime at --precision (`mnas.latency.get_backend`)."""
    from mnas.latency import LookupTable

    if sum(x is not None for x in (args.url, args.lut)) > 1:
        raise UsageError("give one latency source: --url (device server) or --lut (lookup table), not both")
    if args.url:
        if not args.token:
            raise UsageError("--url needs --token (the device server's token)")
        return device if device is not None else _device_backend(args)
    if args.lut:
        if table is None:
            check_lut_file(args.lut)
            table = LookupTable.load(args.lut)
        stored = resume.settings.get("lut") if resume is not None else None
        if isinstance(stored, str) and stored != args.lut:
            table.path = stored  # the same table reached from elsewhere: its identity is the path the study recorded
        return table
    return _local_backend(args)


def _local_backend(args: argparse.Namespace, device: Any = None) -> Any:
    """This machine's runtime (--backend) at --precision and --latency-threads, or the device server (--url)."""
    from mnas.latency import get_backend

    if args.url:
        return device if device is not None else _device_backend(args)
    if args.backend == "torch":
        return get_backend("torch", threads=args.latency_threads)
    return get_backend(args.backend, threads=args.latency_threads, precision=args.precision or "fp32")


def _backend_text(latency: Any) -> str:
    """'OnnxRuntime int8', 'LiteRT fp32', 'LookupTable litert int8': what measures the target's reference."""
    name = type(latency).__name__
    runtime, precision = getattr(latency, "deployment", (None, "fp32"))
    return f"{name} {runtime} {precision}" if name in ("LookupTable", "Remote") else f"{name} {precision}"


def _check_storage(storage: str) -> None:
    """A --storage that cannot hold a study (a folder, a device, a folder that cannot be written): one line
    now, before the data is loaded and the target measured."""
    path = Path(storage.removeprefix("sqlite:///"))
    if path.is_dir():
        raise UsageError(f"--storage {storage} is a folder: give a study file, e.g. {path / 'search.db'}")
    check_output_file(str(path), "--storage")  # a device or FIFO
    if path.is_file() and path.stat().st_size:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise UsageError(f"--storage {storage} is not a study (not an SQLite file): give a new file name, or"
                                 " the study file to continue")
        from mnas.study import SQLiteStorage

        try:  # a damaged file (truncated, a page overwritten): one line now, not after the target is measured
            with SQLiteStorage(path, read_only=True) as existing:
                existing.get_meta("config")
        except ValueError as exc:
            raise UsageError(f"--storage {storage}: {exc}: give a new file name, or restore the study from a copy"
                             ) from None
    folder = next((p for p in path.absolute().parents if p.exists()), None)
    if folder is not None and not (folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)):
        raise UsageError(f"--storage {storage}: cannot write in {folder}: give a study file in a writable folder")


def _holds_study(storage: str) -> bool:
    """Whether `storage` is a file holding a study's config (an empty file is a new study)."""
    from mnas.study import SQLiteStorage

    path = Path(storage.removeprefix("sqlite:///"))
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with SQLiteStorage(path, read_only=True) as existing:
            return isinstance(existing.get_meta("config"), dict)
    except ValueError:
        return False  # not a study: the search itself says what is wrong with the file


def _reward(args: argparse.Namespace, target_text: str | None, measure) -> Any:
    from mnas.objectives import Reward, Target

    if args.reward == "accuracy":
        return Reward.accuracy()
    if target_text is None:
        return None  # resuming: the study's own reward
    ms = Target.parse(target_text).resolve(measure)
    if args.alpha is not None:
        return Reward(ms, args.alpha, args.beta, constrained=args.reward == "hard")
    return {"soft": Reward.soft, "hard": Reward.hard, "absolute": Reward.absolute}[args.reward](ms)


def _supernet_evaluator(args: argparse.Namespace, data: Any, latency: Any) -> Any:
    """`SupernetEvaluator` on --supernet; the space is the checkpoint's, so space options conflict."""
    from mnas.evaluate import SupernetEvaluator

    check_supernet_file(args)
    try:
        evaluator = SupernetEvaluator(args.supernet, data, latency, metric=args.inherited_score or "accuracy",
                                      **_score_settings(args))
        evaluator.check_space(evaluator.space)
    except ValueError as exc:
        raise UsageError(f"--supernet {args.supernet}: {str(exc).splitlines()[0]}") from None
    return evaluator


def _check_inherited_score(args: argparse.Namespace, resuming: bool) -> None:
    """--inherited-score likelihood: only where a supernet scores the trials, and not with --score int8.
    Not given, a new supernet search scores the likelihood (top-1 under --score int8, and under
    --reward absolute, whose additive penalty was set for top-1's spread), and a resumed study whose
    record has none was made before the option: top-1. Filled into `args` (so the study records it)."""
    if args.inherited_score is None:
        inherited = args.supernet and args.strategy not in ("enas", *GRADIENT) and (args.score or "fp32") != "int8"
        likelihood = inherited and not resuming and getattr(args, "reward", None) != "absolute"
        args.inherited_score = "likelihood" if likelihood else "accuracy" if inherited else None
    if (args.inherited_score or "accuracy") == "accuracy":
        if not args.supernet:
            args.inherited_score = None  # proxy training scores top-1 anyway: nothing to record
        return
    if not args.supernet or args.strategy in ("enas", *GRADIENT):
        raise UsageError(f"--inherited-score {args.inherited_score} scores the sub-networks of a --supernet checkpoint"
                         + (f": --strategy {args.strategy} has its own objective; drop it" if args.supernet else
                            ": add --supernet CHECKPOINT, or drop it (proxy training scores top-1 accuracy)"))
    if (args.score or "fp32") == "int8":
        raise UsageError(f"--inherited-score {args.inherited_score} and --score int8: the int8 score is a top-1"
                         " accuracy; drop one of them")


def _score_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluator's int8 settings: under --score int8 the reward's accuracy is the int8 one (the float one
    recorded beside it), calibrated on --calibration training images; nothing under fp32 (identity unchanged)."""
    if (args.score or "fp32") != "int8":
        return {}
    return {"score": "int8", "calibration": int(args.calibration or DEFAULT_SCORE_CALIBRATION)}


def _constraints(args: argparse.Namespace) -> Any:
    """The --max-* limits (None when none is given: a resumed study keeps its own)."""
    from mnas.objectives import Constraints

    given = {k: getattr(args, k, None) for k in ("max_params", "max_macs", "max_peak_memory")}
    if all(v is None for v in given.values()):
        return None
    try:
        return Constraints.parse(**given)
    except ValueError as exc:
        raise UsageError(f"--max-*: {exc}") from None


def _search_enas(args: argparse.Namespace, space: Any, data: Any, latency: Any, reward: Any, storage: str,
                 options: dict[str, Any], resuming: bool) -> int:
    """--strategy enas: one ENAS run whose derived architectures become the study's trials."""
    from mnas.loop.enas_study import enas_study

    if resuming:
        raise UsageError("--strategy enas does not resume a study: give a new --storage")
    started = time.monotonic()
    try:
        study = enas_study(space, data, reward, latency, supernet=args.supernet, options=options, storage=storage,
                           seed=args.seed)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    return _report(study, storage, time.monotonic() - started, args.json)


def _check_extras(strategy: str) -> None:
    """A strategy whose optional package is missing: one line saying what to install (exit 2)."""
    import importlib

    for module, extra in _EXTRA_NEEDS.get(strategy, ()):
        try:
            importlib.import_module(module)
        except ImportError:
            raise UsageError(f"--strategy {strategy} needs the optional package '{module}': pip install '{extra}'") from None


def _search_space(args: argparse.Namespace, data: Any, resume: SearchResume | None) -> Any:
    """The space the options describe; resuming, the study's own unless space options are given
    (then they must describe it)."""
    if resume is not None and resume.space is not None and not resume.space_given:
        return resume.space
    space = space_from_args(args, data.num_classes, data.input_size)  # --space, default the MnasNet space
    if resume is not None:
        resume.check_space(args, space)
    return space


def _budget(args: argparse.Namespace, resume: SearchResume | None) -> Any:
    """The run's budget: --trials/--hours, or (resuming) the study's stored budget with those given applied."""
    from mnas.loop import Budget

    if resume is None:
        return Budget(trials=args.trials or (None if args.hours else DEFAULT_TRIALS), hours=args.hours)
    if not (args.trials or args.hours):
        return None  # the study's stored budget
    stored = resume.budget
    return Budget(trials=args.trials or stored.get("trials"), hours=args.hours or stored.get("hours"),
                  max_repeats=int(stored.get("max_repeats") or Budget().max_repeats))


def cmd_search(args: argparse.Namespace) -> int:
    from mnas.train import load

    storage = _storage_path(args)
    _check_storage(storage)
    resuming = _holds_study(storage)
    if args.resume and not resuming:
        raise UsageError(f"--resume: {storage} holds no study to resume")
    resume = search_resume(args, storage) if resuming else None  # the study's settings, given options checked
    args.stored_target = (resume.settings.get("target") if resume else None)  # --retrain-reference's, on a resume
    if not args.supernet and (resume is None or resume.space_given):  # a space option that does not apply to the
        check_space_options(args)                                      # space is named before a missing --target
    if (args.alpha is None) != (args.beta is None):
        raise UsageError("--alpha and --beta go together (a custom reward needs both)")
    if args.alpha is not None and args.reward in ("absolute", "accuracy"):
        raise UsageError(f"--alpha/--beta are MnasNet's exponents: they do not go with --reward {args.reward}")
    if args.url is not None and not args.url.strip():
        raise UsageError("--url is empty: give the device server's http://HOST:PORT, or leave --url out to measure on"
                         " this machine")
    if args.alpha is not None:  # checked now, not after the data is loaded and the target measured
        from mnas.objectives import Reward

        try:
            Reward(1.0, args.alpha, args.beta, constrained=args.reward == "hard")
        except ValueError as exc:
            raise UsageError(f"--alpha {args.alpha:g} --beta {args.beta:g}: {str(exc).splitlines()[0]}") from None
    if args.reward == "accuracy" and args.target:
        raise UsageError("--reward accuracy has no latency target: drop --target (or use --reward soft/hard)")
    _check_extras(args.strategy)
    options = _strategy_options(args.strategy_opt)  # validate everything cheap before loading data
    constraints = _constraints(args)
    check_retrain_arguments(args)
    if args.url and not args.token:  # as 'mnas latency measure --backend remote' takes it
        from mnas.latency.remote import TOKEN_ENV

        args.token = os.environ.get(TOKEN_ENV) or None
    if args.url and not args.token:
        raise UsageError("--url needs --token (the device server's token, or set MNAS_DEVICE_TOKEN)")
    if args.strategy in GRADIENT:
        check_gradient_args(args, resuming)
    _check_inherited_score(args, resuming)
    table = _check_deployment(args)
    device = _device_backend(args) if args.url else None  # asked now: a refusal costs no data loading
    if args.space in ("nb201", "darts") and not (args.target or resuming or args.reward == "accuracy"
                                                 or args.strategy in GRADIENT):
        raise UsageError(f"--space {args.space} needs --target (a latency such as 5ms): the default target,"
                         " MobileNetV2 at the space's width, is a block chain")
    phases = Phases(quiet=args.quiet or args.json)  # a line for a phase that takes a while, none for bad input
    with phases:
        phases(f"loading the data: {args.data}")
        data = load(args.data, root=args.data_root, val_fraction=args.val_fraction, seed=args.seed)
        phases.end()
        if not len(data.y_val) and args.strategy not in ("enas", *GRADIENT):  # every trial would fail on it
            raise UsageError(f"--val-fraction {args.val_fraction:g} holds out no validation image of {len(data.y_train)}"
                             " training images, and each candidate is scored on the validation split: give a larger"
                             " --val-fraction (default 0.2)")
        return _search_with_data(args, storage, resume, resuming, options, constraints, data, phases, table, device)


def _search_with_data(args: argparse.Namespace, storage: str, resume: SearchResume | None, resuming: bool,
                      options: dict[str, Any], constraints: Any, data: Any, phases: Phases, table: Any = None,
                      device: Any = None) -> int:
    from mnas.evaluate import ProxyEvaluator
    from mnas.objectives import Target
    from mnas.train import ProxyConfig

    # fbnet: the table is in its loss and the derived network is measured here (or on --url)
    latency = (_local_backend(args, device) if args.strategy == "fbnet"
               else _latency_backend(args, resume, table, device))
    if args.supernet and args.strategy not in GRADIENT:
        evaluator = _supernet_evaluator(args, data, latency)
        space = evaluator.space
    else:
        if args.supernet:  # fbnet fine-tunes the checkpoint: the space is its own
            space = checkpoint_space(args)
        else:
            space = _search_space(args, data, resume)
        proxy = ProxyConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                            max_seconds=args.max_train_seconds, seed=args.seed, input_size=args.input_size)
        evaluator = ProxyEvaluator(data, latency, proxy, **_score_settings(args))
    width = getattr(space, "width_mult", 1.0)
    target_text = args.target or (None if resuming else f"mobilenetv2_x{width:g}" if width != 1 else "mobilenetv2")
    if args.strategy in ("darts", "gdas") and not args.target and not resuming:
        args.reward = "accuracy"  # the cell search itself ignores latency; a --target only scores the derived cell
    if resuming:
        reward = None  # the study's own reward and target (a zoo target is not measured again)
    else:
        reference = Target.parse(target_text).reference if target_text and args.reward != "accuracy" else None
        if reference:
            phases(f"data: {data!r}; measuring the target's reference {reference} ({_backend_text(latency)}),"
                   " then the search")
        try:
            reward = _reward(args, target_text, lambda name: evaluator.reference_latency(name, space))
        except ConnectionError as exc:
            raise _device_error(args, exc) from None
        phases.end()
        target_ms = getattr(reward, "target_ms", None)
        if target_ms is not None and not (args.quiet or args.json):  # said before the search, not only after it
            print(f"target: {target_text} = {target_ms:.4g} ms ({_backend_text(latency)}), reward {args.reward}",
                  file=sys.stderr, flush=True)
        args.target = target_text if args.reward != "accuracy" else None  # recorded as resolved
    with contextlib.nullcontext() if resuming else new_study_record(storage, args):
        if args.strategy == "enas":
            return _search_enas(args, space, data, latency, reward, storage, options, resuming)
        if args.strategy in GRADIENT:
            return search_gradient(args, space, data, latency, reward, storage, options, resuming)
        return _search(args, space, evaluator, reward, options, storage, constraints, data, resume, phases)


def _search(args: argparse.Namespace, space: Any, evaluator: Any, reward: Any, options: dict[str, Any], storage: str,
            constraints: Any, data: Any, resume: SearchResume | None, phases: Phases | None = None) -> int:
    from mnas.loop import search

    budget = _budget(args, resume)
    workers = args.workers or (2 if args.executor == "process" else None)

    import torch

    torch.set_num_threads(args.threads)  # the driver trains in-process with --executor local
    display = None
    if not (args.quiet or args.json):
        plan = "the study's own budget" if budget is None else " and ".join(
            ([f"{budget.trials} trials"] if budget.trials else []) + ([f"{budget.hours:g} h"] if budget.hours else []))
        target = f", target {reward.target_ms:.3f} ms" if reward is not None and reward.target_ms is not None else ""
        if phases is not None:
            phases(f"search: {args.strategy}, {plan}{target}, {args.executor} executor -> {storage}: starting")
        display = _LiveDisplay(storage) if sys.stderr.isatty() else _PlainProgress(busy=_busy_line(evaluator))
    callbacks = [lambda event: phases.end()] if phases is not None else []  # the search has started
    callbacks += [display.update] if display else []
    started = time.monotonic()
    try:
        with display or contextlib.nullcontext():
            study = search(space, evaluate=evaluator, reward=reward, strategy=args.strategy, strategy_options=options,
                           budget=budget, storage=storage, executor=args.executor, workers=workers,
                           ray_address=args.ray_address, seed=args.seed, callbacks=callbacks,
                           constraints=constraints)
    except KeyboardInterrupt:
        print(f"\nmnas: interrupted; finished trials are saved in {storage}. "
              f"Resume with: {resume_command('search', '--storage', storage)}", file=sys.stderr)
        return 130
    except ConnectionError as exc:
        raise _device_error(args, exc) from None
    extra: dict[str, Any] = {}  # --retrain-reference's comparison, for --json
    rc = run_retrain(args, study, data, storage, report=extra) if args.retrain_top else 0
    return _report(study, storage, time.monotonic() - started, args.json, extra) or rc


def _busy_line(evaluator: Any) -> str | None:
    """The busy-machine warning when candidates' latency is measured on this machine, else None."""
    latency = getattr(evaluator, "latency", None)
    if getattr(latency, "name", None) not in LOCAL_BACKENDS:
        return None
    from mnas.latency.device import busy_note

    return busy_note("the latencies measured here, beside the trainings,")


class _PlainProgress:
    """When stderr is not a terminal (a log file, nohup, CI): `ProgressPrinter`'s line per finished
    trial (with the rate and time left), and while trials run longer than $MNAS_PROGRESS_EVERY seconds
    (default 30) a line at that interval saying which and for how long."""

    def __init__(self, file=None, every: float | None = None, busy: str | None = None) -> None:
        import threading

        from mnas._util.progress import progress_every
        from mnas.loop import ProgressPrinter

        self.file = file or sys.stderr
        self.every = progress_every() if every is None else every
        self.printer = ProgressPrinter(self.file, every=self.every)
        self.running: dict[int, float] = {}  # trial number -> when it started
        self.lock, self.stop = threading.Lock(), threading.Event()
        self.thread = threading.Thread(target=self._beat, name="mnas-progress", daemon=True)
        self.busy = busy  # printed as the first trial starts (before it, an error is bad input: one line)

    def __enter__(self):
        if self.every > 0:
            self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        return False

    def update(self, event) -> None:
        with self.lock:
            if self.busy:
                print(self.busy, file=self.file, flush=True)
                self.busy = None
            if event.trial is not None:
                if event.kind == "start":
                    self.running[event.trial.number] = time.monotonic()
                elif event.kind in ("complete", "failed"):
                    self.running.pop(event.trial.number, None)
            self.printer(event)

    def _beat(self) -> None:
        from mnas._util.progress import format_duration

        while not self.stop.wait(min(self.every, 5.0) if self.every > 0 else 5.0):
            now = time.monotonic()
            with self.lock:
                if now - self.printer.last_line < self.every or not self.running:
                    continue
                oldest = min(self.running, key=self.running.get)
                others = f" and {len(self.running) - 1} more" if len(self.running) > 1 else ""
                print(f"        trial {oldest}{others} running for {format_duration(now - self.running[oldest])}"
                      " (training, then latency)", file=self.file, flush=True)
                self.printer.last_line = now


class _LiveDisplay:
    """A rich live panel on stderr: the current front, trials done, best reward, time left. The arch
    column is cut to what the terminal leaves, so the figures and the caption always show."""

    def __init__(self, storage: str):
        from mnas._util import require

        require("rich", "the live search display")
        from rich.console import Console

        self.console = Console(stderr=True)
        self.storage = storage
        self.live = None

    def __enter__(self):
        from rich.live import Live

        self.live = Live(self._render(None), console=self.console, refresh_per_second=2, transient=False)
        self.live.__enter__()
        return self

    def __exit__(self, *exc):
        self.live.__exit__(*exc)
        return False

    def update(self, event) -> None:
        self.live.update(self._render(event))

    def _render(self, event):
        return render_table(event, self.storage, self.console.width)


def render_table(event, storage: str, width: int):
    """The live display's renderable for `event` (None: starting) at a terminal `width`."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table_ = Table(title=f"mnas search -> {storage}", title_justify="left", expand=False)
    front = event.study.pareto_front()[-8:] if event is not None else []
    likelihood = bool(front) and all(t.likelihood_scored for t in front)  # --inherited-score likelihood
    for col in ("trial", "likelihood" if likelihood else "accuracy", "latency ms", "reward"):
        table_.add_column(col, no_wrap=True, min_width=len(col), justify="right")
    arch_width = max(12, width - 55)  # four figure columns with borders and padding take about 55
    table_.add_column("arch", no_wrap=True, max_width=arch_width)
    if event is None:
        return Group(table_, Text("starting: measuring the target, first candidate training..."))
    study = event.study
    states = {s: study.storage.count_trials(s) for s in ("complete", "failed")}
    done = states["complete"] + states["failed"]
    best = study.best()
    for t in front:
        arch = t.arch if len(t.arch) <= arch_width else t.arch[: arch_width - 1] + "\u2026"
        score = f"{t.accuracy:.4f}" if likelihood else f"{100 * t.accuracy:.1f}%"
        table_.add_row(str(t.number), score, f"{t.latency_ms:.3f}", f"{t.reward:.4f}", arch)
    budget = event.budget
    left = "" if budget.hours is None else f"   time left: {max(0.0, budget.seconds - event.elapsed) / 60:.1f} min"
    total = f"/{budget.trials}" if budget.trials else ""
    target = event.reward.target_ms
    caption = (f"trials {done}{total} (failed {states['failed']}, running {event.running})"
               + (f"   best reward {best.reward:.4f}" if best else "")
               + (f"   target {target:.3f} ms" if target is not None else "   no target")
               + f"   elapsed {event.elapsed / 60:.1f} min{left}   [front shown]")
    return Group(table_, Text(caption, overflow="fold"))
