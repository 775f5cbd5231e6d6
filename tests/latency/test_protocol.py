"""The measurement protocol (warm-up, autorange, stopping rule, statistics) and the device lock."""

from __future__ import annotations

import multiprocessing as mp
import threading
import time

import numpy as np
import pytest

from mnas.latency import DeviceLock, Protocol, time_callable
from mnas.latency.base import Timing, error_line


def test_error_line_quotes_the_first_line_of_a_runtime_error():
    assert error_line(RuntimeError("\n  bad node 7\nstack: ...\n")) == "bad node 7"
    assert error_line(ValueError("   ")) == "ValueError"
    assert error_line(RuntimeError("x" * 500)) == "x" * 300


def test_statistics_of_known_samples():
    stats = Timing((1.0, 2.0, 3.0, 4.0, 100.0), (1.0,) * 5, 1, "wall").stats()
    assert stats["median_ms"] == 3.0
    assert stats["iqr_ms"] == 2.0  # 4 - 2 (numpy's linear percentiles)
    assert stats["min_ms"] == 1.0 and stats["n"] == 5
    x = np.array([1.0, 2.0, 3.0, 4.0, 100.0])
    assert stats["cv"] == pytest.approx(x.std() / x.mean())


def test_warmup_runs_before_timing_and_repeats_stay_within_bounds():
    calls = []
    protocol = Protocol(warmup=7, warmup_s=0.0, min_repeats=4, max_repeats=9, max_time_s=10, target_rse=0.0,
                        min_sample_ms=0.0)
    timing = time_callable(lambda: calls.append(1), protocol, clock="wall")
    assert timing.number == 1
    assert len(timing.samples_ms) == 9  # target 0 never settles: the cap decides
    assert len(calls) >= 7 + 9 * timing.number  # warm-up, then the timed samples (and autorange calibration)


def test_stops_early_once_the_median_settles():
    protocol = Protocol(warmup=1, warmup_s=0.0, min_repeats=6, max_repeats=500, max_time_s=10, target_rse=0.5,
                        min_sample_ms=0.5)
    timing = time_callable(lambda: sum(range(200)), protocol, clock="wall")
    assert len(timing.samples_ms) < 500


def test_time_cap_is_honoured():
    protocol = Protocol(warmup=0, warmup_s=0.0, min_repeats=2, max_repeats=10_000, max_time_s=0.05,
                        target_rse=0.0, min_sample_ms=0.0)
    timing = time_callable(lambda: time.sleep(0.005), protocol, clock="wall")
    assert 2 <= len(timing.samples_ms) < 100


def test_tiny_work_is_grouped_into_samples_of_at_least_min_sample_ms():
    protocol = Protocol(warmup=5, warmup_s=0.01, min_repeats=3, max_repeats=3, min_sample_ms=2.0)
    timing = time_callable(lambda: sum(range(100)), protocol, clock="thread")  # about a microsecond
    assert 10 < timing.number < 10_000
    assert all(s * timing.number >= 0.5 for s in timing.samples_ms)  # each sample lasted about 2 ms


def test_thread_clock_ignores_time_off_the_cpu():
    protocol = Protocol(warmup=0, warmup_s=0.0, min_repeats=3, max_repeats=3, min_sample_ms=0.0)
    timing = time_callable(lambda: time.sleep(0.01), protocol, clock="auto", single_thread=True)
    stats = timing.stats()
    assert stats["clock"] == "thread"
    assert stats["wall_median_ms"] > 5 * stats["median_ms"]  # asleep: wall time passes, CPU time barely
    assert time_callable(lambda: None, protocol, clock="auto", single_thread=False).clock == "wall"


@pytest.mark.parametrize("bad", [{"min_repeats": 0}, {"max_repeats": 3, "min_repeats": 5}, {"target_rse": -1},
                                 {"warmup": 1.5}, {"max_time_s": float("nan")}])
def test_protocol_rejects_bad_settings(bad):
    with pytest.raises(ValueError, match="Protocol"):
        Protocol(**bad)


def test_unknown_clock_is_refused():
    with pytest.raises(ValueError, match="unknown clock 'cpu'"):
        time_callable(lambda: None, Protocol(), clock="cpu")


# -- the device lock ----------------------------------------------------------------------------

def _hold(directory: str, hold_s: float, out: mp.Queue) -> None:
    lock = DeviceLock("test", directory)
    with lock:
        start = time.monotonic()
        time.sleep(hold_s)
        out.put((start, time.monotonic()))


def test_lock_serialises_processes(tmp_path):
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    procs = [ctx.Process(target=_hold, args=(str(tmp_path), 0.3, out)) for _ in range(3)]
    for p in procs:
        p.start()
    intervals = sorted(out.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    for (_, end), (start, _) in zip(intervals, intervals[1:], strict=False):
        assert start >= end, f"two processes held the device at once: {intervals}"


def test_lock_serialises_threads_and_is_reentrant(tmp_path):
    lock = DeviceLock("test", tmp_path)
    active, peak = [0], [0]

    def work() -> None:
        with lock:
            with lock:  # re-entrant within a thread
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                time.sleep(0.02)
                active[0] -= 1

    threads = [threading.Thread(target=work) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 1
    assert lock.path.exists() and lock._depth == 0
