"""What the measuring machine is, and the lock that keeps its measurements from overlapping.

Torch-free: the device server imports this module.
"""

from __future__ import annotations

import os
import platform
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

try:  # POSIX only; elsewhere the lock serialises threads of one process only
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["DeviceLock", "busy_note", "cpu_model", "device_info", "device_lock", "machine_load", "runtime_versions"]


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's marketing name ('Intel(R) Xeon(R) ...'), or the best the platform can say."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "processor\t: arm")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    if platform.system() == "Darwin":  # pragma: no cover - macOS
        import subprocess

        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                  text=True, timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine() or "unknown"


@lru_cache(maxsize=1)
def device_info() -> dict[str, Any]:
    """The machine a measurement ran on: CPU model, logical CPUs, OS, architecture, Python."""
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def machine_load() -> dict[str, Any] | None:
    """This machine's load now: the 1-minute load average (os.getloadavg: processes running or waiting
    for a CPU), the CPUs this process may use, and whether it is busy (load at least that many CPUs:
    every one has work besides ours). None where the platform has no load average."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return {"load": round(load, 2), "cpus": cpus, "busy": load >= cpus}


def busy_note(what: str = "latency measured now") -> str | None:
    """One line warning that the machine is busy, with the load figure; None when it is not (or unknown)."""
    state = machine_load()
    if not state or not state["busy"]:
        return None
    return (f"warning: this machine is busy (load {state['load']:.1f} on {state['cpus']} CPUs): {what} can be 10-30%"
            " off a quiet machine's, even on the thread's CPU clock (caches and memory are shared); measure when it"
            " is quiet for figures to keep")


def runtime_versions(*modules: str) -> dict[str, str]:
    """Versions of the named runtime modules that are importable (never imports a missing one twice)."""
    import importlib

    from mnas import __version__

    versions = {"mnas": __version__}
    for name in modules:
        try:
            versions[name] = str(getattr(importlib.import_module(name), "__version__", "unknown"))
        except ImportError:
            continue
    return versions


class DeviceLock:
    """A lock for one measuring device, held across threads *and* processes.

    Threads of one process share a re-entrant lock; processes (a process pool, Ray workers on the
    same machine) share an ``fcntl.flock`` on a file in ``$MNAS_LOCK_DIR`` (default: the temp dir).
    Re-entrant within a thread, so a LUT build can hold it around many measurements.
    """

    def __init__(self, name: str = "cpu", directory: str | os.PathLike | None = None):
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        directory = directory or os.environ.get("MNAS_LOCK_DIR") or tempfile.gettempdir()
        self.path = Path(directory) / f"mnas-device-{safe}.lock"
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def acquire(self) -> None:
        self._thread_lock.acquire()
        try:
            if self._depth == 0 and fcntl is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                except BaseException:
                    os.close(fd)
                    raise
                self._fd = fd
            self._depth += 1
        except BaseException:
            self._thread_lock.release()
            raise

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0 and self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None
        self._thread_lock.release()

    def __enter__(self) -> DeviceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_LOCKS: dict[str, DeviceLock] = {}
_LOCKS_GUARD = threading.Lock()


def device_lock(name: str = "cpu") -> DeviceLock:
    """The process-wide lock object for device `name` (one per name, shared by all backends)."""
    with _LOCKS_GUARD:
        key = f"{name}|{os.environ.get('MNAS_LOCK_DIR', '')}"
        if key not in _LOCKS:
            _LOCKS[key] = DeviceLock(name)
        return _LOCKS[key]


@contextmanager
def holding(name: str = "cpu") -> Iterator[None]:
    """``with holding('cpu'):`` — measure with the device to yourself."""
    with device_lock(name):
        yield
