"""The shared executor test suite, and the module-level task functions it submits (they live in
the package so that pool and Ray workers can import them).

    class TestMyExecutor(ExecutorTestSuite):
        @pytest.fixture
        def executor(self):
            with MyExecutor() as ex:
                yield ex

Imports pytest, so import this module from tests only.
"""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import Future, as_completed, wait
from pathlib import Path

import pytest

from mnas.execution.base import Executor

__all__ = ["ExecutorTestSuite"]


# -- tasks (module level, so they pickle by reference) ---------------------------------------------


def add(a: float, b: float = 0, *, scale: float = 1) -> float:
    return (a + b) * scale


def fail(message: str) -> None:
    raise ValueError(message)


def wait_for_file(path: str, value: object, timeout: float = 60.0) -> object:
    """Return `value` once `path` exists: a task that cannot finish before the driver says so."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear in {timeout}s")
        time.sleep(0.01)
    return value


def thread_settings() -> dict:
    """The worker's thread limits, importing torch (in the worker) if it is installed."""
    out = {var: os.environ.get(var) for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return out
    return {**out, "torch": torch.get_num_threads()}


def pid() -> int:
    return os.getpid()


def die() -> None:
    """Kill this worker as the OOM killer would."""
    os.kill(os.getpid(), signal.SIGKILL)


# -- the suite ------------------------------------------------------------------------------------


class ExecutorTestSuite:
    """Contract tests for an `Executor`; the subclass supplies an `executor` fixture (any scope)
    and a `make_executor` fixture (a function returning a new executor, for lifecycle tests)."""

    def test_submit_returns_a_future_with_the_result(self, executor: Executor) -> None:
        future = executor.submit(add, 2, 3, scale=10)
        assert isinstance(future, Future)
        assert future.result(timeout=120) == 50
        assert executor.submit(add, 1.5).result(timeout=120) == 1.5
        assert executor.max_workers >= 1

    def test_exceptions_are_captured_in_the_future(self, executor: Executor) -> None:
        future = executor.submit(fail, "bad architecture 7")
        exc = future.exception(timeout=120)
        assert isinstance(exc, ValueError) and "bad architecture 7" in str(exc)
        with pytest.raises(ValueError, match="bad architecture 7"):
            future.result()
        assert executor.submit(add, 1, 1).result(timeout=120) == 2  # and the executor goes on

    def test_as_completed_gets_every_result(self, executor: Executor) -> None:
        futures = {executor.submit(add, i, i): i for i in range(3 * executor.max_workers + 2)}
        got = {futures[f]: f.result() for f in as_completed(futures, timeout=120)}
        assert got == {i: 2 * i for i in futures.values()}

    def test_results_arrive_out_of_order(self, executor: Executor, tmp_path: Path) -> None:
        if executor.max_workers < 2:
            pytest.skip("runs one task at a time")
        gate = tmp_path / "gate"
        slow = executor.submit(wait_for_file, str(gate), "slow")
        fast = executor.submit(add, 1, 1)
        first = next(as_completed([slow, fast], timeout=120))
        assert first is fast and not slow.done()  # `slow` cannot finish before the gate opens
        gate.touch()
        assert slow.result(timeout=120) == "slow"

    def test_wait_first_exception(self, executor: Executor) -> None:
        futures = [executor.submit(add, 1), executor.submit(fail, "x"), executor.submit(add, 2)]
        done, _ = wait(futures, timeout=120)
        assert len(done) == 3 and sum(f.exception() is not None for f in done) == 1

    def test_shutdown_then_submit_is_an_error(self, make_executor) -> None:
        with make_executor() as executor:
            assert executor.submit(add, 1, 2).result(timeout=120) == 3
        with pytest.raises(RuntimeError, match="shut down"):
            executor.submit(add, 1, 2)
        executor.shutdown()  # a second shutdown does nothing
