"""The shared executor suite on the in-process and process-pool executors, plus pool specifics."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mnas.execution import (
    InProcessExecutor,
    ProcessPoolExecutor,
    WorkerDiedError,
    get_executor,
)
from mnas.execution.testing import ExecutorTestSuite, add, die, pid, wait_for_file


class TestInProcessExecutor(ExecutorTestSuite):
    @pytest.fixture
    def executor(self):
        with InProcessExecutor() as ex:
            yield ex

    @pytest.fixture
    def make_executor(self):
        return InProcessExecutor

    def test_runs_in_this_thread_at_submit(self):
        calls = []
        future = InProcessExecutor().submit(calls.append, 1)
        assert future.done() and calls == [1]


class TestProcessPoolExecutor(ExecutorTestSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        with ProcessPoolExecutor(workers=2) as ex:
            yield ex

    @pytest.fixture
    def make_executor(self):
        return lambda: ProcessPoolExecutor(workers=1)

    def test_unpicklable_task_fails_its_future_only(self, executor):
        bad = executor.submit(lambda: 1)
        assert bad.exception(timeout=120) is not None and not isinstance(bad.exception(), WorkerDiedError)
        assert executor.submit(add, 1, 1).result(timeout=120) == 2 and executor.restarts == 0

    def test_a_future_cancelled_before_it_runs(self, executor, tmp_path):
        gate = tmp_path / "gate"
        running = [executor.submit(wait_for_file, str(gate), i, timeout=60) for i in range(2)]
        # With both workers busy, the pool moves at most workers + 1 more tasks to its queue.
        queued = [executor.submit(add, i) for i in range(8)]
        assert queued[-1].cancel() and queued[-1].cancelled()
        gate.touch()
        assert [f.result(timeout=120) for f in running] == [0, 1]
        assert [f.result(timeout=120) for f in queued[:-1]] == list(range(7))
        assert not running[0].cancel()  # a finished task is not cancelled


def test_pool_survives_a_dying_worker():
    with ProcessPoolExecutor(workers=1, threads_per_worker=1) as ex:
        first_pid = ex.submit(pid).result(timeout=120)
        victim = ex.submit(die)
        bystander = ex.submit(add, 1, 1)
        exc = victim.exception(timeout=120)
        assert isinstance(exc, WorkerDiedError)
        assert "worker process died (exit code -9, SIGKILL)" in str(exc) and "'die'" in str(exc)
        # a task in the pool when it broke fails too (the pool cannot tell who killed it) ...
        assert isinstance(bystander.exception(timeout=120), WorkerDiedError)
        # ... and the next submit runs in a fresh pool
        assert ex.submit(add, 2, 3).result(timeout=120) == 5
        assert ex.restarts == 1 and ex.submit(pid).result(timeout=120) != first_pid


def test_shutdown_cancel_cancels_queued_tasks(tmp_path):
    ex = ProcessPoolExecutor(workers=1)
    gate = tmp_path / "gate"
    running = ex.submit(wait_for_file, str(gate), "done", timeout=60)
    queued = [ex.submit(add, i) for i in range(4)]
    assert not queued[-1].cancelled()
    ex.shutdown(cancel=True, wait=False)
    gate.touch()
    assert running.result(timeout=120) == "done"
    assert queued[-1].cancelled()  # the last ones never reached the worker
    with pytest.raises(RuntimeError, match="shut down"):
        ex.submit(add, 1)


_THREADS_SCRIPT = """
import json, sys
from mnas.execution import ProcessPoolExecutor
from mnas.execution.testing import thread_settings
with ProcessPoolExecutor(workers=1, threads_per_worker=3) as ex:
    worker = ex.submit(thread_settings).result(timeout=120)
print(json.dumps({"worker": worker, "driver_has_torch": "torch" in sys.modules}))
"""


def test_workers_get_their_threads_and_the_driver_never_imports_torch():
    out = subprocess.run([sys.executable, "-c", _THREADS_SCRIPT], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["driver_has_torch"] is False
    assert result["worker"]["OMP_NUM_THREADS"] == "3" and result["worker"]["MKL_NUM_THREADS"] == "3"
    assert result["worker"]["torch"] == 3  # not this machine's default: set by the worker's initializer


def test_packages_do_not_import_torch_or_ray():
    code = (
        "import sys, mnas.execution, mnas.study;"
        " print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'ray'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_get_executor():
    assert isinstance(get_executor(), InProcessExecutor)
    assert isinstance(get_executor("inprocess", workers=1), InProcessExecutor)
    ex = InProcessExecutor()
    assert get_executor(ex) is ex
    pool = get_executor("Pool", workers=3, threads_per_worker=2)
    assert isinstance(pool, ProcessPoolExecutor) and pool.max_workers == 3 and pool.threads_per_worker == 2
    assert pool.describe() == {"executor": "process", "max_workers": 3, "threads_per_worker": 2,
                               "start_method": "spawn"}
    pool.shutdown()  # never started a process
    for kwargs, message in [
        ({"name": "dask"}, "unknown executor 'dask': expected one of local, inprocess, process, pool, ray"),
        ({"name": "process", "workers": 0}, r"workers=0: expected an integer >= 1"),
        ({"name": "local", "workers": 4}, "one task at a time"),
        ({"name": "process", "threads_per_worker": 0}, "threads_per_worker=0"),
        ({"name": "process", "start_method": "teleport"}, "start_method='teleport'"),
    ]:
        with pytest.raises(ValueError, match=message):
            get_executor(**kwargs)


_ORPHAN_DRIVER = """
import sys, time
from mnas.execution import ProcessPoolExecutor
from mnas.execution.testing import pid
if __name__ == "__main__":
    pool = ProcessPoolExecutor(workers=1, threads_per_worker=1)
    print(pool.submit(pid).result(), flush=True)
    pool.submit(time.sleep, 120)
    time.sleep(120)
"""


def test_workers_exit_when_the_driver_is_killed(tmp_path):
    """Issue 13 item 7: kill -9 of the driver left its workers running for minutes."""
    import os
    import signal
    import time

    script = tmp_path / "driver.py"
    script.write_text(_ORPHAN_DRIVER)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(proc.stdout.readline())
    time.sleep(0.5)  # the sleeping task has reached the worker
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 20
    alive = True
    while alive and time.monotonic() < deadline:
        try:
            state = open(f"/proc/{worker}/stat").read().rpartition(")")[2].split()[0]
            alive = state != "Z"
        except OSError:
            alive = False
        time.sleep(0.1)
    if alive:
        os.kill(worker, signal.SIGKILL)
    assert not alive, "the worker outlived its driver"
