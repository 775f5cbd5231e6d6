"""`RayExecutor`: tasks as Ray tasks, on a local Ray instance or a cluster (`address`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

from mnas._util import require
from mnas.execution.base import ChainedFuture, Executor, WorkerDiedError, call_in_worker, check_positive

__all__ = ["RayExecutor"]


class RayExecutor(Executor):
    """Runs each task as a Ray task needing `num_cpus_per_task` CPUs (torch gets that many
    threads). Connects to `address` ("auto", "ray://host:10001", ...) or, with None, to the Ray
    instance this process already started, else starts a local one (and stops it on shutdown).
    `max_retries` re-runs a task whose worker process or node died (Ray's own retry); a task that
    still dies fails with `WorkerDiedError`. Ray is imported here only, when first used."""

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus_per_task: float = 1,
        *,
        max_retries: int = 1,
        init_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.num_cpus_per_task = check_positive("num_cpus_per_task", num_cpus_per_task, float)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries={max_retries!r}: expected an integer >= 0")
        self.max_retries = max_retries
        self.address = address
        self._ray = ray = require("ray", "the Ray executor")
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            try:
                local = {} if address else {"include_dashboard": False}  # a cluster has its own settings
                ray.init(address=address, **(local | (init_kwargs or {})))
            except ConnectionError as exc:
                raise ValueError(f"cannot connect to Ray at {address!r}: {exc}; check --ray-address") from None
        self.threads = max(1, int(self.num_cpus_per_task))
        self._remote = ray.remote(call_in_worker).options(num_cpus=self.num_cpus_per_task, max_retries=max_retries)
        self._lock = threading.Lock()
        self._refs: dict[int, Any] = {}  # id(outer future) -> ObjectRef, for cancel and wait
        self._closed = False

    @property
    def max_workers(self) -> int:
        cpus = self._ray.cluster_resources().get("CPU", 1) if self._ray.is_initialized() else 1
        return max(1, int(cpus // self.num_cpus_per_task))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> ChainedFuture:
        with self._lock:
            if self._closed:
                raise RuntimeError("cannot submit to an executor that was shut down")
        ref = self._remote.remote(fn, args, kwargs, self.threads)
        outer = ChainedFuture(lambda: self._cancel(ref))
        key = id(outer)
        with self._lock:
            self._refs[key] = ref

        def done(inner: Any) -> None:
            with self._lock:
                self._refs.pop(key, None)
            outer.copy_from(inner, self._translate)

        ref.future().add_done_callback(done)
        return outer

    def _cancel(self, ref: Any) -> bool:
        # Ray cannot tell queued from running here: a running task is interrupted too (Ray's
        # cancel raises KeyboardInterrupt in it). A finished one is not cancelled.
        ready, _ = self._ray.wait([ref], timeout=0)
        if ready:
            return False
        self._ray.cancel(ref, force=False)
        return True

    def _translate(self, exc: BaseException) -> BaseException:
        errors = self._ray.exceptions
        if isinstance(exc, errors.TaskCancelledError):
            return CancelledError()
        died = tuple(getattr(errors, n) for n in ("WorkerCrashedError", "OutOfMemoryError", "NodeDiedError")
                     if hasattr(errors, n))
        if isinstance(exc, died):
            out = WorkerDiedError(f"the Ray worker running the task died: {type(exc).__name__}: {exc}")
            out.__cause__ = exc
            return out
        return exc

    def shutdown(self, cancel: bool = False, wait: bool = True) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            refs = list(self._refs.values())
        if cancel:
            for ref in refs:
                self._ray.cancel(ref, force=False)
        if wait and refs:
            self._ray.wait(refs, num_returns=len(refs))
        if self._owns_ray and self._ray.is_initialized():
            self._ray.shutdown()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.address, "num_cpus_per_task": self.num_cpus_per_task}

    def __repr__(self) -> str:
        return f"RayExecutor(address={self.address!r}, num_cpus_per_task={self.num_cpus_per_task})"
