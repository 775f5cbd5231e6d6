"""Latency under load (issue 21 item 5): the measuring thread is pinned to one CPU, whole networks
are measured in interleaved rounds, a table records the load it was built at and validation prints it
beside the error, a busy machine is named with its load, and `latency measure` names its clock."""

from __future__ import annotations

import math
import os

import pytest
from latency_helpers import tiny_space

from mnas.latency import LatencyBackend, LatencyResult, Protocol, arch_units


class Counting(LatencyBackend):
    """A network costs its number of layer units in ms; records what it measured under which protocol."""

    name = "counting"

    def __init__(self, protocol: Protocol | None = None):
        super().__init__()
        self.protocol = protocol or Protocol()
        self.calls: list[tuple[str, float]] = []

    def settings(self):
        return {"protocol": self.protocol.to_dict()}

    def measure_model(self, model, input_shape):
        return self._result(0.01 + 1e-6 * sum(p.numel() for p in model.parameters()), input_shape[-1], 0)

    def _result(self, ms, size, classes, arch=None, wall=math.nan):
        return LatencyResult(ms, 0.0, 0.0, 3, self.name, self.settings(), size, 1, classes, {"cpu": "x"}, {},
                             wall_median_ms=wall, arch=arch)

    def _measure(self, arch, input_size, num_classes, batch_size, in_chans=3):
        self.calls.append((str(arch), self.protocol.max_time_s))
        n = len(arch_units(arch, input_size, num_classes, in_chans))
        return self._result(float(n + len(self.calls) % 3), input_size, num_classes, str(arch), wall=2.0 * n)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs")
def test_a_single_threaded_measurement_runs_pinned_to_one_cpu():
    from mnas.latency.base import time_callable

    before = os.sched_getaffinity(0)
    seen = []
    timing = time_callable(lambda: seen.append(len(os.sched_getaffinity(0))),
                           Protocol(warmup=1, warmup_s=0.0, min_repeats=3, max_repeats=3, min_sample_ms=0.01))
    assert set(seen) == {1} and timing.clock == "thread"  # before: every CPU the process may use
    assert os.sched_getaffinity(0) == before
    seen.clear()
    time_callable(lambda: seen.append(len(os.sched_getaffinity(0))),
                  Protocol(warmup=1, warmup_s=0.0, min_repeats=3, max_repeats=3, min_sample_ms=0.01), single_thread=False)
    assert set(seen) == {len(before)}  # a multi-threaded runtime keeps every CPU


def test_whole_networks_are_measured_in_interleaved_rounds():
    from mnas.latency.lut_build import measure_interleaved

    space = tiny_space(16)
    archs = [space.decode([i % len(d) for d in space.decisions]) for i in range(3)]
    backend = Counting(Protocol(max_time_s=3.0, min_repeats=9, max_repeats=30))
    results = measure_interleaved(backend, archs, 16, 10, rounds=3)
    names = [a for a, _ in backend.calls]
    first, second, third = (str(a) for a in archs)
    assert names == [first, second, third, third, second, first, first, second, third]  # before: one pass, in order
    assert {t for _, t in backend.calls} == {1.0} and backend.protocol.max_time_s == 3.0  # a third each, restored
    assert all(r.n == 9 and r.settings["interleaved_rounds"] == 3 for r in results)
    for arch, result in zip(archs, results, strict=True):
        n = len(arch_units(arch, 16, 10))
        assert n <= result.median_ms <= n + 2 and result.wall_median_ms == 2.0 * n


def test_the_table_records_its_load_and_validation_prints_it_beside_the_error(tmp_path, monkeypatch, capsys):
    import mnas.latency.lut_build as lut_build
    from mnas.latency.lut_build import build_lut, describe_load, validate_lut

    loads = iter([3.0, 5.0, 7.0] + [4.0] * 1000)
    monkeypatch.setattr(lut_build, "machine_load", lambda: {"load": next(loads), "cpus": 2, "busy": True})
    backend = Counting(Protocol(max_time_s=0.3))
    lines = []
    table = build_lut(tiny_space(16), backend, tmp_path / "t.json", fit_archs=3, log=lines.append)
    load = table.meta["load"]
    assert load["min"] == 3.0 and load["max"] == 7.0 and load["cpus"] == 2 and load["samples"] >= 3
    assert lines[0].startswith("measuring ") and "layer signatures" in lines[0]
    assert any(line.startswith("fitting scale and overhead") for line in lines)
    monkeypatch.setattr(lut_build, "machine_load", lambda: {"load": 1.0, "cpus": 2, "busy": False})
    report = validate_lut(table, backend, n=3, seed=1)
    assert report["table_load"] == load and report["load"]["max"] == 1.0 and report["rounds"] == 3
    assert describe_load(load).startswith("load 3.0-") and describe_load(None) == "load not recorded"


def test_a_busy_machine_is_named_with_its_load(monkeypatch):
    from mnas.latency import device

    monkeypatch.setattr(device.os, "getloadavg", lambda: (5.25, 4.0, 3.0))
    monkeypatch.setattr(device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    state = device.machine_load()
    assert state == {"load": 5.25, "cpus": 2, "busy": True}
    assert "busy (load 5.2 on 2 CPUs): this figure can be" in device.busy_note("this figure")
    monkeypatch.setattr(device.os, "getloadavg", lambda: (0.5, 0.5, 0.5))
    assert device.busy_note() is None


def test_latency_measure_names_its_clock_with_the_wall_median_beside_it():
    from mnas.cli.latency_cmd import measure_lines

    base = dict(median_ms=8.0, iqr_ms=0.1, cv=0.02, n=40, backend="onnxruntime", settings={}, input_size=32,
                device={"cpu": "x"}, wall_median_ms=17.8)
    text = measure_lines(LatencyResult(**base, clock="thread"))
    first = text.splitlines()[0]
    assert first.startswith("8.000 ms median thread CPU time")  # before: '8.000 ms  (IQR ...)', the clock later
    assert "wall-clock median 17.800 ms" in text
    assert measure_lines(LatencyResult(**{**base, "median_ms": 17.8}, clock="wall")).startswith(
        "17.800 ms median wall-clock time")
