"""Progress of a counted job (layers measured, architectures validated) for the commands: a rich bar
with the rate and time left on a terminal; plain lines at a modest interval off it (logs, nohup, CI)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from mnas._util.progress import CountLines, progress_every

__all__ = ["Phases", "count_progress"]

ProgressFn = Callable[[int, int, str], None]


class Phases:
    """`phases("measuring the target ...")` announces a phase of a long command on stderr — once it has
    lasted `delay` seconds (default: 10, or $MNAS_PROGRESS_EVERY when that is shorter), so that a fast
    phase, or bad input refused at once with its one-line error, prints nothing more. The next call,
    `end()` or leaving the `with` block ends the phase."""

    def __init__(self, quiet: bool = False, delay: float | None = None, file: TextIO | None = None) -> None:
        self.quiet, self.file = quiet, file
        self.delay = min(10.0, progress_every()) if delay is None else delay
        self.timer: threading.Timer | None = None

    def __call__(self, text: str) -> None:
        self.end()
        if self.quiet:
            return
        if self.delay <= 0:
            self._print(text)
            return
        self.timer = threading.Timer(self.delay, self._print, (text,))
        self.timer.daemon = True
        self.timer.start()

    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stderr, flush=True)

    def end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __enter__(self) -> Phases:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


@contextmanager
def count_progress(label: str, unit: str = "", quiet: bool = False) -> Iterator[ProgressFn]:
    """A callback progress(done, total, what): a bar when stderr is a terminal and rich is installed,
    else `mnas._util.progress.CountLines` (every $MNAS_PROGRESS_EVERY seconds, default 30)."""
    if quiet:
        yield lambda done, total, what="": None
        return
    if not sys.stderr.isatty():
        yield CountLines(label, unit)
        return
    try:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
        from rich.text import Text
    except ImportError:
        yield CountLines(label, unit)
        return

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            speed = task.speed
            if not speed:
                return Text("")
            return Text(f"{speed:.2f} {unit}/s" if speed >= 0.1 else f"{speed * 60:.2f} {unit}/min")

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), Rate(), TimeRemainingColumn(),
               TextColumn("{task.fields[what]}"))
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=None, what="")

        def update(done: int, total: int, what: str = "") -> None:
            bar.update(task, completed=done, total=total, what=what[:40])
        yield update
