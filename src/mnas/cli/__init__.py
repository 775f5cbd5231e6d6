"""The `mnas` command. Each sub-command lives in its own module with a `register(subparsers)`.

Exit codes: 0 success, 2 bad input (one line on stderr naming what was wrong), 1 internal failure.
With ``--json`` a command prints exactly one JSON document on stdout; logs go to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from mnas import __version__
from mnas.cli._common import UsageError

__all__ = ["main"]

_COMMAND_MODULES = ("models", "latency", "device", "train", "search", "report", "export", "instance", "supernet")


class _DefaultsShown(argparse.HelpFormatter):
    """An option's help says its default when its own text does not (a default that is not None/False)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or not text or "default" in text.lower() or "%(default)" in text
                or default is None or isinstance(default, bool) or default is argparse.SUPPRESS or default == []):
            return text
        return f"{text} (default %(default)s)"


class _RawDescriptionDefaultsShown(_DefaultsShown, argparse.RawDescriptionHelpFormatter):
    pass


_FORMATTERS = {argparse.HelpFormatter: _DefaultsShown, argparse.RawDescriptionHelpFormatter: _RawDescriptionDefaultsShown}


class _Parser(argparse.ArgumentParser):
    """Bad arguments: one line naming what was wrong, exit 2 (no usage dump). Sub-command parsers are
    `_Parser`s too, and every one's help shows the defaults its text leaves out."""

    def __init__(self, *args, formatter_class: type = argparse.HelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=_FORMATTERS.get(formatter_class, formatter_class), **kwargs)

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def _parse_optional(self, arg_string: str):  # type: ignore[override]
        # argparse counts only '-3' and '-.5' as values; '-3ms' or '-1,0,1' it took for an unknown option, so
        # '--target -3ms' failed with "expected one argument" instead of the option's own refusal. No mnas
        # option starts with a digit: a minus and a digit is a value, which the option's type then judges.
        if _MINUS_VALUE.match(arg_string):
            return None
        return super()._parse_optional(arg_string)


_MINUS_VALUE = re.compile(r"-\.?\d")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mnas", description="Platform-aware neural architecture search (MnasNet) on your device, for your data.")
    parser.add_argument("--version", action="version", version=f"mnas {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"mnas.cli.{name}_cmd").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ValueError, FileNotFoundError, ImportError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"mnas: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: say what broke, exit 1
        print(f"mnas: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
