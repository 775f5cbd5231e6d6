"""`UserEvaluator`: a user's `callable(arch) -> {"accuracy", "latency_ms", ...}` as an evaluator."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from mnas.evaluate.base import Evaluator, check_result
from mnas.space import Arch, as_arch

__all__ = ["UserEvaluator", "check_user_result"]


class UserEvaluator(Evaluator):
    """Wraps `fn(arch) -> {"accuracy", "latency_ms", ...}` (a tabular benchmark, your own training).
    It runs wherever the executor puts it: for a process pool or Ray, `fn` must pickle (define it at
    module level). `accuracy_source` is recorded on every trial ("user" unless you say otherwise,
    e.g. "tabular"). With `seed=True`, `fn` is called as `fn(arch, seed=...)`, the study's per-trial seed."""

    accuracy_source = "user"

    def __init__(self, fn: Callable[..., Mapping[str, Any]], *, accuracy_source: str = "user",
                 seed: bool = False) -> None:
        if not callable(fn):
            raise ValueError(f"UserEvaluator needs a callable(arch) -> dict, got {type(fn).__name__}")
        if not isinstance(accuracy_source, str) or not accuracy_source.strip():
            raise ValueError(f"accuracy_source={accuracy_source!r}: expected a short name such as 'user' or 'tabular'")
        self.fn, self.accuracy_source, self.pass_seed = fn, accuracy_source, bool(seed)

    def job(self, arch: Arch, seed: int | None = None) -> tuple[Callable[..., dict[str, Any]], tuple]:
        return _run_user_evaluator, (self.fn, str(arch), seed if self.pass_seed else None)

    def identity(self) -> dict[str, Any]:
        # The same dict as before evaluators were classes: studies made then still resume.
        return {"kind": "user", "callable": getattr(self.fn, "__qualname__", repr(self.fn))}

    def __repr__(self) -> str:
        return f"UserEvaluator({getattr(self.fn, '__qualname__', self.fn)!r}, accuracy_source={self.accuracy_source!r})"


def _run_user_evaluator(fn: Callable[..., Mapping[str, Any]], arch: str, seed: int | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    result = fn(as_arch(arch)) if seed is None else fn(as_arch(arch), seed=seed)
    result = check_user_result(result)
    result.setdefault("train_seconds", time.perf_counter() - started)
    return result


def check_user_result(result: Any) -> dict[str, Any]:
    """Validate what a user-defined evaluator returned; ValueError saying what is wrong."""
    return check_result(result, need_latency=True)
