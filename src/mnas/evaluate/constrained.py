"""`ConstrainedEvaluator`: hard limits on params, MACs and peak memory, checked before training.

A candidate whose analytic counts (`mnas.models.profile.arch_profile`, for block chains) break a
limit of `mnas.objectives.Constraints` is not trained: its job returns ``ok=False`` with the reason
("infeasible: params 2.1e+06 > limit 1.5e+06"), so the loop records a failed trial and tells the
strategy a None reward. A family the profile cannot count is evaluated as usual (the limit is
skipped with one warning). Feasible candidates' trials get the counts their job did not return
(params, MACs) and their peak memory (in `extra`). A latency limit is checked on the measured latency by `Study.best`
and the Pareto front, not here. The wrapper changes nothing else: identity, latency, accuracy source
are the wrapped evaluator's (the limits are part of the study's config, compared on resume).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from mnas.evaluate.base import Evaluator

__all__ = ["ConstrainedEvaluator", "pre_training_metrics"]

log = logging.getLogger(__name__)


def pre_training_metrics(arch: Any, input_size: int, num_classes: int, in_chans: int = 3) -> dict[str, float] | None:
    """{"params", "macs", "peak_memory"} of `arch` counted from its text, or None when its family
    has no analytic count (only MnasNet-style block chains, `mnas.space.Arch`, do today)."""
    from mnas.space import Arch

    if not isinstance(arch, Arch):
        return None
    from mnas.models.profile import arch_profile

    p = arch_profile(arch, input_size, num_classes, in_chans)
    return {"params": float(p.params), "macs": float(p.macs), "peak_memory": float(p.peak_memory)}


def _infeasible(reason: str, metrics: Mapping[str, float]) -> dict[str, Any]:
    return {"ok": False, "failure": reason, "params": int(metrics["params"]), "macs": int(metrics["macs"]),
            "peak_memory": int(metrics["peak_memory"]), "infeasible": True}


def _with_counts(fn: Callable[..., Mapping[str, Any]], args: tuple, metrics: Mapping[str, float]) -> dict[str, Any]:
    """Run the wrapped job and fill in the counts it did not return (a user's callable often returns none)."""
    result = dict(fn(*args))
    for key in ("params", "macs"):
        if result.get(key) is None:
            result[key] = int(metrics[key])
    result.setdefault("peak_memory", int(metrics["peak_memory"]))
    return result


class ConstrainedEvaluator(Evaluator):
    """`inner` with `constraints` (a `mnas.objectives.Constraints`) checked before each job, at
    `input_size` with `num_classes` and `in_chans` (the space's and data's)."""

    def __init__(self, inner: Evaluator, constraints: Any, input_size: int, num_classes: int, in_chans: int = 3) -> None:
        self.inner, self.constraints = inner, constraints
        self.input_size, self.num_classes, self.in_chans = int(input_size), int(num_classes), int(in_chans)
        self.accuracy_source = inner.accuracy_source
        self.latency_in_driver = inner.latency_in_driver
        self.unchecked = 0  # candidates whose family cannot be counted: evaluated without the limits

    def job(self, arch: Any, seed: int) -> tuple[Callable[..., Mapping[str, Any]], tuple]:
        metrics = pre_training_metrics(arch, self.input_size, self.num_classes, self.in_chans)
        if metrics is None:
            if not self.unchecked:
                log.warning("constraints: %s cannot be counted before training; its limits are not checked",
                            type(arch).__name__)
            self.unchecked += 1
        else:
            broken = {k: v for k, v in self.constraints.violations(metrics, partial=True).items() if v > 0}
            if broken:
                limits = self.constraints.limits
                reason = "infeasible: " + ", ".join(f"{k} {metrics[k]:.4g} > limit {limits[k]:.4g}" for k in broken)
                return _infeasible, (reason, metrics)
            fn, args = self.inner.job(arch, seed)
            return _with_counts, (fn, args, metrics)
        return self.inner.job(arch, seed)

    def measure_latency(self, arch: Any) -> tuple[float, float, dict[str, Any]]:
        return self.inner.measure_latency(arch)

    def check_space(self, space: Any) -> None:
        self.inner.check_space(space)

    def reference_latency(self, name: str, space: Any) -> float:
        return self.inner.reference_latency(name, space)

    def identity(self) -> dict[str, Any]:
        return self.inner.identity()

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "constraints": self.constraints.to_dict()}

    def __repr__(self) -> str:
        return f"ConstrainedEvaluator({self.inner!r}, {self.constraints})"
