"""Progress display for full training: a rich progress bar on stderr, or one line per epoch."""

from __future__ import annotations

import sys
from typing import Any

from mnas.train.full import Progress

__all__ = ["ConsoleProgress", "format_epoch"]


def format_epoch(m: dict[str, Any], epochs: int) -> str:
    val = f"  val acc {m['val_accuracy']:.4f}" if "val_accuracy" in m else ""
    return (f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}  train acc {m['train_accuracy']:.4f}{val}"
            f"  {m['images_per_second']:.1f} img/s  lr {m['lr']:.4g}  {m['seconds']:.0f}s")


class ConsoleProgress(Progress):
    """A rich bar (loss, accuracy, images/s) when stderr is a terminal and rich is installed; a line per
    epoch on stderr always, so logs of background runs show progress too."""

    def __init__(self, enabled: bool = True):
        self.enabled, self.bar, self.task, self.epochs = enabled, None, None, 0
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
        self.epochs = epochs
        if self.bar is not None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("", total=steps, stats="")
            self.bar.reset(self.task, total=steps, description=f"epoch {epoch + 1}/{epochs}", stats="")

    def step(self, loss: float, accuracy: float, images_per_second: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, advance=1,
                            stats=f"loss {loss:.3f} acc {accuracy:.3f} {images_per_second:.0f} img/s")

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
