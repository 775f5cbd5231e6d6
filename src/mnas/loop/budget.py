"""How much a search may spend: trials in the study and hours of this run."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Budget"]


@dataclass(frozen=True)
class Budget:
    """`trials`: total trials in the study (a resumed search continues up to it; failed trials count).
    `hours`: wall clock of this run; no candidate is started that the median trial time says would
    not finish in time, and running candidates are always finished, never cut short.
    `max_repeats`: after this many consecutive proposals of already-evaluated architectures (a
    converged controller; they are answered from the study and cost nothing else), the loop
    evaluates architectures the study has not seen, drawn at random, until the strategy proposes a
    new one itself; it stops early only when no unseen architecture can be found."""

    trials: int | None = 50
    hours: float | None = None
    max_repeats: int = 200

    def __post_init__(self) -> None:
        if self.trials is None and self.hours is None:
            raise ValueError("a budget needs trials, hours or both")
        if self.trials is not None and (isinstance(self.trials, bool) or not isinstance(self.trials, int)
                                        or self.trials < 1):
            raise ValueError(f"budget trials={self.trials!r}: expected a positive integer")
        if self.hours is not None and (isinstance(self.hours, bool) or not isinstance(self.hours, (int, float))
                                       or not math.isfinite(self.hours) or self.hours <= 0):
            raise ValueError(f"budget hours={self.hours!r}: expected a positive number")
        if isinstance(self.max_repeats, bool) or not isinstance(self.max_repeats, int) or self.max_repeats < 1:
            raise ValueError(f"budget max_repeats={self.max_repeats!r}: expected a positive integer")

    @property
    def seconds(self) -> float:
        return math.inf if self.hours is None else self.hours * 3600.0

    def to_dict(self) -> dict:
        return {"trials": self.trials, "hours": self.hours, "max_repeats": self.max_repeats}

    @classmethod
    def from_dict(cls, data: dict) -> Budget:
        """Inverse of `to_dict` (a stored study's budget)."""
        if not isinstance(data, dict):
            raise ValueError(f"budget: expected a dict with trials, hours, max_repeats, got {type(data).__name__}")
        return cls(trials=data.get("trials"), hours=data.get("hours"), max_repeats=data.get("max_repeats", 200))
