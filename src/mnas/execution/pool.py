"""`ProcessPoolExecutor`: a local pool of worker processes that survives a worker's death."""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import weakref
from collections.abc import Callable
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mnas.execution.base import ChainedFuture, Executor, WorkerDiedError, call_in_worker, check_positive, limit_threads

__all__ = ["ProcessPoolExecutor"]


class ProcessPoolExecutor(Executor):
    """Runs tasks in `workers` local processes, each limited to `threads_per_worker` math threads
    (default: this machine's cores shared out). 'spawn' is the default start method because
    workers run PyTorch, which does not survive a fork. When a worker dies, the tasks in the pool
    at that moment fail with `WorkerDiedError` (the pool cannot tell which one killed it) and the
    next submit starts a fresh pool; `restarts` counts how often that happened."""

    name = "process"

    def __init__(
        self,
        workers: int | None = None,
        *,
        threads_per_worker: int | None = None,
        start_method: str = "spawn",
        max_tasks_per_child: int | None = None,
    ) -> None:
        cores = os.cpu_count() or 1
        self.workers = check_positive("workers", cores if workers is None else workers)
        self.threads_per_worker = check_positive(
            "threads_per_worker", max(1, cores // self.workers) if threads_per_worker is None else threads_per_worker
        )
        if max_tasks_per_child is not None:
            check_positive("max_tasks_per_child", max_tasks_per_child)
        methods = multiprocessing.get_all_start_methods()
        if start_method not in methods:
            raise ValueError(f"start_method={start_method!r}: expected one of {', '.join(methods)} on this platform")
        if max_tasks_per_child is not None and start_method == "fork":
            raise ValueError("max_tasks_per_child needs start_method 'spawn' or 'forkserver', not 'fork'")
        self.start_method = start_method
        self.max_tasks_per_child = max_tasks_per_child
        self.restarts = 0
        self._lock = threading.Lock()  # never held while calling into a pool (its threads call us back)
        self._pool: futures.ProcessPoolExecutor | None = None
        self._retired: list[futures.ProcessPoolExecutor] = []
        self._seen: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # pool -> {pid: Process}
        self._closed = False

    @property
    def max_workers(self) -> int:
        return self.workers

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ChainedFuture:
        for attempt in (0, 1):
            pool = self._current_pool()
            try:
                inner = pool.submit(call_in_worker, fn, args, kwargs, self.threads_per_worker)
                self._note_workers(pool)
                break
            except BrokenProcessPool:  # broke since we last looked: retire it and use a fresh one
                self._retire(pool)
                if attempt:
                    raise
        outer = ChainedFuture(inner.cancel)
        name = getattr(fn, "__qualname__", repr(fn))
        inner.add_done_callback(lambda f: outer.copy_from(f, lambda exc: self._translate(exc, pool, name)))
        return outer

    def _current_pool(self) -> futures.ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to an executor that was shut down")
            retired, self._retired = self._retired, []
            if self._pool is None:
                self._pool = futures.ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context(self.start_method),
                    initializer=init_worker,
                    initargs=(self.threads_per_worker,),
                    max_tasks_per_child=self.max_tasks_per_child,
                )
            pool = self._pool
        for old in retired:
            old.shutdown(wait=False)
        return pool

    def _note_workers(self, pool: futures.ProcessPoolExecutor) -> None:
        # Remember each pool's workers so that a break can report the dead one's exit code (-9 is
        # usually the out-of-memory killer). Private API, best effort: only the message uses it.
        with self._lock:
            self._seen.setdefault(pool, {}).update(getattr(pool, "_processes", None) or {})

    def _retire(self, pool: futures.ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is pool:
                self._pool = None
                self._retired.append(pool)
                self.restarts += 1

    def _translate(self, exc: BaseException, pool: futures.ProcessPoolExecutor, name: str) -> BaseException:
        if not isinstance(exc, BrokenProcessPool):
            return exc
        self._retire(pool)
        died = WorkerDiedError(
            f"a worker process died{self._exit_codes(pool)} while '{name}' was running or queued in the pool"
            " (killed, crashed or out of memory); the pool was restarted"
        )
        died.__cause__ = exc
        return died

    def _exit_codes(self, pool: futures.ProcessPoolExecutor) -> str:
        """' (exit code -9, SIGKILL)' from the pool's dead worker, or '' if unknown."""
        with self._lock:
            procs = list(self._seen.get(pool, {}).values())
        codes = [code for p in procs if (code := _exit_code(p))]
        if not codes:
            return ""
        try:
            return f" (exit code {codes[0]}, {signal.Signals(-codes[0]).name})"
        except ValueError:
            return f" (exit code {codes[0]})"

    def shutdown(self, cancel: bool = False, wait: bool = True) -> None:
        with self._lock:
            self._closed = True
            pools = [p for p in (self._pool, *self._retired) if p is not None]
            self._pool, self._retired = None, []
        for pool in pools:
            pool.shutdown(wait=wait, cancel_futures=cancel)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "threads_per_worker": self.threads_per_worker, "start_method": self.start_method}

    def __repr__(self) -> str:
        return f"ProcessPoolExecutor(workers={self.workers}, threads_per_worker={self.threads_per_worker})"


def init_worker(threads: int) -> None:
    """Worker side: cap math threads, and exit as soon as the driver dies. Without this, a driver
    killed with `kill -9` leaves its workers (hundreds of MB each, possibly mid-training) running
    until their task ends, and their queue reader waits for a parent that is gone."""
    limit_threads(threads)
    parent = multiprocessing.parent_process()
    if parent is None:  # pragma: no cover - always set for pool workers
        return
    threading.Thread(target=_exit_with_parent, args=(parent.sentinel, os.getppid()), name="mnas-parent-watch",
                     daemon=True).start()


def _exit_with_parent(sentinel: int, ppid: int) -> None:
    # The sentinel becomes ready when the parent process ends; polling getppid() covers a platform
    # where it does not (the worker is re-parented to init or a subreaper).
    while True:
        try:
            if multiprocessing.connection.wait([sentinel], timeout=1.0):
                break
        except OSError:
            break
        if os.getppid() != ppid:
            break
    os._exit(70)  # EX_SOFTWARE: no cleanup that could wait on the dead driver


def _exit_code(process: multiprocessing.process.BaseProcess) -> int | None:
    # The pool notices the death when the worker's pipe closes, a moment before the process can
    # be reaped: wait for that moment, but only for a process that has ended.
    try:
        if multiprocessing.connection.wait([process.sentinel], timeout=0):
            process.join(timeout=1.0)
        return process.exitcode
    except (OSError, ValueError, AssertionError):  # closed or never started
        return None
