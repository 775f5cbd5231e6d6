"""Progress display for full training: a rich progress bar on stderr, or plain lines (one per epoch,
and within an epoch one every $MNAS_PROGRESS_EVERY seconds, default 30) when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import Any

from mnas._util.progress import Throttle, format_duration
from mnas.train.full import Progress

__all__ = ["ConsoleProgress", "format_epoch"]


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    val = f"  val acc {m['val_accuracy']:.4f}" if "val_accuracy" in m else ""
    return (f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  train acc {m['train_accuracy']:.4f}{val}"
            f"  {m['images_per_second']:.1f} img/s  lr {m['lr']:.4g}  {m['seconds']:.0f}s")


class ConsoleProgress(Progress):
    """A rich bar (loss, accuracy, images/s) when stderr is a terminal and rich is installed; a line per
    epoch on stderr always, so logs of background runs show progress too, and without the bar a line
    within an epoch every `every` seconds (default $MNAS_PROGRESS_EVERY or 30) with the rate and the
    epoch's time left."""

    def __init__(self, enabled: bool = True, every: float | None = None):
        self.enabled, self.bar, self.task, self.epochs = enabled, None, None, 0
        self.throttle, self.epoch, self.steps, self.done, self.started = Throttle(every), 0, 0, 0, time.monotonic()
        if enabled and sys.stderr.isatty():
            try:
                from rich.console import Console
                from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn
                from rich.progress import Progress as RichProgress
            except ImportError:
                return
            self.bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                    TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
                                    console=Console(stderr=True), transient=True)

    def start_epoch(self, epoch: int, epochs: int, steps: int) -> None:
        self.epochs, self.epoch, self.steps, self.done, self.started = epochs, epoch, steps, 0, time.monotonic()
        self.throttle.last = self.started  # the first line within an epoch comes after `every` seconds
        if self.bar is not None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("", total=steps, stats="")
            self.bar.reset(self.task, total=steps, description=f"epoch {epoch + 1}/{epochs}", stats="")

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            stats=f"loss {loss:.3f} acc {accuracy:.3f} {images_per_second:.0f} img/s")
        elif self.enabled and self.done < self.steps and self.throttle.due():
            elapsed = time.monotonic() - self.started
            left = format_duration(elapsed / self.done * (self.steps - self.done))
            print(f"  epoch {self.epoch + 1}/{self.epochs} step {self.done}/{self.steps}  loss {loss:.4f}"
                  f"  acc {accuracy:.4f}  {images_per_second:.1f} img/s  about {left} left in the epoch",
                  file=sys.stderr, flush=True)

    def end_epoch(self, metrics: dict[str, Any]) -> None:
        if not self.enabled:
            return
        line = format_epoch(metrics, self.epochs)
        if self.bar is not None:
            self.bar.console.print(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None and self.task is not None:
            self.bar.stop()
