"""`ProgressPrinter`: one plain line per finished trial, for logs, `nohup` and notebooks."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mnas.loop.runner import SearchEvent

__all__ = ["ProgressPrinter"]


class ProgressPrinter:
    """A search callback that prints a line for every finished trial (complete or failed) to `file`
    (default stderr), and, at most every `every` seconds, one for architectures answered from the
    study. Lines are flushed at once, so they show in a log file while the search runs::

        [  3/30] trial 2 complete  acc 91.2%  lat 1.234 ms  reward 0.8812 | best 0.8812 (trial 2)  failed 0  1.2 min
    """

    def __init__(self, file: TextIO | None = None, every: float = 30.0) -> None:
        self.file = file
        self.every = float(every)
        self._last_repeat = 0.0
        self._best: tuple[float, int] | None = None

    def __call__(self, event: SearchEvent) -> None:
        if event.kind == "start":
            return
        if event.kind == "repeat":
            if time.monotonic() - self._last_repeat < self.every:
                return
            self._last_repeat = time.monotonic()
        trial = event.trial
        if event.kind == "complete" and trial is not None and trial.reward is not None:
            if self._best is None or trial.reward > self._best[0]:
                self._best = (trial.reward, trial.number)
        states = event.study.storage
        done = states.count_trials(("complete", "failed"))
        failed = states.count_trials("failed")
        total = f"/{event.budget.trials}" if event.budget.trials else ""
        head = f"[{done:>3}{total}]"
        if trial is None:
            text = event.kind
        elif event.kind == "failed":
            reason = (trial.failure or "").splitlines()[0][:160] if trial.failure else ""
            text = f"trial {trial.number} failed: {reason}"
        else:
            verb = "complete" if event.kind == "complete" else "repeat of"
            text = (f"trial {trial.number} {verb}  acc {100 * trial.accuracy:.1f}%  lat {trial.latency_ms:.4g} ms  "
                    f"reward {trial.reward:.4f}")
        best = f"best {self._best[0]:.4f} (trial {self._best[1]})" if self._best else "best -"
        print(f"{head} {text} | {best}  failed {failed}  running {event.running}  {event.elapsed / 60:.1f} min",
              file=self.file or sys.stderr, flush=True)

    def __repr__(self) -> str:
        return f"ProgressPrinter(every={self.every:g})"


