"""`mnas models`, `mnas arch show`, `mnas space sample`."""

from __future__ import annotations

import argparse

from mnas.cli._common import UsageError, emit_json, nonneg_int, positive_int, resolve_arch, table

DEFAULT_INPUT = 224


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the reference zoo with params and MACs")
    p.add_argument("--num-classes", type=positive_int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--input-size", type=positive_int, default=DEFAULT_INPUT, help="resolution for MACs (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_models)

    arch = sub.add_parser("arch", help="inspect an architecture").add_subparsers(dest="arch_command", metavar="ACTION")
    p = arch.add_parser("show", help="params, MACs and canonical string of an architecture")
    p.add_argument("arch", metavar="ARCH", help="zoo name, canonical string (blocks separated by commas or spaces) or JSON file")
    p.add_argument("--num-classes", type=positive_int, default=1000,
                   help="classifier outputs, for the parameter count (default 1000)")
    p.add_argument("--input-size", type=positive_int, default=DEFAULT_INPUT,
                   help="input resolution, for MACs and peak memory (default 224)")
    p.add_argument("--json", action="store_true", help="print one JSON document (with the block list)")
    p.set_defaults(handler=cmd_arch_show)

    space = sub.add_parser("space", help="the search space").add_subparsers(dest="space_command", metavar="ACTION")
    p = space.add_parser("sample", help="random architectures from the factorized MnasNet space")
    p.add_argument("--n", type=positive_int, default=5, help="how many (default 5)")
    p.add_argument("--seed", type=nonneg_int, default=0, help="random seed of the samples (default 0)")
    p.add_argument("--num-classes", type=positive_int, default=1000, help="classifier outputs (default 1000)")
    p.add_argument("--input-size", type=positive_int, default=DEFAULT_INPUT,
                   help="input resolution; the space adapts its strides to it (default 224)")
    p.add_argument("--width-mult", type=float, default=1.0, help="scale every filter count (default 1.0)")
    p.add_argument("--profile", action="store_true", help="also count params, MACs and peak activation memory")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=cmd_space_sample)


def _describe(name: str | None, arch, num_classes: int, input_size: int) -> dict:
    """Params and MACs of any family: a block chain's from the text alone (`arch_profile`, with peak
    memory), another family's from its analytic count, else from the built model (one forward pass)."""
    from mnas.models.profile import arch_profile
    from mnas.space import Arch, family_of

    row = {"name": name} if name else {}
    if isinstance(arch, Arch):
        prof = arch_profile(arch, input_size, num_classes)
        row.update(params=prof.params, macs=prof.macs, peak_memory=prof.peak_memory, input_size=input_size,
                   num_classes=num_classes, layers=arch.num_layers, arch=str(arch))
        return row
    family = family_of(arch)
    try:
        params, macs = family.count(arch, num_classes, 3, input_size)
    except NotImplementedError:  # a user's family without analytic counts: count the built network
        from mnas.models import build_model, count_macs, count_params

        model = build_model(arch, num_classes=num_classes)
        params, macs = count_params(model), count_macs(model, input_size)
    row.update(params=params, macs=macs, peak_memory=None, input_size=input_size, num_classes=num_classes,
               layers=None, family=family.name, arch=str(arch))
    return row


def cmd_models(args: argparse.Namespace) -> int:
    from mnas.space import ZOO_LISTING, get_arch

    rows = [_describe(n, get_arch(n), args.num_classes, args.input_size) for n in ZOO_LISTING]
    if args.json:
        emit_json({"models": rows})
        return 0
    for r in rows:
        r["params_fmt"], r["macs_fmt"] = f"{r['params']:,}", f"{r['macs'] / 1e6:.1f}M"
        r["mem_fmt"] = f"{r['peak_memory'] / 2**20:.2f} MiB"
    table(rows, [("model", "name"), ("params", "params_fmt"), (f"MACs@{args.input_size}", "macs_fmt"),
                 ("peak act. (fp32)", "mem_fmt"), ("arch", "arch")])
    return 0


def cmd_arch_show(args: argparse.Namespace) -> int:
    from mnas.models.profile import MAX_PARAMS

    arch = resolve_arch(args.arch)
    row = _describe(None, arch, args.num_classes, args.input_size)
    if row["params"] > MAX_PARAMS:  # what `latency measure`, `train` and `export` refuse is refused here too
        raise UsageError(f"architecture has {row['params']:,} parameters ({row['params'] * 4 / 1e9:,.0f} GB of float32),"
                         f" above the {MAX_PARAMS:,} this mnas builds: reduce its filters or expansion")
    if hasattr(arch, "blocks"):  # a block chain lists its blocks; other families are their text
        row["blocks"] = [str(b) for b in arch.blocks]
    if args.json:
        emit_json(row)
        return 0
    print(f"arch:    {row['arch']}")
    print(f"params:  {row['params']:,}  ({args.num_classes} classes)")
    print(f"MACs:    {row['macs'] / 1e6:.2f}M at {args.input_size}x{args.input_size}")
    if row["peak_memory"] is not None:
        print(f"memory:  {row['peak_memory'] / 2**20:.2f} MiB peak activations (float32, batch 1, inference)")
    if "blocks" in row:
        print(f"layers:  {row['layers']} in {len(arch.blocks)} blocks, "
              f"stem {arch.stem_chs} s{arch.stem_stride}, head {arch.head_chs}")
    else:
        print(f"family:  {row['family']}")
    return 0


def cmd_space_sample(args: argparse.Namespace) -> int:
    import numpy as np

    from mnas.space import MnasNetSpace

    space = MnasNetSpace(args.num_classes, args.input_size, width_mult=args.width_mult)
    rng = np.random.default_rng(args.seed)
    rows = []
    for _ in range(args.n):
        tokens = space.sample_tokens(rng)
        arch = space.decode(tokens)
        row = _describe(None, arch, args.num_classes, args.input_size) if args.profile else {"arch": str(arch)}
        row["tokens"] = tokens
        rows.append(row)
    if args.json:
        emit_json({"space": space.settings(), "size": space.size, "samples": rows})
        return 0
    print(f"# {space!r}")
    for r in rows:
        extra = (f"  params={r['params']:,} MACs={r['macs'] / 1e6:.1f}M peak={r['peak_memory'] / 2**20:.2f}MiB"
                 if args.profile else "")
        print(r["arch"] + extra)
    return 0
