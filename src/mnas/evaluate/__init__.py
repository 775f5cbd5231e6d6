"""Layer 5: evaluators — the one place that combines model, latency, training (or a supernet) and
reward inputs for a candidate. Every evaluator implements `Evaluator` (see its contract):

* `ProxyEvaluator(data, latency, proxy)`: latency measured in the driver on a backend (one device,
  measurements serialised), accuracy from proxy training wherever the executor runs it;
* `UserEvaluator(fn)`: a user's `callable(arch) -> {"accuracy", "latency_ms", ...}` (a tabular
  benchmark, other tasks);
* the supernet evaluator in `mnas.evaluate.supernet` (inherited accuracy, recorded as such).

`as_evaluator` turns a plain callable into a `UserEvaluator`. Importing this package does not import
torch; training does, in the worker.
"""

from __future__ import annotations

from typing import Any

from mnas.evaluate.base import RESULT_KEYS, Evaluator, check_result, trial_seed
from mnas.evaluate.proxy import ProxyEvaluator, resolve_reference, train_candidate
from mnas.evaluate.user import UserEvaluator, check_user_result

__all__ = ["RESULT_KEYS", "Evaluator", "ProxyEvaluator", "UserEvaluator", "as_evaluator", "check_result",
           "check_user_result", "resolve_reference", "train_candidate", "trial_seed"]


def as_evaluator(obj: Any) -> Evaluator:
    """An `Evaluator` as is; a callable as a `UserEvaluator`; anything else is a ValueError."""
    if isinstance(obj, Evaluator):
        return obj
    if callable(obj) and not isinstance(obj, type):
        return UserEvaluator(obj)
    raise ValueError(f"expected an evaluator (a mnas.evaluate.Evaluator, or a callable(arch) -> dict), "
                     f"got {type(obj).__name__}")


def __getattr__(name: str) -> Any:  # the supernet evaluator on demand: it imports torch
    if name.startswith("Supernet"):
        from mnas.evaluate import supernet

        return getattr(supernet, name)
    raise AttributeError(f"module 'mnas.evaluate' has no attribute {name!r}")
