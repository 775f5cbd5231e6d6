"""LiteRT (TensorFlow Lite) backend: the model converted to .tflite and run by LiteRT's interpreter
with its XNNPACK delegate, on this CPU — what an Android or embedded-Linux deployment runs.

- `tflite_bytes(model, shape, precision, calibration)`: PyTorch -> .tflite with `litert_torch`
  (fp32, or int8 by static PT2E quantization with litert_torch's quantizer: symmetric per-channel
  int8 weights, int8 activations calibrated on `calibration` inputs; int8 models take and give
  int8 tensors with the scale and zero point in the file).
- `measure_tflite(model, shape, threads)`: ai_edge_litert only (no torch), timed by the shared
  protocol (`mnas.latency.base.time_callable`: warm-up, autoranged samples, median/IQR/CV); at one
  thread the interpreter runs on the calling thread, so the thread's CPU clock is used.
- `LiteRT(threads, precision, calibration)`: the `LatencyBackend`.

Packages: ``pip install 'mnas[litert]'`` (ai-edge-litert, litert-torch; keep torch==2.13.0 pinned).
Conversion takes seconds per network (10-40 s on a busy 2-core machine, most of it the first time).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from mnas.latency.base import Protocol, error_line, time_callable
from mnas.latency.converted import ConvertedBackend
from mnas.latency.device import device_lock, runtime_versions
from mnas.latency.quantize import (
    DEFAULT_CALIBRATION,
    check_calibration,
    check_precision,
    package_versions,
    random_calibration,
    runtime_module,
)

__all__ = ["LiteRT", "litert_available", "litert_runtime", "measure_tflite", "run_tflite", "tflite_bytes",
           "tflite_interpreter"]

_PURPOSE = "the litert latency backend"


def litert_available() -> bool:
    """Whether the LiteRT interpreter and the PyTorch converter are installed."""
    try:
        runtime_module("ai_edge_litert.interpreter", _PURPOSE)
        runtime_module("litert_torch", _PURPOSE)
    except ImportError:
        return False
    return True


def litert_runtime() -> dict[str, str]:
    return {**runtime_versions("torch", "numpy"), **package_versions("ai-edge-litert", "litert-torch", "torchao")}


def _quiet_converter() -> None:
    os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def tflite_bytes(model: Any, input_shape: tuple[int, ...], precision: str = "fp32",
                 calibration: list[np.ndarray] | int = DEFAULT_CALIBRATION) -> bytes:
    """`model` (a torch module) as a .tflite flatbuffer at `input_shape`; int8 by static PT2E
    quantization calibrated on `calibration` (inputs, or a number of seeded random ones)."""
    import torch

    precision = check_precision(precision)
    if isinstance(calibration, int):
        check_calibration(calibration)
    _quiet_converter()
    litert_torch = runtime_module("litert_torch", _PURPOSE)
    example = torch.zeros(tuple(input_shape))
    model = model.eval()
    try:
        return _convert(litert_torch, model, example, input_shape, precision, calibration)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the converter raises many types for an op or shape it cannot take
        raise ValueError(f"LiteRT cannot convert this network ({precision}): {type(exc).__name__}: {error_line(exc)}") from None


def _convert(litert_torch: Any, model: Any, example: Any, input_shape: tuple[int, ...], precision: str,
             calibration: list[np.ndarray] | int) -> bytes:
    import torch

    from mnas.latency.export import torch_threads

    with warnings.catch_warnings(), torch.no_grad(), torch_threads(1):
        warnings.simplefilter("ignore")
        if precision == "fp32":
            return bytes(litert_torch.convert(model, (example,)).model_content())
        from litert_torch.quantize import pt2e_quantizer, quant_config

        from mnas.latency.quantize import pt2e_quantize

        inputs = random_calibration(input_shape, calibration) if isinstance(calibration, int) else calibration
        quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
            pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True))
        quantized = pt2e_quantize(model, example, inputs, quantizer, fold_quantize=False)
        edge = litert_torch.convert(quantized, (example,),
                                    quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
        return bytes(edge.model_content())


def tflite_interpreter(model: bytes, threads: int = 1) -> Any:
    """A LiteRT interpreter (XNNPACK delegate) for `model`, tensors allocated; ValueError if not a .tflite."""
    interp = runtime_module("ai_edge_litert.interpreter", _PURPOSE)
    try:
        it = interp.Interpreter(model_content=bytes(model), num_threads=int(threads))
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ValueError(f"not a valid .tflite model for LiteRT: {error_line(exc)}") from None
    return it


def _input_array(detail: dict[str, Any], shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


def _check_input(it: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    details = it.get_input_details()
    if len(details) != 1:
        raise ValueError(f"the model has {len(details)} inputs: latency is measured for models with exactly one")
    if tuple(int(d) for d in details[0]["shape"]) != tuple(shape):
        raise ValueError(f"input shape {list(shape)} does not fit the model's input {list(details[0]['shape'])}")
    return details[0]


def measure_tflite(model: bytes, input_shape: tuple[int, ...], threads: int = 1, protocol: Protocol | None = None,
                   clock: str = "auto", lock: str | None = "cpu") -> dict[str, Any]:
    """Time a .tflite model on this CPU; statistics as `Timing.stats()`. Holds the device lock
    `lock` (None: none) while timing."""
    from mnas.latency.ort import check_shape

    shape = check_shape(input_shape)
    protocol = protocol or Protocol()
    it = tflite_interpreter(model, threads)
    detail = _check_input(it, shape)
    it.set_tensor(detail["index"], _input_array(detail, shape))
    invoke = it.invoke
    invoke()  # a shape or op the runtime cannot take fails here, before the lock
    if lock is None:
        return time_callable(invoke, protocol, clock, single_thread=threads == 1).stats()
    with device_lock(lock):
        return time_callable(invoke, protocol, clock, single_thread=threads == 1).stats()


def run_tflite(model: bytes | Any, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Float logits of a .tflite model (bytes, or an interpreter) for float32 NCHW inputs `x`, one
    image at a time; an int8 model's input is quantized and its output dequantized with the file's
    scale and zero point."""
    it = model if hasattr(model, "invoke") else tflite_interpreter(model, threads)
    detail, out = it.get_input_details()[0], it.get_output_details()[0]
    rows = []
    for i in range(len(x)):
        xi = np.asarray(x[i:i + 1], np.float32)
        dtype = np.dtype(detail["dtype"])
        if dtype.kind != "f":
            scale, zero = detail["quantization"]
            info = np.iinfo(dtype)
            xi = np.clip(np.round(xi / scale + zero), info.min, info.max).astype(dtype)
        it.set_tensor(detail["index"], xi)
        it.invoke()
        y = it.get_tensor(out["index"])
        if np.dtype(out["dtype"]).kind != "f":
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        rows.append(np.asarray(y, np.float32).reshape(1, -1))
    return np.concatenate(rows, axis=0)


class LiteRT(ConvertedBackend):
    """The model converted to .tflite (fp32 or int8) and run by LiteRT's interpreter + XNNPACK."""

    name = "litert"
    runtime = "litert"

    def _require(self) -> None:
        runtime_module("ai_edge_litert.interpreter", _PURPOSE)
        runtime_module("litert_torch", _PURPOSE)

    def convert(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        return tflite_bytes(model, tuple(input_shape), self.precision, self.calibration)

    def _time(self, file: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        return measure_tflite(file, tuple(input_shape), self.threads, self.protocol, self.clock)

    def _versions(self) -> dict[str, str]:
        return litert_runtime()
