"""The device server's measuring process: a runtime (ONNX Runtime, LiteRT or ExecuTorch) in a child that can be killed.

A model sent to the server can loop for ever (``Loop`` of 10^15 iterations) or allocate gigabytes
(``Expand`` to 20000 x 20000), and no Python thread can stop a native call. So the server loads and
times every model in a persistent child process per runtime (``python -m mnas.latency.server_worker``):

- the child caps its own address space (``RLIMIT_AS``: its size after start-up plus
  `max_memory_bytes`), so an allocation over the cap fails inside ONNX Runtime instead of
  swapping the device;
- the parent gives each request `time_limit_s` (not counting the wait for the device lock, which
  another process may hold) and kills and restarts the child when it is exceeded;
- the child runs in an empty temporary directory, refuses models that refer to files or point
  outside themselves (`mnas.latency.server_check`, `mnas.latency.server_flatbuffers`) and answers
  with messages that never contain the runtime's own text, which can print tensor values; that
  text goes to the parent's log only.

Protocol over the child's stdin/stdout: one JSON line per message; a job line is followed by the
model's bytes. The child reports ``wait`` before it takes the device lock and ``go`` once it has it.
Torch-free, like the rest of the server.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, BinaryIO

__all__ = ["LOCK_WAIT_S", "MeasureWorker", "WorkerError"]

LOCK_WAIT_S = 600.0  # the longest a request waits for another process to release the device
START_TIMEOUT_S = 120.0
_MAX_LINE = 1 << 20


class WorkerError(Exception):
    """A measurement that did not produce statistics: the HTTP status, a safe one-word kind, a safe message."""

    def __init__(self, status: int, kind: str, message: str, detail: str = ""):
        super().__init__(message)
        self.status, self.kind, self.detail = status, kind, detail


class _Spawner:
    """Starts children from one thread that lives as long as the process.

    Linux's ``PR_SET_PDEATHSIG`` (see `_die_with_parent`) fires when the *thread* that started a child
    exits, so a worker restarted from a request's thread would be killed as soon as that request ended."""

    _lock = threading.Lock()
    _jobs: queue.Queue | None = None

    @classmethod
    def popen(cls, *args: Any, **kwargs: Any) -> subprocess.Popen:
        with cls._lock:
            if cls._jobs is None:
                cls._jobs = queue.Queue()
                threading.Thread(target=cls._run, args=(cls._jobs,), daemon=True, name="mnas-device-spawner").start()
        done: queue.Queue = queue.Queue(maxsize=1)
        cls._jobs.put((args, kwargs, done))
        ok, value = done.get()
        if not ok:
            raise value
        return value

    @staticmethod
    def _run(jobs: queue.Queue) -> None:
        while True:
            args, kwargs, done = jobs.get()
            try:
                done.put((True, subprocess.Popen(*args, **kwargs)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                done.put((False, exc))


class MeasureWorker:
    """The parent's handle on the measuring child; `measure` is not thread-safe (the server serialises it)."""

    def __init__(self, threads: int = 1, max_memory_bytes: int | None = 2**30, time_limit_s: float = 60.0,
                 quiet: bool = False, runtime: str = "onnxruntime"):
        self.threads, self.max_memory_bytes, self.time_limit_s, self.quiet = threads, max_memory_bytes, time_limit_s, quiet
        self.runtime = runtime
        self._proc: subprocess.Popen | None = None
        self._messages: queue.Queue = queue.Queue()
        self._ready: dict[str, Any] | None = None
        self._dir: str | None = None
        self._started = False
        self.restarts = 0

    # -- the child's life -------------------------------------------------------------------
    def start(self, wait: bool = True) -> dict[str, Any] | None:
        """Start the child; with `wait`, block until it has imported its runtime and return its runtime facts."""
        import mnas

        self._started = True
        self._dir = tempfile.mkdtemp(prefix="mnas-device-worker-")
        package_root = os.path.dirname(os.path.dirname(os.path.abspath(mnas.__file__)))
        env = {**os.environ, "MALLOC_ARENA_MAX": "2", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1",
               "TF_CPP_MIN_LOG_LEVEL": "2", "ET_LOG_LEVEL": "error",
               "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
        self._proc = _Spawner.popen([sys.executable, "-m", "mnas.latency.server_worker"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, cwd=self._dir, env=env)
        self._messages = queue.Queue()
        self._ready = None
        threading.Thread(target=_read_messages, args=(self._proc.stdout, self._messages), daemon=True,
                         name="mnas-device-worker-reader").start()
        config = {"threads": self.threads, "max_memory_bytes": self.max_memory_bytes, "quiet": self.quiet,
                  "parent": os.getpid(), "runtime": self.runtime}
        self._proc.stdin.write(json.dumps(config).encode() + b"\n")
        self._proc.stdin.flush()
        return self._await_ready() if wait else None

    def _await_ready(self) -> dict[str, Any]:
        if self._ready is not None:
            return self._ready
        try:
            message = self._messages.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            message = None
        if not message or "ready" not in message:
            reason = (message or {}).get("fatal", "it exited or did not answer")
            self._kill()
            if (message or {}).get("missing"):  # the runtime is not installed: retrying cannot help
                raise WorkerError(400, "unsupported_runtime", str(reason))
            raise WorkerError(503, "worker_unavailable", f"the measuring process did not start: {reason}")
        self._ready = message
        return message

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Kill the child and start a new one without waiting: the next request waits for it, this one does not."""
        self._kill()
        self.restarts += 1
        self.start(wait=False)

    def close(self) -> None:
        self._kill()

    @property
    def ready_facts(self) -> dict[str, Any] | None:
        """The running child's ready message (device, runtime versions), or None before it is ready."""
        return self._ready

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    # -- one measurement ---------------------------------------------------------------------
    def measure(self, model: bytes, shape: tuple[int, ...], protocol: dict[str, Any]) -> dict[str, Any]:
        """Statistics for `model` at `shape`; `WorkerError` with the status to answer otherwise."""
        if self._proc is None and not self._started:
            self.start(wait=False)  # a runtime's first request starts its process
        elif self._proc is None or self._proc.poll() is not None:
            self.restart()
        self._await_ready()
        header = json.dumps({"shape": list(shape), "protocol": protocol, "size": len(model)}).encode() + b"\n"
        stdin = self._proc.stdin
        # Written from a helper thread so that a child that stops reading cannot hold this one past the limit.
        writer = threading.Thread(target=_write_job, args=(stdin, header, model), daemon=True)
        writer.start()
        limit = self.time_limit_s
        left, lock_deadline = limit, None
        deadline = time.monotonic() + limit
        while True:
            now = time.monotonic()
            wait = (lock_deadline - now) if lock_deadline is not None else (deadline - now)
            try:
                message = self._messages.get(timeout=max(wait, 0.0))
            except queue.Empty:
                if lock_deadline is not None:
                    self.restart()
                    raise WorkerError(503, "device_busy", f"the device lock was held by another process for more"
                                      f" than {LOCK_WAIT_S:g} s: try again later") from None
                self.restart()
                raise WorkerError(422, "time_limit", f"the model took longer than the server's limit of {limit:g} s"
                                  " to load and time, so the measurement was stopped (the server's --time-limit-s)"
                                  ) from None
            if message is None:
                code = self._proc.wait(timeout=30) if self._proc is not None else None
                self.restart()
                how = f"signal {-code}" if isinstance(code, int) and code < 0 else f"exit code {code}"
                raise WorkerError(422, "worker_crashed", f"the measuring process died on this model ({how});"
                                  " it was restarted")
            event = message.get("event")
            if event == "wait":  # the clock stops while another process has the device
                left, lock_deadline = deadline - time.monotonic(), time.monotonic() + LOCK_WAIT_S
            elif event == "go":
                deadline, lock_deadline = time.monotonic() + left, None
            elif "ok" in message:
                writer.join(timeout=1.0)
                return message["ok"]
            else:
                writer.join(timeout=1.0)
                if message.get("restart"):
                    self.restart()
                raise WorkerError(int(message.get("status", 500)), str(message.get("kind", "internal")),
                                  str(message.get("error", "the measurement failed")), str(message.get("detail", "")))


def _read_messages(stream: BinaryIO, messages: queue.Queue) -> None:
    try:
        for line in iter(lambda: stream.readline(_MAX_LINE), b""):
            try:
                messages.put(json.loads(line))
            except ValueError:
                continue
    except (OSError, ValueError):
        pass
    messages.put(None)  # the child is gone


def _write_job(stdin: BinaryIO, header: bytes, model: bytes) -> None:
    try:
        stdin.write(header)
        stdin.write(model)
        stdin.flush()
    except (OSError, ValueError):
        pass  # the child died; the reader reports it


# ----------------------------------------------------------------------------------------------
# The child.

def _address_space() -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _cap_memory(extra: int | None, threads: int) -> int | None:
    """Cap this process's address space at its current size plus `extra` (and thread stacks); the cap or None."""
    if extra is None:
        return None
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    now = _address_space()
    if now is None:  # pragma: no cover - no /proc (macOS, where RLIMIT_AS is not enforced anyway)
        return None
    cap = now + extra + threads * 32 * 2**20
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    return cap


def _die_with_parent(parent: int | None) -> None:
    """Linux: the kernel kills this process when the server dies, even in the middle of a runaway model."""
    if not sys.platform.startswith("linux"):
        return  # elsewhere the closed stdin ends the child between jobs
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent is not None and os.getppid() != parent:  # the server died before the call above
        os._exit(0)


def _child_main() -> int:
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # anything native code prints goes to the log, never into the protocol

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message).encode() + b"\n")

    stdin = sys.stdin.buffer
    config = json.loads(stdin.readline(4096) or b"{}")
    _die_with_parent(config.get("parent"))
    if config.get("quiet"):  # the runtimes' own chatter (ExecuTorch logs every thread-pool reset) off the log
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    runtime = str(config.get("runtime", "onnxruntime"))
    try:
        from mnas.latency.server_job import INSTALL, NAMES, run_job, runtime_facts
    except ImportError as exc:
        send({"fatal": f"cannot import the measuring code ({exc}): pip install 'mnas[server]'"})
        return 1
    try:
        facts = runtime_facts(runtime)
    except ImportError as exc:
        send({"fatal": f"this device server cannot load {NAMES.get(runtime, runtime)} ({type(exc).__name__}:"
                       f" {str(exc)[:120]}): {INSTALL.get(runtime, 'install it')} on the device and restart the server",
              "missing": True})
        return 1
    cap = _cap_memory(config.get("max_memory_bytes"), int(config.get("threads", 1)))
    send({"ready": True, **facts, "address_space_cap": cap})
    while True:
        line = stdin.readline(_MAX_LINE)
        if not line:
            return 0
        job = json.loads(line)
        model = stdin.read(int(job["size"]))
        reply = run_job(model, job, int(config.get("threads", 1)), bool(config.get("quiet")), send, runtime)
        send(reply)
        if reply.get("restart"):
            return 0


if __name__ == "__main__":
    sys.exit(_child_main())
