"""`mnas search --strategy darts|gdas|fbnet`: the gradient searches of `mnas.loop.gradient_study` on
the command line — their one-line refusals, fbnet's two latency sources (the --lut table in the
loss, --url or --backend to measure), and the run with its per-epoch progress."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from mnas.cli._common import CHOICE_NAMES, UsageError, check_lut_file
from mnas.cli._report import device_error, report_study
from mnas.cli._resume import resume_command

__all__ = ["GRADIENT", "check_gradient_args", "checkpoint_space", "search_gradient"]

GRADIENT = ("darts", "gdas", "fbnet")  # one relaxed network trained, one architecture derived
# The space options a --supernet checkpoint fixes (as mnas.cli.search_cmd's).
_SPACE_OPTIONS = ("space", "width_mult", "head", "strides", "skeleton", "input_size", "cell_channels", "cells_per_stage",
                  "cell_layers",
                  *CHOICE_NAMES)


def check_gradient_args(args: argparse.Namespace, resuming: bool) -> None:
    """One-line refusals for --strategy darts/gdas/fbnet with options that do not go with it (exit 2)."""
    cells = args.space in ("nb201", "darts")
    if args.strategy in ("darts", "gdas"):
        if not cells:
            raise UsageError(f"--strategy {args.strategy} searches cells: add --space nb201 or --space darts"
                             " (for the block spaces use --strategy fbnet)")
        if args.supernet:
            raise UsageError(f"--strategy {args.strategy} trains its own search network: drop --supernet")
    elif cells:
        raise UsageError(f"--strategy fbnet searches the block spaces (--space mnasnet or layerwise): on --space "
                         f"{args.space} use --strategy darts or gdas")
    elif args.reward == "accuracy" or not (args.target or resuming):
        raise UsageError("--strategy fbnet steers toward a latency target: give --target (e.g. 5ms or mobilenetv2)"
                         " with --reward soft, hard or absolute")
    elif not args.lut:
        raise UsageError("--strategy fbnet needs --lut, the target device's lookup table for this space (mnas latency"
                         " build-lut); the derived architecture is measured on --url or --backend")
    else:
        check_lut_file(args.lut)
    given = [flag for flag, on in (("--trials", args.trials), ("--hours", args.hours),
                                   ("--executor", args.executor != "local")) if on]
    if given:
        raise UsageError(f"--strategy {args.strategy} trains one network in this process and derives one architecture:"
                         f" drop {', '.join(given)} (its length is --strategy-opt epochs=N)")


def check_supernet_file(args: argparse.Namespace) -> None:
    """--supernet searches the checkpoint's own space: space options conflict, and the file must exist."""
    given = [f"--{name.replace('_', '-')}" for name in _SPACE_OPTIONS if getattr(args, name, None) is not None]
    if given:
        raise UsageError(f"--supernet searches the checkpoint's own space: drop {', '.join(given)}")
    if not Path(args.supernet).is_file():
        raise UsageError(f"--supernet {args.supernet}: file not found (train one with 'mnas supernet train')")


def checkpoint_space(args: argparse.Namespace) -> Any:
    """The space of the --supernet checkpoint (fbnet searches it); space options conflict with it."""
    check_supernet_file(args)
    from mnas.oneshot.train import load_supernet

    try:
        return load_supernet(args.supernet)[0].space
    except (ValueError, KeyError) as exc:
        raise UsageError(f"--supernet {args.supernet}: {str(exc).splitlines()[0]}") from None


def search_gradient(args: argparse.Namespace, space: Any, data: Any, latency: Any, reward: Any, storage: str,
                     options: dict[str, Any], resuming: bool) -> int:
    """--strategy darts/gdas/fbnet: one gradient search whose derived architecture becomes the study's trial."""
    import torch

    from mnas.loop.gradient_study import GradientProgress, checkpoint_dir, gradient_study

    if reward is None:  # resuming without --target: the study's own reward
        from mnas.objectives import Reward
        from mnas.study import SQLiteStorage

        with SQLiteStorage(Path(storage.removeprefix("sqlite:///")), read_only=True) as existing:
            reward = Reward.from_dict(existing.get_meta("config")["reward"])
    torch.set_num_threads(args.threads)
    budget = ("epochs", "train_images", "recipe", "channels", "nb201_cells", "tau_max")  # what the note's figures fixed
    if args.strategy == "gdas" and not any(k in options for k in budget) and not (args.quiet or args.json):
        print("note: at the CPU default GDAS's cells did not beat random cells of the space (issue 22: its alphas drift"
              " to parameter-free ops; docs/design/darts.md); --strategy darts did, by 0.026 over the median",
              file=sys.stderr)
    progress = None if (args.quiet or args.json) else GradientProgress(args.strategy, file=sys.stderr)
    started = time.monotonic()
    try:
        table = None
        if args.strategy == "fbnet":
            from mnas.latency import LookupTable

            table = LookupTable.load(args.lut)
        study = gradient_study(space, data, reward, latency, strategy=args.strategy, options=options, storage=storage,
                               seed=args.seed, supernet=args.supernet, table=table, progress=progress)
    except KeyboardInterrupt:
        print(f"\nmnas: interrupted; the search is checkpointed in {checkpoint_dir(storage, args.strategy)} after its last"
              f" finished epoch. Resume with: {resume_command('search', '--storage', storage)}", file=sys.stderr)
        return 130
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    except ConnectionError as exc:
        raise device_error(args, exc) from None
    return report_study(study, storage, time.monotonic() - started, args.json)
