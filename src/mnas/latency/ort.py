"""ONNX Runtime backend: what a deployment would run, on this machine's CPU.

`measure_onnx` (ONNX bytes in, statistics out) is torch-free and shared with the device server;
`OnnxRuntime` exports a PyTorch model in memory first. Runs use I/O binding with pre-allocated
input and output buffers, so a figure is the graph's time, not Python's copies.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mnas._util import require
from mnas.latency.base import LatencyResult, OnnxBackend, Protocol, error_line, time_callable
from mnas.latency.device import device_info, device_lock, runtime_versions
from mnas.latency.quantize import DEFAULT_CALIBRATION, check_calibration, check_precision

__all__ = ["MAX_INPUT_ELEMENTS", "OnnxRuntime", "check_shape", "io_binding", "measure_onnx", "ort_session"]

MAX_INPUT_ELEMENTS = 64 * 2**20  # 256 MiB of float32: refuse anything larger rather than swap


def check_shape(shape: Any) -> tuple[int, ...]:
    """A valid input shape as a tuple of positive ints; ValueError saying what is wrong otherwise."""
    if isinstance(shape, str) or not hasattr(shape, "__iter__"):
        raise ValueError(f"input shape {shape!r}: expected a list of positive integers, e.g. [1, 3, 224, 224]")
    dims = list(shape)
    if not 1 <= len(dims) <= 8 or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                                       for d in dims):
        raise ValueError(f"input shape {dims!r}: expected 1 to 8 positive integers, e.g. [1, 3, 224, 224]")
    if math.prod(int(d) for d in dims) > MAX_INPUT_ELEMENTS:
        raise ValueError(f"input shape {dims!r} has more than {MAX_INPUT_ELEMENTS} elements")
    return tuple(int(d) for d in dims)


def ort_session(model: bytes, threads: int = 1, inter_threads: int = 1) -> Any:
    """An ONNX Runtime CPU session with fixed thread counts; ValueError if `model` is not valid ONNX."""
    ort = require("onnxruntime", "the onnxruntime latency backend")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = inter_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own types for every kind of bad file
        raise ValueError(f"not a valid ONNX model for ONNX Runtime: {error_line(exc)}") from None


def _bind(session: Any, shape: tuple[int, ...], seed: int = 0) -> tuple[Any, list[Any]]:
    """An I/O binding with a random input of `shape` and pre-allocated outputs (kept alive by the caller)."""
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ValueError(f"the model has {len(inputs)} inputs: latency is measured for models with exactly one")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise ValueError(f"the model's input is {spec.type}: expected tensor(float)")
    if len(spec.shape) != len(shape) or any(
            isinstance(d, int) and d != s for d, s in zip(spec.shape, shape, strict=True)):
        raise ValueError(f"input shape {list(shape)} does not fit the model's input {list(spec.shape)}")
    x = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
    feeds = {spec.name: x}
    try:
        outputs = session.run(None, feeds)
    except Exception as exc:  # noqa: BLE001 - a shape the graph cannot take fails here
        raise ValueError(f"the model does not run at input shape {list(shape)}: {error_line(exc)}") from None
    return io_binding(session, spec.name, x, outputs)


def io_binding(session: Any, input_name: str, x: np.ndarray, outputs: list[Any]) -> tuple[Any, list[Any]]:
    """An I/O binding of `session` to the input `x` and to output buffers shaped as `outputs` (a run's
    results), with the OrtValues it binds: the caller keeps them alive while the binding is used.
    Shared with the device server's worker (`mnas.latency.server_job`)."""
    import onnxruntime as ort

    binding = session.io_binding()
    keep = [ort.OrtValue.ortvalue_from_numpy(x)]
    binding.bind_ortvalue_input(input_name, keep[0])
    for out_spec, value in zip(session.get_outputs(), outputs, strict=True):
        buf = ort.OrtValue.ortvalue_from_numpy(np.empty_like(np.asarray(value)))
        binding.bind_ortvalue_output(out_spec.name, buf)
        keep.append(buf)
    return binding, keep


def measure_onnx(model: bytes, input_shape: Any, threads: int = 1, inter_threads: int = 1,
                 protocol: Protocol | None = None, clock: str = "auto", lock: str | None = "cpu") -> dict[str, Any]:
    """Time an ONNX model on this CPU; statistics as `Timing.stats()`. ValueError for a bad model or shape.

    Holds the device lock `lock` (None: none) while the session is created and timed."""
    shape = check_shape(input_shape)
    protocol = protocol or Protocol()
    session = ort_session(model, threads, inter_threads)
    binding, keep = _bind(session, shape)
    run_binding = session.run_with_iobinding

    def run() -> None:
        run_binding(binding)

    if lock is None:
        timing = time_callable(run, protocol, clock, single_thread=threads == 1)
    else:
        with device_lock(lock):
            timing = time_callable(run, protocol, clock, single_thread=threads == 1)
    del keep
    return timing.stats()


def ort_runtime() -> dict[str, str]:
    return runtime_versions("onnxruntime", "onnx", "torch", "numpy")


class OnnxRuntime(OnnxBackend):
    """The model exported to ONNX in memory and run by ONNX Runtime's CPU provider (the default backend)."""

    name = "onnxruntime"

    def __init__(self, threads: int = 1, inter_threads: int = 1, clock: str = "auto",
                 protocol: Protocol | None = None, precision: str = "fp32", calibration: int = DEFAULT_CALIBRATION):
        super().__init__()
        for label, value in (("threads", threads), ("inter_threads", inter_threads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{label}={value!r}: expected a positive integer")
        self.precision, self.calibration = check_precision(precision), check_calibration(calibration)
        require("onnxruntime", "the onnxruntime latency backend")
        self.threads, self.inter_threads, self.clock = threads, inter_threads, clock
        self.protocol = protocol or Protocol()

    def settings(self) -> dict[str, Any]:
        # fp32 keys stay as they were before precision existed (caches and tables built then still match)
        extra = {} if self.precision == "fp32" else {"precision": self.precision, "calibration": self.calibration}
        return {"threads": self.threads, "inter_threads": self.inter_threads, "clock": self.clock,
                "protocol": self.protocol.to_dict(), **extra}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "settings": self.settings(), "device": device_info(), "runtime": ort_runtime()}

    def _result(self, stats: dict[str, Any], input_shape: tuple[int, ...], num_classes: int,
                arch: str | None) -> LatencyResult:
        return LatencyResult(
            median_ms=stats["median_ms"], iqr_ms=stats["iqr_ms"], cv=stats["cv"], n=stats["n"], backend=self.name,
            settings=self.settings(), input_size=int(input_shape[-1]), batch_size=int(input_shape[0]),
            in_chans=int(input_shape[1]) if len(input_shape) == 4 else 0,
            num_classes=num_classes, device=device_info(), runtime=ort_runtime(), min_ms=stats["min_ms"],
            wall_median_ms=stats["wall_median_ms"], number=stats["number"], clock=stats["clock"], arch=arch)

    def measure_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Statistics for ONNX bytes under this backend's settings."""
        return measure_onnx(model, input_shape, self.threads, self.inter_threads, self.protocol, self.clock)

