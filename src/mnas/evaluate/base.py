"""`Evaluator`: the contract every evaluator keeps, and the checks the search loop applies to results.

An evaluator turns an architecture into figures: accuracy, latency and whatever else it knows. The
search loop (`mnas.loop`) is the only caller; it runs the evaluator's job on an executor (in this
process, a process pool or Ray) and records the result in the study. `mnas.evaluate.testing` holds
the shared suite every evaluator passes.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

__all__ = ["RESULT_KEYS", "Evaluator", "check_result", "trial_seed"]

# Keys of a job's result the loop stores in trial columns; every other key goes to the trial's `extra`.
RESULT_KEYS = ("ok", "failure", "accuracy", "latency_ms", "params", "macs", "train_seconds", "latency_seconds")


class Evaluator:
    """Base class of every evaluator: proxy training (`ProxyEvaluator`), a user's callable
    (`UserEvaluator`), a supernet (`mnas.evaluate.supernet`), or your own.

    Contract (`mnas.evaluate.testing.EvaluatorTestSuite` checks it):

    * `job(arch, seed)` returns `(fn, args)`; the executor calls `fn(*args)` wherever it runs
      (for a process pool or Ray, `fn` and `args` must pickle: define `fn` at module level). It
      returns a mapping with "accuracy" (a fraction in [0, 1]) and, unless `latency_in_driver`,
      "latency_ms" (> 0). Optional: "params", "macs", "train_seconds"; ``ok=False`` with "failure"
      makes a failed trial with that reason; other keys are kept in the trial's `extra` (JSON values).
      NumPy numbers are fine. The same `(arch, seed)` should give the same figures.
    * `latency_in_driver = True`: the loop calls `measure_latency(arch) -> (ms, seconds spent,
      details)` in the driver before the job, one candidate at a time (a device is one serialised
      resource); that latency is the trial's, whatever the job returns.
    * `accuracy_source` names how accuracy is obtained ("proxy", "user", "supernet", ...): the
      loop records it on every trial, so inherited accuracy is never mistaken for trained accuracy.
    * `identity()` is what must not change when a study is resumed (a JSON dict); `describe()`
      is what is recorded (runtime versions, `accuracy_source`) but not compared.
    * An exception from `fn` or from `measure_latency` fails that trial with its message, except a
      `ConnectionError` from `measure_latency`: the device is gone, so the search stops (and
      resumes where it stopped) instead of failing every remaining trial.
    """

    accuracy_source: ClassVar[str] = "custom"
    latency_in_driver: ClassVar[bool] = False

    def job(self, arch: Any, seed: int) -> tuple[Callable[..., Mapping[str, Any]], tuple]:
        """The function (and its arguments) that evaluates `arch` with training seed `seed`."""
        raise NotImplementedError

    def measure_latency(self, arch: Any) -> tuple[float, float, dict[str, Any]]:
        """(median ms, seconds spent measuring, JSON details); only called when `latency_in_driver`."""
        raise NotImplementedError(f"{type(self).__name__} returns latency from its job; it does not measure it")

    def check_space(self, space: Any) -> None:
        """ValueError if this evaluator cannot evaluate `space`'s architectures (e.g. another
        number of classes than its data). Called once, before a search starts."""

    def reference_latency(self, name: str, space: Any) -> float:
        """Latency (ms) of a zoo model at `space`'s resolution, for targets such as "mobilenetv2"."""
        raise ValueError(f"{type(self).__name__} cannot measure a reference model {name!r}: give a target in ms")

    def identity(self) -> dict[str, Any]:
        return {"kind": type(self).__qualname__}

    def describe(self) -> dict[str, Any]:
        return {**self.identity(), "accuracy_source": self.accuracy_source}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(accuracy_source={self.accuracy_source!r})"


def trial_seed(study_seed: int, arch: str) -> int:
    """The training seed of `arch` in a study seeded `study_seed`: the same architecture gets the
    same seed in every search with that seed, whatever its trial number (resumes included)."""
    digest = hashlib.sha256(f"{int(study_seed)}:{arch}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def check_result(result: Any, *, need_latency: bool = True, who: str = "the evaluator") -> dict[str, Any]:
    """Validate a job's result; a plain dict with float figures, or ValueError saying what is wrong.

    Accuracy must be a fraction in [0, 1] and latency milliseconds > 0 (finite numbers: Python or
    NumPy). A result with ``ok=False`` is a failure and only needs its reason."""
    if not isinstance(result, Mapping):
        raise ValueError(f"{who} returned {type(result).__name__}: expected a dict with 'accuracy' and 'latency_ms'")
    out = dict(result)
    if not out.get("ok", True):
        out["ok"] = False
        return out
    checks = [("accuracy", 0.0, 1.0)] + ([("latency_ms", 0.0, math.inf)] if need_latency else [])
    for key, lo, hi in checks:
        value = out.get(key)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ValueError(f"{who}'s {key!r} is {value!r}: expected a finite number")
        value = float(value)
        if not lo <= value <= hi or (key == "latency_ms" and value <= 0):
            raise ValueError(f"{who}'s {key!r} = {value!r} is out of range: expected "
                             + ("a fraction in [0, 1]" if key == "accuracy" else "milliseconds > 0"))
        out[key] = value
    for key in ("params", "macs"):
        if isinstance(out.get(key), numbers.Integral) and not isinstance(out[key], bool):
            out[key] = int(out[key])
    for key in ("train_seconds", "latency_seconds"):
        if isinstance(out.get(key), numbers.Real) and not isinstance(out[key], bool):
            out[key] = float(out[key])
    out["ok"] = True
    return out
