"""Progress for long work, on a terminal and off it (a log file, `nohup`, CI): the rate, the time
left, and plain lines at a modest interval where a bar cannot redraw. Layer 0: imports nothing from mnas.

The interval between plain lines is `MNAS_PROGRESS_EVERY` seconds (default 30)."""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

__all__ = ["EVERY_ENV", "CountLines", "Throttle", "format_duration", "progress_every", "rate_and_left"]

EVERY_ENV = "MNAS_PROGRESS_EVERY"


def progress_every(default: float = 30.0) -> float:
    """Seconds between plain progress lines: `$MNAS_PROGRESS_EVERY` when it is a number >= 0, else `default`."""
    try:
        value = float(os.environ.get(EVERY_ENV, ""))
    except ValueError:
        return default
    return value if math.isfinite(value) and value >= 0 else default


def format_duration(seconds: float) -> str:
    """'40 s', '3.5 min', '2.1 h'."""
    if not math.isfinite(seconds):
        return "?"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def rate_and_left(done: int, total: int | None, elapsed: float, unit: str = "") -> str:
    """'3.2 layers/s, about 4.5 min left' from `done` items in `elapsed` seconds of this run."""
    if done <= 0 or elapsed <= 0:
        return "rate: measuring"
    per_second = done / elapsed
    unit = f" {unit}" if unit else ""
    rate = f"{per_second:.2f}{unit}/s" if per_second >= 0.1 else f"{per_second * 60:.2f}{unit}/min"
    if not total or done >= total:
        return rate
    return f"{rate}, about {format_duration((total - done) / per_second)} left"


class Throttle:
    """`due()` is True the first time and then at most once every `every` seconds."""

    def __init__(self, every: float | None = None) -> None:
        self.every = progress_every() if every is None else float(every)
        self.last: float | None = None

    def due(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        return True


class CountLines:
    """A `progress(done, total, what)` callback writing plain lines to `file` (default stderr): the
    first call, then at most one line every `every` seconds, and the last; each with the percentage,
    the rate and the time left of this run::

        build-lut: 120/1481 (8.1%)  3.20 layers/s, about 7.1 min left  r1_k3_s11_e6_i16_o24
    """

    def __init__(self, label: str, unit: str = "", file: TextIO | None = None, every: float | None = None) -> None:
        self.label, self.unit, self.file = label, unit, file
        self.throttle = Throttle(every)
        self.started = time.monotonic()
        self.first_done: int | None = None  # what was done before this run (a resumed table)

    def __call__(self, done: int, total: int | None, what: str = "") -> None:
        if self.first_done is None:
            self.first_done = done
        finished = total is not None and done >= total
        if not (self.throttle.due() or finished):
            return
        pct = f" ({100 * done / total:.1f}%)" if total else ""
        figure = f"{done}/{total}" if total else f"{done}"
        speed = rate_and_left(done - self.first_done, None if total is None else total - self.first_done,
                              time.monotonic() - self.started, self.unit)
        tail = f"  {what[:60]}" if what else ""
        print(f"{self.label}: {figure}{pct}  {speed}{tail}", file=self.file or sys.stderr, flush=True)
