"""Helpers shared by the sub-commands: errors, JSON output, argument types, ARCH resolution."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from mnas.space import Arch, as_arch, get_arch, is_zoo_name

__all__ = ["UsageError", "emit_json", "positive_float", "positive_int", "resolve_arch", "table"]


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


def resolve_arch(text: str) -> Arch:
    """ARCH on the command line: a zoo name, a JSON file, or a block-string list."""
    text = text.strip()
    if is_zoo_name(text):
        return get_arch(text)
    path = Path(text)
    if text.endswith(".json") or (len(text) < 4096 and "_" not in path.name and path.is_file()):
        if not path.is_file():
            raise UsageError(f"architecture file not found: {text}")
        try:
            data = json.loads(path.read_text())
            if isinstance(data, dict) and isinstance(data.get("arch"), str):
                return as_arch(data["arch"])  # what `mnas export --format json` writes
            return Arch.from_dict(data)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{text}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except ValueError as exc:
            raise UsageError(f"{text}: {exc}") from None
    try:
        return as_arch(text)
    except ValueError as exc:
        raise UsageError(f"bad ARCH {text[:60]!r}: {exc} (expected a zoo name, a JSON file or block strings)") from None


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], file=None) -> None:
    """Print rows as an aligned plain-text table (header, then one line per row)."""
    file = file or sys.stdout
    cells = [[h for h, _ in columns]] + [[str(r.get(k, "")) for _, k in columns] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(columns))]
    for line in cells:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip(), file=file)
