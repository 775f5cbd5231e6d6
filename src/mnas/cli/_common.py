"""Helpers shared by the sub-commands: errors, JSON output, argument types, ARCH resolution."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from mnas.space import ZOO, Arch, as_arch, get_arch, is_zoo_name

__all__ = ["UsageError", "add_space_options", "check_data_args", "check_output_file", "check_space_options",
           "check_writable_output", "emit_json",
           "load_run_checkpoint", "load_tables", "physical_memory", "positive_float", "positive_int", "resolve_arch",
           "space_from_args", "table", "thread_count"]


MAX_ARCH_FILE = 16 * 2**20  # an architecture's JSON is a few KB; a bigger file is not one


class UsageError(Exception):
    """Bad input from the user: the CLI prints the message on one line and exits 2."""


def emit_json(data: Any) -> None:
    """Exactly one JSON document on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def thread_count(text: str) -> int:
    """--threads: 1 up to this machine's CPU count (more only queues threads: ONNX Runtime aborts or every
    measurement times out at 100,000)."""
    value = positive_int(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(f"{value} threads on a machine with {cpus} CPUs: expected 1 to {cpus}")
    return value


def physical_memory() -> int | None:
    """This machine's memory in bytes (None where the OS does not say)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def check_output_file(path: str, flag: str) -> None:
    """UsageError unless `path` is a regular file or does not exist yet: a device node, FIFO or folder
    would be read forever (or without end) and then replaced."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"{flag} {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{flag} {path} is a folder: give a file name, e.g. {Path(path) / 'lut.json'}")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a file"
        raise UsageError(f"{flag} {path} is {kind}, not a regular file: give a file name")


def check_writable_output(path: str, flag: str) -> None:
    """`check_output_file`, and UsageError unless the file's folder exists as a folder (or can be made
    under one) that this process may write in: checked before any work, not after it."""
    parent = Path(path).absolute().parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a folder: give a path under a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {parent}: give a writable path")
    check_output_file(path, flag)


def check_lut_file(path: str, flag: str = "--lut") -> None:
    """UsageError (exit 2) unless `path` is a file: a lookup table (.json from `mnas latency build-lut`)."""
    p = Path(path)
    if p.is_dir():
        raise UsageError(f"{flag} {path}: is a folder, not a lookup table; give the .json file 'mnas latency build-lut'"
                         " wrote")
    if not p.is_file():
        raise UsageError(f"lookup table not found: {path}")


def load_run_checkpoint(out: str, name: str, fmt: str, kind: str) -> dict[str, Any]:
    """--resume: the checkpoint file `name` of the run folder `out`, read; UsageError (exit 2) when there
    is none, it does not load, or its format is not `fmt` (the message calls it "not a `kind` checkpoint")."""
    from mnas.train.checkpoint import load_file

    ckpt = Path(out) / name
    if not ckpt.is_file():
        raise UsageError(f"nothing to resume: no {name} in {out}")
    try:
        saved = load_file(ckpt)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if saved.get("format") != fmt:
        raise UsageError(f"{ckpt}: not a {kind} checkpoint")
    return saved


def nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def check_data_args(data: str | None, data_root: str | None, has_download: bool = False) -> None:
    """CLI-level check of --data/--data-root before anything loads: one line naming the options."""
    name = (data or "").strip().lower()
    if name in ("cifar10", "cifar100") and not data_root:
        fetch = " (add --download to fetch and verify them there)" if has_download else ""
        raise UsageError(f"--data {name} needs --data-root DIR, the folder that holds the official"
                         f" {'cifar-10-batches-py' if name == 'cifar10' else 'cifar-100-python'} batches{fetch}")
    if data_root and name not in ("cifar10", "cifar100"):
        raise UsageError(f"--data-root is for --data cifar10 or cifar100, not {data or 'digits'!r}")


def add_space_options(group: Any) -> None:
    """The MnasNet space as `mnas search` builds it for its data: --input-size, --width-mult, --head,
    --strides (defaults adapted to the data, see `space_from_args`)."""
    group.add_argument("--input-size", type=positive_int, help="resolution (default: the data's)")
    group.add_argument("--width-mult", type=positive_float,
                       help="scale every filter count (default 0.35 for images <= 16 px, else 1.0)")
    group.add_argument("--head", type=nonneg_int, help="head conv filters (default 1280; 256 for images <= 16 px)")
    group.add_argument("--strides", help="stem and 7 block strides, e.g. 1,1,1,2,2,1,2,1 (default: adapted to the input size)")
    add_choice_options(group)
    add_family_space_options(group)


# The block spaces' option lists: (the space's keyword, which is the option's name; parse one item; help).
CHOICE_OPTIONS = (
    ("ops", str, "op choices: mnasnet conv,ds,mbconv3,mbconv6 (default all four); layerwise any kKeE pairs and"
                 " skip, e.g. k3e3,k5e6,skip (default k3e3,k3e6,k5e3,k5e6,skip)"),
    ("kernel_sizes", int, "mnasnet: depthwise kernel sizes, e.g. 3,5 (default)"),
    ("se_ratios", float, "mnasnet: squeeze-and-excitation ratios, e.g. 0,0.25 (default)"),
    ("skips", str, "mnasnet: skip choices among identity,pool,none (default all three)"),
    ("filter_mults", float, "mnasnet: filter multipliers per block, e.g. 0.75,1,1.25 (default)"),
    ("layer_deltas", int, "mnasnet: layer-count changes per block; write --layer-deltas=-1,0,1 (default)"
                          " with '=' because of the leading minus"),
)


def add_choice_options(group: Any) -> None:
    """--ops, --kernel-sizes, --se-ratios, --skips, --filter-mults, --layer-deltas: a block space with
    fewer (or other) choices per decision, e.g. `--ops mbconv3,mbconv6 --skips identity` for a space
    whose choices all share weights in a supernet."""
    for name, _, text in CHOICE_OPTIONS:
        group.add_argument(f"--{name.replace('_', '-')}", dest=name, metavar="LIST", help=text)


def choice_kwargs(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The option lists given on the command line, as keyword arguments of the `kind` space."""
    out: dict[str, Any] = {}
    for name, parse, _ in CHOICE_OPTIONS:
        text = getattr(args, name, None)
        if text is None:
            continue
        flag = f"--{name.replace('_', '-')}"
        if kind == "layerwise" and name != "ops":
            raise UsageError(f"{flag} is a --space mnasnet option: the layerwise space takes only --ops")
        items = [t.strip() for t in text.split(",")]
        if not all(items):
            raise UsageError(f"{flag} {text!r}: expected a comma-separated list with no empty items")
        try:
            values = [parse(t) for t in items]
        except ValueError:
            raise UsageError(f"{flag} {text!r}: expected comma-separated {parse.__name__}s") from None
        if len(set(values)) != len(values):
            raise UsageError(f"{flag} {text!r}: each choice once")
        out[name] = tuple(values)
    return out


SPACES = ("mnasnet", "layerwise", "nbmacro", "nb201", "darts")
CHOICE_NAMES = tuple(c[0] for c in CHOICE_OPTIONS)


def _skeleton_text(text: str) -> str:
    """--skeleton: a blank one is refused (it was taken for 'not given', and MobileNetV2's stages searched)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"empty skeleton: give a zoo network, one of {', '.join(ZOO)}, or leave"
                                         " --skeleton out for MobileNetV2's stages")
    return text.strip()


def add_skeleton_option(group: Any) -> None:
    """--skeleton: the layer-wise space on a zoo network's stages (`mnas.space.presets.skeleton_space`)."""
    group.add_argument("--skeleton", metavar="ZOO", type=_skeleton_text,
                       help="layerwise: the stages (filters, depth, stride), stem, head and activation of this zoo"
                            " network, e.g. mnasnet_b1 (scaled by --width-mult), instead of MobileNetV2's")


def add_family_space_options(group: Any) -> None:
    """--space and the cell spaces' macro settings (the block spaces use --width-mult, --head, --strides)."""
    group.add_argument("--space", choices=SPACES, default=None,  # None: not given (--supernet refuses space options)
                       help="mnasnet (default: factorized hierarchical blocks), layerwise (one op per layer),"
                            " nbmacro (NAS-Bench-Macro's layer-wise space), nb201 (NAS-Bench-201 cell),"
                            " darts (DARTS normal + reduction cell)")
    add_skeleton_option(group)
    group.add_argument("--cell-channels", type=positive_int,
                       help="nb201/darts: channels of the first stage (default 16)")
    group.add_argument("--cells-per-stage", type=positive_int, help="nb201: cells in each of the 3 stages (default 5)")
    group.add_argument("--cell-layers", type=positive_int, help="darts: cells in the network (default 8)")


def space_from_args(args: argparse.Namespace, num_classes: int, data_size: int) -> Any:
    """The search space the options describe for data of `num_classes` and `data_size` pixels: the
    `MnasNetSpace` by default, with `mnas search`'s rule for small images (width 0.35 and a 256-filter
    head up to 16 px); `--space layerwise` with the same width, head and strides; `--space nb201` /
    `darts` with the cell options."""
    from mnas.space import DartsSpace, LayerwiseSpace, MnasNetSpace, NB201Space

    check_space_options(args)
    kind = getattr(args, "space", None) or "mnasnet"
    size = args.input_size or data_size
    skeleton = getattr(args, "skeleton", None)
    if kind in ("nb201", "darts"):
        cell = {"channels": args.cell_channels} if getattr(args, "cell_channels", None) else {}
        try:
            if kind == "nb201":
                if getattr(args, "cells_per_stage", None):
                    cell["cells_per_stage"] = args.cells_per_stage
                return NB201Space(num_classes, size, **cell)
            if getattr(args, "cell_layers", None):
                cell["layers"] = args.cell_layers
            return DartsSpace(num_classes, size, **cell)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if kind == "nbmacro":
        return _nbmacro_space(args, num_classes, size)
    choices = choice_kwargs(args, kind)

    strides = None
    if args.strides:
        try:
            strides = [int(s) for s in args.strides.replace(" ", "").split(",")]
        except ValueError:
            raise UsageError(f"--strides {args.strides!r}: expected 8 comma-separated 1s and 2s") from None
    small = size <= 16
    width = args.width_mult or (0.35 if small else 1.0)
    head = args.head if args.head is not None else (256 if small else 1280)
    cls = LayerwiseSpace if kind == "layerwise" else MnasNetSpace
    try:
        if skeleton:
            from mnas.space.presets import skeleton_space

            return skeleton_space(skeleton, num_classes, size, width_mult=width, strides=strides,
                                  head_chs=args.head if args.head is not None else (256 if small else None), **choices)
        base = getattr(args, "layerwise_base", None) if kind == "layerwise" else None  # a resumed supernet's skeleton
        return cls(num_classes, size, width_mult=width, head_chs=head, strides=strides, **(base or {}), **choices)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def check_space_options(args: argparse.Namespace) -> None:
    """The refusals of `space_from_args` that need no data: a space option that does not apply to the
    chosen --space (e.g. --skeleton with --space nb201), or a --skeleton that is no zoo network. A
    command calls it before it refuses a missing option or loads anything, so that the option at fault is
    named first (`mnas search --space nb201 --skeleton X` said --target was missing)."""
    kind = getattr(args, "space", None) or "mnasnet"
    skeleton = getattr(args, "skeleton", None)
    if skeleton and kind != "layerwise":
        raise UsageError(f"--skeleton {skeleton} does not apply to --space {kind}: only the layerwise space takes a"
                         " skeleton; drop it or use --space layerwise")
    if skeleton and skeleton not in ZOO:
        base = skeleton.rsplit("_x", 1)[0] if is_zoo_name(skeleton) else None
        raise UsageError(f"--skeleton {skeleton!r}: give the base name and --width-mult, e.g. --skeleton {base}"
                         f" --width-mult {skeleton.rsplit('_x', 1)[1]}" if base in ZOO else
                         f"--skeleton {skeleton!r}: not a zoo network; give one of {', '.join(ZOO)}")
    if kind in ("nb201", "darts"):
        block_options = [f"--{n.replace('_', '-')}" for n in ("width_mult", "head", "strides", *CHOICE_NAMES)
                         if getattr(args, n, None)]
        if block_options:
            raise UsageError(f"{', '.join(block_options)}: block-space options do not apply to --space {kind}"
                             " (use --cell-channels, --cells-per-stage, --cell-layers)")
        if kind == "nb201" and getattr(args, "cell_layers", None):
            raise UsageError("--cell-layers is for --space darts: NB201 takes --cells-per-stage")
        if kind == "darts" and getattr(args, "cells_per_stage", None):
            raise UsageError("--cells-per-stage is for --space nb201: DARTS takes --cell-layers")
        return
    for name in ("cell_channels", "cells_per_stage", "cell_layers"):
        if getattr(args, name, None):
            raise UsageError(f"--{name.replace('_', '-')} is a cell-space option: add --space nb201 or --space darts")
    if kind == "nbmacro":
        fixed = [f"--{n.replace('_', '-')}" for n in ("head", "strides", *CHOICE_NAMES) if getattr(args, n, None)]
        if fixed:
            raise UsageError(f"{', '.join(fixed)}: --space nbmacro is NAS-Bench-Macro's fixed space (only --width-mult"
                             " and --input-size apply); use --space layerwise for your own")
        return
    choice_kwargs(args, kind)  # --kernel-sizes with --space layerwise, a malformed list


def _nbmacro_space(args: argparse.Namespace, num_classes: int, size: int) -> Any:
    """NAS-Bench-Macro's space (`mnas.space.presets`): only --width-mult and --input-size apply
    (`check_space_options` refuses the others)."""
    from mnas.space.presets import nas_bench_macro_space

    try:
        return nas_bench_macro_space(num_classes, size, width_mult=args.width_mult or 1.0)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def resolve_arch(text: str) -> Arch:
    """ARCH on the command line: a zoo name, a JSON file, or a block-string list."""
    text = text.strip()
    if is_zoo_name(text):
        return get_arch(text)
    path = Path(text)
    if text.endswith(".json") or (len(text) < 4096 and "_" not in path.name and path.is_file()):
        if not path.is_file():
            raise UsageError(f"architecture file not found: {text}")
        if path.stat().st_size > MAX_ARCH_FILE:
            raise UsageError(f"{text}: {path.stat().st_size:,} bytes is not an architecture file (those are a few KB;"
                             f" at most {MAX_ARCH_FILE // 2**20} MiB)")
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and "arch" in data:  # what `mnas export --format json` writes
                if not isinstance(data["arch"], str):
                    raise ValueError(f"'arch' must be the architecture's text, got {type(data['arch']).__name__}")
                return as_arch(data["arch"])
            return as_arch(data)  # a family's JSON dict ({"family": ...}) or a block chain's
        except json.JSONDecodeError as exc:
            raise UsageError(f"{text}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except RecursionError:
            raise UsageError(f"{text}: JSON nested too deeply to be an architecture (a few levels are): check the"
                             " file") from None
        except UnicodeDecodeError:
            raise UsageError(f"{text}: not a text file: expected architecture JSON") from None
        except ValueError as exc:
            raise UsageError(f"{text}: {exc}") from None
    try:
        return as_arch(text)
    except ValueError as exc:
        if str(exc).startswith("unknown model"):  # a mistyped zoo name: the message suggests the nearest
            raise UsageError(str(exc)) from None
        raise UsageError(f"bad ARCH {text[:60]!r}: {exc} (expected a zoo name, a JSON file or block strings)") from None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], file=None) -> None:
    """Print rows as an aligned plain-text table (header, then one line per row)."""
    file = file or sys.stdout
    cells = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=file)


def load_tables(paths: list[str], what: str) -> dict[str, Any]:
    """Lookup tables by their 'runtime/precision' label (UsageError for fewer than two, a file given
    twice, a folder or a missing file; ValueError for one that is not a table)."""
    from mnas.latency import LookupTable
    from mnas.latency.ranking import label_of

    if len(paths) < 2:
        raise UsageError(f"{what} needs at least two tables (say an fp32 and an int8 table of one space)")
    tables: dict[str, Any] = {}
    seen: set[Path] = set()
    for path in paths:
        check_lut_file(path, "LUT")
        if Path(path).resolve() in seen:
            raise UsageError(f"{path} is given twice: name each table once")
        seen.add(Path(path).resolve())
        table = LookupTable.load(path)
        label = label_of(table)
        tables[label if label not in tables else f"{label} ({path})"] = table
    return tables
