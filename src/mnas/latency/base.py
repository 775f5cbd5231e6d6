"""The measurement protocol, the result record and the `LatencyBackend` base class.

Protocol (what every backend does, so figures are comparable):
1. warm-up: at least `warmup` runs and `warmup_s` seconds (caches, allocator, lazy init);
2. a sample is the mean of `number` back-to-back runs, `number` chosen so that a sample lasts
   about `min_sample_ms` (timeit's autorange: tiny layers are not lost in clock overhead);
3. samples are taken until the median's relative standard error (1.2533 x IQR/1.349 / sqrt(n) /
   median) is below `target_rse`, with at least `min_repeats` and at most `max_repeats` samples
   and at most `max_time_s` seconds;
4. reported: median, interquartile range, coefficient of variation (std / mean), min, n.

Clock: with one thread on the calling thread (ONNX Runtime or PyTorch at 1 thread), ``auto`` times
the thread's CPU time, which does not count time the OS gave to other processes — on a shared
machine that is the difference between 4 ms and 7 ms for the same model. It does not remove
contention for caches and memory bandwidth: on a busy machine figures still drift by 10-20% over
minutes. The wall-clock median is always reported beside it (`wall_median_ms`); ``clock='wall'``
forces wall time.

Affinity: where the OS allows it (Linux), a single-threaded measurement pins the measuring thread to
the CPU it is on for the warm-up and the samples, so the scheduler does not move it to a cold core
mid-measurement (restored afterwards). Whole networks compared with each other (a lookup table's fit
and validation) are measured in interleaved rounds (`mnas.latency.lut_build`), so that a burst of
load falls on all of them rather than on one.

Torch-free: the device server imports this module.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from mnas.space import Arch, as_arch

__all__ = ["CLOCKS", "LatencyBackend", "LatencyResult", "Protocol", "Timing", "error_line", "pinned_to_one_cpu",
           "time_callable"]

CLOCKS = ("auto", "wall", "thread")
RUNTIME_OF = {"remote": "onnxruntime"}  # backend name -> the runtime it measures (default: the name)


@dataclass(frozen=True)
class Protocol:
    """How long and how often to time one model (see the module docstring)."""

    warmup: int = 5
    warmup_s: float = 0.05
    min_repeats: int = 10
    max_repeats: int = 200
    max_time_s: float = 5.0
    target_rse: float = 0.01
    min_sample_ms: float = 1.0

    def __post_init__(self) -> None:
        for name in ("warmup", "min_repeats", "max_repeats"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "warmup" else 1):
                raise ValueError(f"Protocol.{name}={value!r}: expected a positive integer")
        if self.max_repeats < self.min_repeats:
            raise ValueError(f"Protocol.max_repeats={self.max_repeats} is below min_repeats={self.min_repeats}")
        for name in ("warmup_s", "max_time_s", "target_rse", "min_sample_ms"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"Protocol.{name}={value!r}: expected a number >= 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Timing:
    """Raw samples (ms per run, each the mean of `number` runs) on the chosen clock, plus wall time."""

    samples_ms: tuple[float, ...]
    wall_ms: tuple[float, ...]
    number: int
    clock: str

    def stats(self) -> dict[str, Any]:
        x = np.asarray(self.samples_ms)
        q1, med, q3 = np.percentile(x, [25, 50, 75])
        mean = float(x.mean())
        return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "cv": float(x.std() / mean) if mean > 0 else 0.0,
                "min_ms": float(x.min()), "mean_ms": mean, "n": int(x.size), "number": self.number,
                "clock": self.clock, "wall_median_ms": float(np.median(self.wall_ms))}


def _resolve_clock(clock: str, single_thread: bool) -> str:
    if clock not in CLOCKS:
        raise ValueError(f"unknown clock {clock!r}: expected one of {', '.join(CLOCKS)}")
    if clock == "auto":
        return "thread" if single_thread else "wall"
    return clock


def time_callable(run: Callable[[], object], protocol: Protocol = Protocol(), clock: str = "auto",
                  single_thread: bool = True) -> Timing:
    """Time `run()` under `protocol`. `single_thread` says whether all its work is on this thread
    (only then can ``auto`` use the thread's CPU clock)."""
    clock = _resolve_clock(clock, single_thread)
    with pinned_to_one_cpu(single_thread):
        return _time(run, protocol, clock)


def _current_cpu() -> int | None:
    """The CPU the calling thread runs on (Linux: field 39 of /proc/thread-self/stat), or None."""
    try:
        with open("/proc/thread-self/stat", "rb") as f:
            fields_ = f.read().rsplit(b")", 1)[1].split()
        return int(fields_[36])  # the 39th field; the first two (pid, comm) are before the split
    except (OSError, IndexError, ValueError):
        return None


@contextmanager
def pinned_to_one_cpu(enabled: bool = True) -> Iterator[int | None]:
    """Pin the calling thread to the CPU it is on (or the lowest it may use) while the block runs;
    yields that CPU, or None where affinity cannot be set (not Linux, one CPU allowed, refused)."""
    setter, getter = getattr(os, "sched_setaffinity", None), getattr(os, "sched_getaffinity", None)
    if not enabled or setter is None or getter is None:
        yield None
        return
    try:
        allowed = getter(0)
    except OSError:
        yield None
        return
    if len(allowed) < 2:
        yield None
        return
    cpu = _current_cpu()
    cpu = cpu if cpu in allowed else min(allowed)
    try:
        setter(0, {cpu})
    except OSError:
        yield None
        return
    try:
        yield cpu
    finally:
        try:
            setter(0, allowed)
        except OSError:  # pragma: no cover - widening back to what was allowed is not refused
            pass


def _time(run: Callable[[], object], protocol: Protocol, clock: str) -> Timing:
    tick = time.thread_time if clock == "thread" else time.perf_counter
    start = time.perf_counter()
    runs = 0
    while runs < protocol.warmup or time.perf_counter() - start < protocol.warmup_s:
        run()
        runs += 1
    number = 1
    while number < 10_000:  # timeit's autorange: grow `number` until one sample lasts min_sample_ms
        t0 = tick()  # on the measuring clock, so that a preemption does not shrink `number`
        for _ in range(number):
            run()
        elapsed_ms = (tick() - t0) * 1e3
        if elapsed_ms >= protocol.min_sample_ms:
            break
        number = min(10_000, max(2 * number, math.ceil(1.2 * number * protocol.min_sample_ms / max(elapsed_ms, 1e-6))))
    samples: list[float] = []
    walls: list[float] = []
    begin = time.perf_counter()
    while len(samples) < protocol.max_repeats:
        w0, t0 = time.perf_counter(), tick()
        for _ in range(number):
            run()
        t1, w1 = tick(), time.perf_counter()
        samples.append((t1 - t0) * 1e3 / number)
        walls.append((w1 - w0) * 1e3 / number)
        if len(samples) >= protocol.min_repeats:
            if time.perf_counter() - begin >= protocol.max_time_s or _settled(samples, protocol.target_rse):
                break
    return Timing(tuple(samples), tuple(walls), number, clock)


def _settled(samples: list[float], target: float) -> bool:
    q1, med, q3 = np.percentile(samples, [25, 50, 75])
    if med <= 0:
        return True
    rse = 1.2533 * ((q3 - q1) / 1.349) / math.sqrt(len(samples)) / med
    return rse <= target


@dataclass(frozen=True)
class LatencyResult:
    """One latency figure with the facts needed to trust and reproduce it."""

    median_ms: float
    iqr_ms: float
    cv: float
    n: int
    backend: str
    settings: dict[str, Any]
    input_size: int
    batch_size: int = 1
    num_classes: int = 1000
    in_chans: int = 3
    device: dict[str, Any] = field(default_factory=dict)
    runtime: dict[str, str] = field(default_factory=dict)
    min_ms: float = math.nan
    wall_median_ms: float = math.nan
    number: int = 1
    clock: str = "wall"
    arch: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, self.in_chans, self.input_size, self.input_size)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("min_ms", "wall_median_ms"):
            if isinstance(data[key], float) and math.isnan(data[key]):
                data[key] = None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LatencyResult:
        known = {f.name for f in fields(cls)}
        clean = {k: (math.nan if v is None and k in ("min_ms", "wall_median_ms") else v)
                 for k, v in data.items() if k in known}
        return cls(**clean)


def error_line(exc: BaseException, limit: int = 300) -> str:
    """What a one-line error quotes of a runtime's or converter's exception: the first line of its
    message (its type's name when the message is empty), cut at `limit` characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def check_sizes(input_size: int, num_classes: int, batch_size: int, in_chans: int = 3) -> None:
    """ValueError naming the first bad size."""
    for name, value, lo in (("input_size", input_size, 4), ("num_classes", num_classes, 1),
                            ("batch_size", batch_size, 1), ("in_chans", in_chans, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name}={value!r}: expected an integer >= {lo}")


class LatencyBackend:
    """Base class: `measure(arch, input_size, num_classes, batch_size) -> LatencyResult`.

    Contract: results are cached per instance by (canonical arch string, `key()`, input shape,
    num_classes), so asking twice costs a dict lookup; `measure` is thread-safe and measurements on
    one device never overlap (`mnas.latency.device.DeviceLock`, across processes too); `key()` is a
    stable string naming every setting that changes the figure; `describe()` is JSON-friendly.
    Subclasses implement `_measure`, `settings` and `describe`, and, where they can time any model,
    `measure_model` (used to build lookup tables).
    """

    name = "base"
    cache_size = 4096
    precision = "fp32"  # backends that quantize set it per instance ('fp32' or 'int8')

    @property
    def deployment(self) -> tuple[str, str]:
        """(runtime, precision) that this backend's figures stand for: a lookup table built on it
        is valid for that pair only. A device server runs ONNX Runtime."""
        return RUNTIME_OF.get(self.name, self.name), self.precision

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple, LatencyResult] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- what subclasses provide ------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """Every setting that changes a figure (JSON-friendly)."""
        return {}

    def describe(self) -> dict[str, Any]:
        """Backend name, settings, device and runtime versions."""
        return {"backend": self.name, "settings": self.settings()}

    def _measure(self, arch: Arch, input_size: int, num_classes: int, batch_size: int,
                 in_chans: int = 3) -> LatencyResult:
        raise NotImplementedError

    def measure_model(self, model: Any, input_shape: tuple[int, ...]) -> LatencyResult:
        """Time any module (a single layer, say) at `input_shape`; not cached."""
        raise NotImplementedError(f"backend {self.name!r} cannot time an arbitrary model")

    # -- shared behaviour -------------------------------------------------------------------
    def key(self) -> str:
        return json.dumps({"backend": self.name, **self.settings()}, sort_keys=True, separators=(",", ":"))

    def measure(self, arch: Arch | str, input_size: int = 224, num_classes: int = 1000,
                batch_size: int = 1, in_chans: int = 3) -> LatencyResult:
        """Latency of `arch` at batch x in_chans x input_size x input_size (cached)."""
        arch = as_arch(arch)
        check_sizes(input_size, num_classes, batch_size, in_chans)
        shape = (int(batch_size), int(in_chans), int(input_size), int(input_size))
        cache_key = (str(arch), self.key(), shape, int(num_classes))
        with self._cache_lock:
            hit = self._cache.get(cache_key)
            if hit is not None:
                self._cache.move_to_end(cache_key)
                return hit
        result = self._measure(arch, int(input_size), int(num_classes), int(batch_size), in_chans=int(in_chans))
        with self._cache_lock:
            self._cache[cache_key] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return result

    def clear_cache(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings().items() if k != "protocol")
        return f"{type(self).__name__}({args})"


class OnnxBackend(LatencyBackend):
    """A backend that times ONNX bytes (ONNX Runtime here, or a device server): subclasses provide
    `measure_onnx(model, shape) -> stats` and `_result(stats, shape, num_classes, arch)`."""

    def measure_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        raise NotImplementedError

    def _result(self, stats: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                arch: str | None) -> LatencyResult:
        raise NotImplementedError

    def to_onnx(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        """The ONNX bytes this backend times for `model`: float, or QDQ int8 (static, per-channel,
        calibrated on `self.calibration` seeded random inputs) when `precision` is 'int8'."""
        from mnas.latency.export import onnx_bytes

        raw = onnx_bytes(model, tuple(input_shape))
        if self.precision != "int8":
            return raw
        from mnas.latency.quantize import ort_quantize, random_calibration

        return ort_quantize(raw, random_calibration(input_shape, getattr(self, "calibration", 8)))

    def measure_model(self, model: Any, input_shape: tuple[int, ...]) -> LatencyResult:
        stats = self.measure_onnx(self.to_onnx(model, tuple(input_shape)), input_shape)
        return self._result(stats, tuple(input_shape), 0, None)

    def _measure(self, arch: Arch, input_size: int, num_classes: int, batch_size: int,
                 in_chans: int = 3) -> LatencyResult:
        from mnas.latency.export import timing_model

        shape = (batch_size, in_chans, input_size, input_size)
        model = timing_model(arch, input_size, num_classes, batch_size, in_chans)
        stats = self.measure_onnx(self.to_onnx(model, shape), shape)
        return self._result(stats, shape, num_classes, str(arch))
