"""`mnas latency measure | build-lut | validate | compare-luts`."""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mnas.cli._common import (
    UsageError,
    add_space_options,
    check_data_args,
    check_lut_file,
    check_output_file,
    check_space_options,
    emit_json,
    load_tables,
    nonneg_int,
    physical_memory,
    positive_int,
    resolve_arch,
    space_from_args,
    thread_count,
)

MAX_TABLE_FILE = 256 * 2**20  # a lookup table is a few MB; --out is read to resume it
BACKEND_CHOICES = ("onnxruntime", "torch", "remote", "lut", "litert", "executorch")
QUANTIZING = ("onnxruntime", "litert", "executorch")  # backends that take --precision int8
REMOTE_RUNTIMES = ("onnxruntime", "litert", "executorch")  # what a device server can measure in (--runtime)


def _backend_options(p: argparse.ArgumentParser, lut: bool = True) -> None:
    choices = BACKEND_CHOICES if lut else tuple(c for c in BACKEND_CHOICES if c != "lut")
    p.add_argument("--backend", choices=choices, default=None,
                   help="where to measure (default onnxruntime: ONNX Runtime on this CPU; litert: .tflite in LiteRT +"
                        " XNNPACK, extra [litert]; executorch: .pte lowered to XNNPACK, extra [executorch])")
    p.add_argument("--precision", choices=("fp32", "int8"), default=None,
                   help="fp32 (default) or int8: static post-training quantization (per-channel weights) with the"
                        " runtime's own quantizer (QDQ for onnxruntime, XNNPACK's for litert and executorch)")
    p.add_argument("--calibration", type=positive_int, default=None, metavar="N",
                   help="int8: calibration inputs (default 8; latency does not depend on their values)")
    p.add_argument("--threads", type=thread_count, default=1,
                   help="intra-op threads, at most this machine's CPU count (default 1, one big core)")
    p.add_argument("--device", default="cpu", help="torch backend: cpu or cuda (default cpu)")
    p.add_argument("--clock", choices=("auto", "wall", "thread"), default="auto",
                   help="auto: the thread's CPU time at 1 thread (leaves out time the OS gives other processes),"
                        " else wall time")
    p.add_argument("--url", help="remote backend: the device server, http://HOST:PORT")
    p.add_argument("--token", help="remote backend: the server's token (or set MNAS_DEVICE_TOKEN)")
    p.add_argument("--runtime", choices=REMOTE_RUNTIMES, default=None,
                   help="remote backend: the runtime the device server measures in (default onnxruntime); the model is"
                        " converted here (.onnx, .tflite, .pte) in --precision and uploaded ('mnas device info' lists"
                        " the server's runtimes)")
    p.add_argument("--repeats", type=positive_int, default=None, help="most timed samples per measurement")


def register(sub: argparse._SubParsersAction) -> None:
    lat = sub.add_parser("latency", help="measure latency, build and validate lookup tables")
    lat_sub = lat.add_subparsers(dest="latency_command", metavar="ACTION")

    p = lat_sub.add_parser("measure", help="latency of one architecture (median and spread)")
    p.add_argument("arch", metavar="ARCH", help="zoo name, block strings, or a JSON file")
    _backend_options(p)
    p.add_argument("--lut", help="lut backend: the table file")
    p.add_argument("--input-size", type=positive_int, default=None,
                   help="input resolution (default 224, or the table's with --lut)")
    p.add_argument("--num-classes", type=positive_int, default=None, help="classes (default 1000, or the table's)")
    p.add_argument("--batch-size", type=positive_int, default=1, help="images per run (default 1)")
    p.add_argument("--in-chans", type=positive_int, default=None, help="input channels (default 3, or the table's)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_measure)

    p = lat_sub.add_parser(
        "build-lut", help="measure every layer of the search space into a lookup table",
        description="Measure every layer of the MnasNet space that 'mnas search' builds with the same --data and"
                    " space options (default: the built-in digits, 8x8x1, 10 classes, width 0.35, head 256), so that"
                    " 'mnas search --lut FILE' with those options can use the table. Zoo models named by"
                    " --references are covered too, for targets such as 'mobilenetv2' or '0.8x mnasnet_b1'.")
    p.add_argument("--out", required=True, help="the table file (JSON); an unfinished one is resumed")
    _backend_options(p, lut=False)
    g = p.add_argument_group("data and space (as mnas search)")
    g.add_argument("--data", default="digits",
                   help="the data the search will use, for its classes, channels and image size: digits (default),"
                        " cifar10/cifar100 (with --data-root), a .npz or an image folder")
    g.add_argument("--data-root", help="folder holding the CIFAR batches (for --data cifar10/cifar100)")
    add_space_options(g)
    g.add_argument("--num-classes", type=positive_int, help="override the data's number of classes")
    g.add_argument("--in-chans", type=positive_int, help="override the data's input channels")
    p.add_argument("--references", default="auto",
                   help="comma-separated zoo models to cover for relative targets, or 'none' (default auto: the"
                        " search's default target mobilenetv2 at the space's width, mobilenetv2, mnasnet_a1, mnasnet_b1)")
    p.add_argument("--fit-archs", type=nonneg_int, default=20,
                   help="whole networks measured to fit the table's scale and overhead (default 20)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the networks measured for the fit (default 0)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_build_lut)

    p = lat_sub.add_parser("validate", help="compare a lookup table with real measurements")
    p.add_argument("--lut", required=True, help="the table file")
    p.add_argument("--n", type=positive_int, default=50, help="random architectures to measure (default 50)")
    p.add_argument("--seed", type=nonneg_int, default=12345,
                   help="seed of the architectures drawn (default 12345, apart from build-lut's fit networks)")
    p.add_argument("--recalibrate", type=nonneg_int, default=0, metavar="K",
                   help="first refit the table's scale and overhead on K other networks measured now (default 0)")
    _backend_options(p, lut=False)
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_validate)

    p = lat_sub.add_parser(
        "compare-luts", help="latency by op type across lookup tables of one space (fp32 vs int8, runtimes)",
        description="Match the units of two or more tables of one space (say ONNX Runtime fp32, LiteRT int8 and"
                    " ExecuTorch int8, each from 'mnas latency build-lut'), group them by op type and print each"
                    " type's summed latency per table, its ratio to the first table and, where a runtime has both,"
                    " its int8/fp32 ratio.")
    p.add_argument("luts", nargs="+", metavar="LUT", help="table files (.json); the first is the base of the ratios")
    p.add_argument("--plot", metavar="PNG", help="also draw each op type's ratio to the first table")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_compare_luts)


def make_backend(args: argparse.Namespace, default: str = "onnxruntime") -> Any:
    """The backend the options describe; UsageError for a bad combination."""
    from mnas.latency import Protocol, get_backend

    name = args.backend or ("remote" if args.url else default)
    protocol = None
    if getattr(args, "repeats", None):
        protocol = Protocol(min_repeats=min(10, args.repeats), max_repeats=args.repeats)
    precision, runtime = getattr(args, "precision", None), getattr(args, "runtime", None)
    if name == "remote":
        if not args.url:
            raise UsageError("--backend remote needs --url http://HOST:PORT (and --token or MNAS_DEVICE_TOKEN)")
        if getattr(args, "device", "cpu") != "cpu":
            raise UsageError(f"--device {args.device} is for --backend torch; a device server measures on its CPU")
        return remote_backend(args.url, args.token, runtime, precision, getattr(args, "calibration", None),
                              args.repeats)
    if runtime:
        raise UsageError(f"--runtime is for --backend remote (the runtime a device server measures in): to measure on"
                         f" this machine use --backend {runtime}")
    if args.url:
        hint = f": to measure {name} on a device server use --backend remote --runtime {name}" if name in QUANTIZING else ""
        raise UsageError(f"--url is for --backend remote, not {name}{hint}")
    if name == "lut":
        if not getattr(args, "lut", None):
            raise UsageError("--backend lut needs --lut FILE (a table from 'mnas latency build-lut')")
        return get_backend("lut", path=args.lut, precision=precision)
    quantize = {}
    if precision == "int8" or getattr(args, "calibration", None):
        if name not in QUANTIZING:
            raise UsageError(f"--precision int8 and --calibration are for --backend {', '.join(QUANTIZING)}, not {name}")
        quantize = {"precision": precision or "fp32", "calibration": args.calibration or 8}
    if name == "torch":
        return get_backend("torch", threads=args.threads, device=args.device, clock=args.clock, protocol=protocol)
    if args.device != "cpu":
        raise UsageError(f"--device {args.device} is for --backend torch; {name} runs on the CPU")
    return get_backend(name, threads=args.threads, clock=args.clock, protocol=protocol, **quantize)


def remote_backend(url: str, token: str | None, runtime: str | None = None, precision: str | None = None,
                   calibration: int | None = None, repeats: int | None = None) -> Any:
    """The device server at `url` measuring in `runtime` (default onnxruntime) at `precision` (default
    fp32): `mnas.latency.Remote`, which converts each model here (.onnx, .tflite, .pte) and uploads it.
    `latency measure --backend remote --runtime R` and `mnas search --url URL --backend R` both build it
    here. ValueError (one line) for a bad URL or a missing token, ImportError for a missing converter."""
    from mnas.latency import get_backend

    deployment: dict[str, Any] = {"runtime": runtime or "onnxruntime", "precision": precision or "fp32"}
    if calibration:
        deployment["calibration"] = calibration
    return get_backend("remote", url=url, token=token, repeats=repeats, **deployment)


@contextmanager
def _device_errors() -> Iterator[None]:
    from mnas.latency import DeviceUnavailable

    try:
        yield
    except DeviceUnavailable as exc:
        raise UsageError(f"{exc} (is 'mnas device serve' running there?)") from None


def cmd_measure(args: argparse.Namespace) -> int:
    arch = resolve_arch(args.arch)
    if args.lut and not args.backend:
        args.backend = "lut"
    with _device_errors():
        backend = make_backend(args)
        size, classes, chans = args.input_size, args.num_classes, args.in_chans
        if backend.name == "lut":
            size, classes, chans = size or backend.input_size, classes or backend.num_classes, chans or backend.in_chans
        else:  # the network is built and run here (exported here for a device server): it must fit in memory
            _check_fits(arch, size or 224, classes or 1000, args.batch_size, chans or 3)
        result = backend.measure(arch, size or 224, classes or 1000, args.batch_size, in_chans=chans or 3)
    if backend.name not in ("lut", "remote"):  # measured on this machine: say so if it was busy (after: bad input
        _busy_warning("this figure")           # is refused with one line)
    if args.json:
        emit_json(result.to_dict())
        return 0
    print(measure_lines(result))
    return 0


def measure_lines(result: Any) -> str:
    """`latency measure`'s text: the figure named by its clock, the wall-clock median beside it."""
    shape = "x".join(str(d) for d in result.input_shape)
    precision = result.settings.get("precision", "fp32")
    backend = result.backend
    if backend == "remote":
        backend = f"remote ({result.settings.get('runtime', 'onnxruntime')} on {result.settings.get('url', '?')})"
    where = f"backend {backend} {precision}, input {shape}, cpu {result.device.get('cpu', '?')}"
    if not result.n:
        return f"{result.median_ms:.3f} ms predicted by the lookup table\n{where}"
    spread = f"IQR {result.iqr_ms:.3f} ms, CV {100 * result.cv:.1f}%, n={result.n}"
    wall = "" if math.isnan(result.wall_median_ms) else f"{result.wall_median_ms:.3f} ms"
    if result.clock == "thread":
        head = f"{result.median_ms:.3f} ms median thread CPU time ({spread})"
        tail = (f"wall-clock median {wall}: the thread CPU time leaves out the time the OS gave other processes"
                if wall else "")
    else:
        head = f"{result.median_ms:.3f} ms median wall-clock time ({spread})"
        tail = ""
    return "\n".join(line for line in (head, tail, where) if line)


def _check_fits(arch: Any, size: int, classes: int, batch: int, chans: int) -> None:
    """UsageError when building, exporting and timing `arch` at this shape would need more than half of
    this machine's memory (a 20000-pixel input or a batch of a million asks for tens of GB)."""
    from mnas.models.profile import MAX_PARAMS, arch_profile
    from mnas.space import Arch

    memory = physical_memory()
    if not memory:
        return
    if isinstance(arch, Arch):
        prof = arch_profile(arch, size, classes, chans)
        if prof.params > MAX_PARAMS:
            return  # building it says what is wrong
        # activations twice (the export's trace, then ONNX Runtime), weights three times (model, ONNX, session)
        need = 2 * batch * prof.peak_memory + 3 * 4 * prof.params
    else:  # a cell network: no analytic peak; its first stage keeps dozens of channels at full resolution
        need = 4 * batch * max(chans, 64) * size * size
    if need > memory // 2:
        raise UsageError(f"--input-size {size} --batch-size {batch}: measuring needs about {need / 2**30:,.1f} GiB,"
                         f" over half of this machine's {memory / 2**30:.0f} GiB: use a smaller input size or batch")


@contextmanager
def _progress(label: str, quiet: bool = False, unit: str = "") -> Iterator[Any]:
    """A callback progress(done, total, what): a bar with rate and time left on a terminal, plain lines
    every $MNAS_PROGRESS_EVERY seconds (default 30) off it (`mnas.cli._progress.count_progress`)."""
    from mnas.cli._progress import count_progress

    with count_progress(label, unit, quiet) as progress:
        yield progress


def _busy_warning(what: str) -> None:
    from mnas.latency.device import busy_note

    note = busy_note(what)
    if note:
        print(note, file=sys.stderr, flush=True)


def _warn_when_measuring(progress: Any, what: str) -> Any:
    """`progress` that first says whether the machine is busy, once measuring has begun (before it, an error
    is bad input and gets its one line)."""
    first = [True]

    def update(done: int, total: int, text: str = "") -> None:
        if first[0]:
            first[0] = False
            _busy_warning(what)
        progress(done, total, text)
    return update


def _data_shape(args: argparse.Namespace) -> tuple[int, int, int]:
    """(num_classes, channels, image size) of --data, with the overrides; the data is loaded once."""
    if args.num_classes and args.in_chans and args.input_size:
        return args.num_classes, args.in_chans, args.input_size
    from mnas.train import load

    check_data_args(args.data, args.data_root)
    data = load(args.data, root=args.data_root, image_size=args.input_size or 32)
    return args.num_classes or data.num_classes, args.in_chans or data.channels, data.input_size


def _references(text: str, width: float) -> list[str]:
    from mnas.space import is_zoo_name
    from mnas.space.zoo import unknown_model_message

    if text.strip().lower() == "none":
        return []
    if text.strip().lower() == "auto":
        default = f"mobilenetv2_x{width:g}" if width != 1 else "mobilenetv2"
        return list(dict.fromkeys([default, "mobilenetv2", "mnasnet_a1", "mnasnet_b1"]))
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if not is_zoo_name(name):
            raise UsageError(f"--references: {unknown_model_message(name)}")
    return names


def cmd_build_lut(args: argparse.Namespace) -> int:
    from mnas.latency.lut_build import build_lut, check_table_path

    check_output_file(args.out, "--out")  # an unfinished table there is resumed: it is read first
    if os.path.isfile(args.out) and os.path.getsize(args.out) > MAX_TABLE_FILE:
        raise UsageError(f"--out {args.out}: {os.path.getsize(args.out):,} bytes is not a lookup table (those are a"
                         " few MB): give a new file name")
    # what --out holds or is named as is refused before the data is loaded and the backend set up
    try:
        table_there = check_table_path(args.out) is not None
    except ValueError as exc:
        raise UsageError(f"--out {exc}") from None
    if not table_there and not args.out.lower().endswith(".json"):
        raise UsageError(f"--out {args.out}: a lookup table is a JSON file: give a name ending in .json, e.g."
                         f" {Path(args.out).with_suffix('.json')}")
    check_space_options(args)
    num_classes, in_chans, data_size = _data_shape(args)
    space = space_from_args(args, num_classes, data_size)
    if hasattr(space, "width_mult"):
        references = _references(args.references, space.width_mult)
    elif args.references.strip().lower() in ("auto", "none"):
        references = []  # zoo references are block chains: a cell space's table holds its own ops only
    else:
        raise UsageError(f"--references: zoo models are block chains, not in a --space {args.space} table")
    _log_space = f"space: {space!r}, {in_chans} input channel(s), references: {', '.join(references) or 'none'}"
    print(_log_space, file=sys.stderr)
    with _device_errors():
        backend = make_backend(args)
        with _progress("build-lut", unit="measurements") as progress:
            table = build_lut(space, backend, args.out, fit_archs=args.fit_archs, seed=args.seed, in_chans=in_chans,
                              progress=_warn_when_measuring(progress, "a table built now"), references=references,
                              log=lambda line: print(f"build-lut: {line}", file=sys.stderr, flush=True))
    summary = {"out": args.out, "entries": len(table.entries), "scale": table.scale,
               "overhead_ms": table.overhead_ms, "build_seconds": table.meta.get("build_seconds"),
               "backend": table.meta.get("backend"), "space": table.meta.get("space"), "load": table.meta.get("load")}
    if args.json:
        emit_json(summary)
        return 0
    from mnas.latency.lut_build import describe_load

    print(f"wrote {args.out}: {summary['entries']} layer signatures, fit: {table.scale:.3f} x sum"
          f" {table.overhead_ms:+.3f} ms, built in {summary['build_seconds']:.0f} s at {describe_load(summary['load'])}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mnas.latency import LookupTable
    from mnas.latency.lut_build import validate_lut

    check_lut_file(args.lut)
    table = LookupTable.load(args.lut)
    with _device_errors():
        if args.backend is None and not args.url:  # measure as the table was built
            built = table.meta.get("backend") or {}
            settings = built.get("settings") if isinstance(built.get("settings"), dict) else {}
            name = built.get("backend", "onnxruntime")
            if name == "remote":
                runtime, precision = table.deployment
                raise UsageError("the table was built on a device server: pass --backend remote --url ... to validate"
                                 f" (it measures in --runtime {runtime} --precision {precision} by default)")
            args.backend, args.threads = name, settings.get("threads", args.threads)
            args.clock = settings.get("clock", args.clock)
            if args.precision is None:  # and in the precision it was measured in
                args.precision = table.deployment[1]
                args.calibration = args.calibration or settings.get("calibration")
        if (args.backend == "remote" or (args.backend is None and args.url)) and args.runtime is None \
                and args.precision is None and table.deployment[0] in REMOTE_RUNTIMES:
            args.runtime, args.precision = table.deployment  # on a device server, as the table was measured
            args.calibration = args.calibration or ((table.meta.get("backend") or {}).get("settings") or {}).get(
                "calibration")
        backend = make_backend(args)
        table.check_deployment(*backend.deployment)  # before the progress bar: one line, nothing measured
        with _progress("validate", unit="measurements") as progress:
            progress = _warn_when_measuring(progress, "the measurements compared with the table")
            report = validate_lut(table, backend, args.n, args.seed, progress=progress,
                                  recalibrate_with=args.recalibrate)
    if args.json:
        emit_json(report)
        return 0
    from mnas.latency.lut_build import describe_load

    rho = "n/a" if report["spearman"] is None else f"{report['spearman']:.4f}"
    print(f"{report['n']} architectures: {100 * report['within_10pct']:.1f}% within ±10%,"
          f" MAPE {report['mape']:.2f}%, Spearman {rho}")
    print(f"  the table was built at {describe_load(report.get('table_load'))}; validated now at"
          f" {describe_load(report.get('load'))} (a busy machine at either time widens the error)")
    print("largest errors:")
    for row in report["rows"][:5]:
        print(f"  {row['error_pct']:+6.1f}%  predicted {row['predicted_ms']:.3f} ms,"
              f" measured {row['measured_ms']:.3f} ms  {row['arch']}")
    return 0


def cmd_compare_luts(args: argparse.Namespace) -> int:
    from mnas.latency.lut_compare import compare_tables, plot_op_types

    if args.plot:
        check_output_file(args.plot, "--plot")
    data = compare_tables(load_tables(args.luts, "compare-luts"))
    if args.plot:
        plot_op_types(data, args.plot)
    if args.json:
        emit_json(data)
        return 0
    labels, runtimes = data["labels"], sorted({k for row in data["types"] for k in row["int8_over_fp32"]})
    print(f"{data['shared_units']} units shared by all {len(labels)} tables ({data['space_type']},"
          f" {data['input_size']} px); ms summed over them, ratio = median of the units' ratios")
    for i, label in enumerate(labels):
        print(f"  [{i}] {label}: {data['total_ms'][label]:.3f} ms" + (
            f", {data['only_in'][label]} units only in it" if data["only_in"][label] else ""))
    head = f"{'op type':<20} {'units':>5}" + "".join(f" {f'[{i}] ms':>9}" for i in range(len(labels)))
    head += "".join(f" {f'[{i}]/[0]':>8}" for i in range(1, len(labels)))
    head += "".join(f" {f'{r} int8/fp32':>22}" for r in runtimes)
    print(head)
    for row in data["types"]:
        line = f"{row['type']:<20} {row['units']:>5}" + "".join(f" {row['ms'][label]:9.4f}" for label in labels)
        line += "".join(f" {_median(row['ratio'].get(label)):>8}" for label in labels[1:])
        line += "".join(f" {_median(row['int8_over_fp32'].get(r)):>22}" for r in runtimes)
        print(line)
    if args.plot:
        print(f"plot: {args.plot}")
    return 0


def _median(ratio: dict[str, float] | None) -> str:
    return "-" if not ratio else f"{ratio['median']:.2f}"
