"""Layer 3: executors run evaluations in-process, in a local process pool, or on Ray.

They only run functions and return Futures; the search driver is the only writer of the study.
Imports nothing from mnas above `_util`, and never imports torch (or Ray, until it is asked for).
"""

from __future__ import annotations

from mnas.execution.base import Executor, InProcessExecutor, WorkerDiedError
from mnas.execution.pool import ProcessPoolExecutor

__all__ = ["EXECUTORS", "Executor", "InProcessExecutor", "ProcessPoolExecutor", "RayExecutor", "WorkerDiedError",
           "get_executor"]

EXECUTORS = {"local": "local", "inprocess": "local", "process": "process", "pool": "process", "ray": "ray"}


def __getattr__(name: str):  # RayExecutor on demand: importing it must not need ray
    if name == "RayExecutor":
        from mnas.execution.ray_executor import RayExecutor

        return RayExecutor
    raise AttributeError(f"module 'mnas.execution' has no attribute {name!r}")


def get_executor(
    name: str | Executor | None = "local",
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    **kwargs,
) -> Executor:
    """An executor by name: "local"/"inprocess" (default), "process"/"pool" (`workers` processes,
    default one per core), "ray" (`ray_address` or a local instance; `workers` is not used, Ray
    schedules by CPUs). An Executor is returned as is. Extra keyword arguments go to the class."""
    if isinstance(name, Executor):
        return name
    key = EXECUTORS.get(str(name if name is not None else "local").strip().lower())
    if key is None:
        raise ValueError(f"unknown executor {name!r}: expected one of {', '.join(EXECUTORS)}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers={workers!r}: expected an integer >= 1")
    if key == "local":
        if workers not in (None, 1):
            raise ValueError(f"the local executor runs one task at a time: use 'process' for workers={workers}")
        return InProcessExecutor(**kwargs)
    if key == "process":
        return ProcessPoolExecutor(workers, **kwargs)
    from mnas.execution.ray_executor import RayExecutor

    return RayExecutor(ray_address, **kwargs)
