"""`ProgressPrinter`: one plain line per finished trial, with the rate and the time left, for logs,
`nohup` and notebooks."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from mnas._util.progress import format_duration
from mnas.loop.runner import SearchEvent

__all__ = ["ProgressPrinter"]


class ProgressPrinter:
    """A search callback that prints a line for every finished trial (complete or failed) to `file`
    (default stderr), with this run's rate and the time left by the budget; a line when the run's
    first trial starts; and, at most every `every` seconds, one for architectures answered from the
    study. Lines are flushed at once, so they show in a log file while the search runs::

        [  3/30] trial 2 complete  acc 91.2%  lat 1.234 ms  reward 0.8812 | best 0.8812 (trial 2)  failed 0
            running 0  1.2 min  2.5 trials/min, about 11 min left
    """

    def __init__(self, file: TextIO | None = None, every: float = 30.0) -> None:
        self.file = file
        self.every = float(every)
        self._last_repeat = 0.0
        self._best: tuple[float, int] | None = None
        self._done_before: int | None = None  # trials finished before this run (a resumed study)
        self.last_line = time.monotonic()
        self._announced = False

    def _print(self, text: str) -> None:
        print(text, file=self.file or sys.stderr, flush=True)
        self.last_line = time.monotonic()

    def __call__(self, event: SearchEvent) -> None:
        states = event.study.storage
        if self._done_before is None:
            self._done_before = states.count_trials(("complete", "failed")) - (event.kind in ("complete", "failed"))
        if event.kind == "start":
            if not self._announced and event.trial is not None:
                self._announced = True
                total = f"/{event.budget.trials}" if event.budget.trials else ""
                self._print(f"[{self._done_before:>3}{total}] trial {event.trial.number} started: training, then latency;"
                            " a line as each trial finishes")
            return
        if event.kind == "repeat":
            if time.monotonic() - self._last_repeat < self.every:
                return
            self._last_repeat = time.monotonic()
        trial = event.trial
        if event.kind == "complete" and trial is not None and trial.reward is not None:
            if self._best is None or trial.reward > self._best[0]:
                self._best = (trial.reward, trial.number)
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
            score = trial.score_text() if trial.likelihood_scored else f"acc {100 * trial.accuracy:.1f}%"
            text = f"trial {trial.number} {verb}  {score}  lat {trial.latency_ms:.4g} ms  reward {trial.reward:.4f}"
        best = f"best {self._best[0]:.4f} (trial {self._best[1]})" if self._best else "best -"
        self._print(f"{head} {text} | {best}  failed {failed}  running {event.running}  {event.elapsed / 60:.1f} min"
                    f"  {self.rate(event, done)}")

    def rate(self, event: SearchEvent, done: int) -> str:
        """'2.5 trials/min, about 11 min left' from this run's finished trials and the budget."""
        ran = done - (self._done_before or 0)
        if ran <= 0 or event.elapsed <= 0:
            return "rate: first trial running"
        per_min = 60 * ran / event.elapsed
        left = []
        if event.budget.trials:
            left.append(max(0, event.budget.trials - done) / per_min * 60)
        if event.budget.hours is not None:
            left.append(max(0.0, event.budget.seconds - event.elapsed))
        when = f", about {format_duration(min(left))} left" if left else ""
        return f"{per_min:.2f} trials/min{when}"

    def __repr__(self) -> str:
        return f"ProgressPrinter(every={self.every:g})"


