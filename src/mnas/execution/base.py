"""`Executor`: the contract every executor keeps, and `InProcessExecutor`, the default.

Executors only run functions and hand back results: the search driver is the only writer of the
study. This package imports nothing from mnas above `_util` and never imports torch in the
driver's process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Any

__all__ = ["Executor", "InProcessExecutor", "WorkerDiedError"]

_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


class WorkerDiedError(RuntimeError):
    """The process running a task died (killed, segfault, out of memory) before it returned."""


class Executor:
    """Runs functions, possibly elsewhere, and returns `concurrent.futures.Future`s.

    Contract (every implementation; `mnas.execution.testing` checks it):

    * `submit(fn, *args, **kwargs)` returns a Future at once or after running `fn` (in-process);
      an exception raised by `fn` is captured in the Future, never raised by `submit`. Where `fn`
      runs in another process it and its arguments must pickle (define it at module level).
    * A worker that dies fails the Futures of the tasks it took down with `WorkerDiedError`; the
      executor recovers, so later submits work.
    * Results may complete in any order; `concurrent.futures.as_completed` and `wait` work.
    * `max_workers` is how many tasks run at once. `shutdown(cancel=True)` cancels tasks that
      have not started; submitting after `shutdown` is a RuntimeError. Calls come from one driver
      thread; Futures may complete (and run their callbacks) on other threads.
    """

    name = "executor"

    @property
    def max_workers(self) -> int:
        raise NotImplementedError

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        raise NotImplementedError

    def shutdown(self, cancel: bool = False, wait: bool = True) -> None:
        """Stop accepting work; cancel tasks not yet started if `cancel`; wait for the running
        ones if `wait`. Calling it again does nothing."""

    def describe(self) -> dict[str, Any]:
        """A JSON-friendly description for the study's metadata."""
        return {"executor": self.name, "max_workers": self.max_workers}

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        self.shutdown(cancel=exc_type is not None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(max_workers={self.max_workers})"


class InProcessExecutor(Executor):
    """Runs each function in the calling thread at submit time and returns a finished Future."""

    name = "local"

    def __init__(self) -> None:
        self._closed = False

    @property
    def max_workers(self) -> int:
        return 1

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        if self._closed:
            raise RuntimeError("cannot submit to an executor that was shut down")
        future: Future = Future()
        future.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # KeyboardInterrupt and SystemExit still stop the driver
            future.set_exception(exc)
        else:
            future.set_result(result)
        return future

    def shutdown(self, cancel: bool = False, wait: bool = True) -> None:
        self._closed = True


# -- shared by the executors that run tasks in other processes --------------------------------


def check_positive(name: str, value: Any, kind: type = int) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not value > 0:
        what = "a number > 0" if kind is float else "an integer >= 1"
        raise ValueError(f"{name}={value!r}: expected {what}")
    return value


def limit_threads(threads: int) -> None:
    """Worker side: cap the math libraries' threads through the environment, and torch's directly
    if it is installed (torch does not always follow OMP_NUM_THREADS). Imports torch in the worker
    only; the driver never calls this."""
    for var in _THREAD_ENV:
        os.environ[var] = str(threads)
    torch = sys.modules.get("torch")
    if torch is None and importlib.util.find_spec("torch") is not None:
        import torch
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def call_in_worker(fn: Callable[..., Any], args: tuple, kwargs: dict, threads: int) -> Any:
    """Worker side: run `fn(*args, **kwargs)` with at most `threads` math threads."""
    limit_threads(threads)
    return fn(*args, **kwargs)


class ChainedFuture(Future):
    """The Future handed to the driver, completed from another Future (a pool's or Ray's).

    Cancelling it succeeds only if `cancel_inner()` does, as with a stdlib Future: a task that
    already started is not cancelled.
    """

    def __init__(self, cancel_inner: Callable[[], bool]) -> None:
        super().__init__()
        self._cancel_inner = cancel_inner

    def cancel(self) -> bool:
        if self.done():
            return self.cancelled()
        if not self._cancel_inner():
            return False
        return super().cancel()

    def copy_from(self, inner: Future, translate: Callable[[BaseException], BaseException] | None = None) -> None:
        """Complete this Future as `inner` completed (call from `inner`'s done callback)."""
        try:
            if inner.cancelled():
                Future.cancel(self)
            elif (exc := inner.exception()) is not None:
                self.set_exception(translate(exc) if translate else exc)
            else:
                self.set_result(inner.result())
        except InvalidStateError:  # cancelled from the driver meanwhile
            pass

