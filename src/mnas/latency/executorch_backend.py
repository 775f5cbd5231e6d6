"""ExecuTorch backend: the model captured with torch.export, lowered to XNNPACK and serialised as a
.pte program, then run by ExecuTorch's runtime (`executorch.runtime`) on this CPU — what an
ExecuTorch deployment on a phone or a Linux board runs.

- `pte_bytes(model, shape, precision, calibration)`: fp32, or int8 by static PT2E quantization with
  `XNNPACKQuantizer` (symmetric per-channel int8 weights, int8 activations calibrated on
  `calibration` inputs); the program takes and gives float tensors (quantize/dequantize at its edges
  run inside XNNPACK).
- `measure_pte(model, shape, threads)`: the shared protocol (`time_callable`); ExecuTorch's thread
  pool is process-wide, so it is set to `threads` before each measurement. At one thread XNNPACK
  runs on the calling thread and the thread's CPU clock is used.
- `ExecuTorch(threads, precision, calibration)`: the `LatencyBackend`.

Packages: ``pip install 'mnas[executorch]'`` (keep torch==2.13.0 pinned). Lowering takes seconds
per network (15-50 s on a busy 2-core machine).
"""

from __future__ import annotations

import os
import threading
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

__all__ = ["ExecuTorch", "executorch_available", "executorch_runtime", "measure_pte", "pte_bytes", "pte_method",
           "run_pte"]

_PURPOSE = "the executorch latency backend"
_POOL_LOCK = threading.Lock()  # the runtime's thread pool is process-wide


def executorch_available() -> bool:
    try:
        runtime_module("executorch.runtime", _PURPOSE)
    except ImportError:
        return False
    return True


def executorch_runtime() -> dict[str, str]:
    return {**runtime_versions("torch", "numpy"), **package_versions("executorch", "torchao")}


def pte_bytes(model: Any, input_shape: tuple[int, ...], precision: str = "fp32",
              calibration: list[np.ndarray] | int = DEFAULT_CALIBRATION) -> bytes:
    """`model` (a torch module) as an XNNPACK-lowered .pte program at `input_shape`; int8 by static
    PT2E quantization with XNNPACK's quantizer, calibrated on `calibration` (inputs, or a number of
    seeded random ones)."""
    import torch

    precision = check_precision(precision)
    exir = runtime_module("executorch.exir", _PURPOSE)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    if isinstance(calibration, int):
        check_calibration(calibration)
    example = torch.zeros(tuple(input_shape))
    model = model.eval()
    try:
        return _lower(exir, XnnpackPartitioner, model, example, input_shape, precision, calibration)
    except ImportError:
        raise
    except Exception as exc:  # noqa: BLE001 - export and lowering raise many types for an op they cannot take
        raise ValueError(f"ExecuTorch cannot lower this network ({precision}): {type(exc).__name__}: {error_line(exc)}"
                         ) from None


def _lower(exir: Any, partitioner: Any, model: Any, example: Any, input_shape: tuple[int, ...], precision: str,
           calibration: list[np.ndarray] | int) -> bytes:
    import torch

    from mnas.latency.export import torch_threads

    with warnings.catch_warnings(), torch.no_grad(), torch_threads(1):
        warnings.simplefilter("ignore")
        if precision == "int8":
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )

            from mnas.latency.quantize import pt2e_quantize

            inputs = random_calibration(input_shape, calibration) if isinstance(calibration, int) else calibration
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            model = pt2e_quantize(model, example, inputs, quantizer)
        program = torch.export.export(model, (example,))
        lowered = exir.to_edge_transform_and_lower(program, partitioner=[partitioner()])
        return bytes(lowered.to_executorch().buffer)


def _set_threads(threads: int) -> None:
    lib = runtime_module("executorch.extension.pybindings.portable_lib", _PURPOSE)
    if lib._threadpool_get_thread_count() != threads:
        os.environ.setdefault("ET_LOG_LEVEL", "error")
        lib._unsafe_reset_threadpool(int(threads))


def pte_method(model: bytes, threads: int = 1) -> Any:
    """The loaded ``forward`` method of a .pte program; ValueError if the bytes are not one."""
    rt = runtime_module("executorch.runtime", _PURPOSE)
    _set_threads(threads)
    try:
        program = rt.Runtime.get().load_program(bytes(model))
        method = program.load_method("forward")
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"not a valid .pte program for ExecuTorch: {error_line(exc)}") from None
    if method is None:
        raise ValueError("the .pte program has no 'forward' method")
    method._mnas_program = program  # keep the program alive as long as its method
    return method


def measure_pte(model: bytes, input_shape: tuple[int, ...], threads: int = 1, protocol: Protocol | None = None,
                clock: str = "auto", lock: str | None = "cpu") -> dict[str, Any]:
    """Time a .pte program on this CPU; statistics as `Timing.stats()`."""
    import torch

    from mnas.latency.ort import check_shape

    shape = check_shape(input_shape)
    protocol = protocol or Protocol()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    with _POOL_LOCK:
        method = pte_method(model, threads)
        try:
            method.execute([x])
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"the program does not run at input shape {list(shape)}: {error_line(exc)}") from None
        execute, inputs = method.execute, [x]

        def run() -> None:
            execute(inputs)

        if lock is None:
            return time_callable(run, protocol, clock, single_thread=threads == 1).stats()
        with device_lock(lock):
            _set_threads(threads)
            return time_callable(run, protocol, clock, single_thread=threads == 1).stats()


def run_pte(model: bytes | Any, x: np.ndarray, threads: int = 1) -> np.ndarray:
    """Float logits of a .pte program (bytes, or a loaded method) for float32 NCHW inputs `x`, one image at a time."""
    import torch

    method = model if hasattr(model, "execute") else pte_method(model, threads)
    rows = [method.execute([torch.from_numpy(np.ascontiguousarray(x[i:i + 1], np.float32))])[0]
            for i in range(len(x))]
    return np.concatenate([np.asarray(r, np.float32).reshape(1, -1) for r in rows], axis=0)


class ExecuTorch(ConvertedBackend):
    """The model lowered to XNNPACK as a .pte program (fp32 or int8), run by ExecuTorch's runtime."""

    name = "executorch"
    runtime = "executorch"

    def _require(self) -> None:
        runtime_module("executorch.runtime", _PURPOSE)

    def convert(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        return pte_bytes(model, tuple(input_shape), self.precision, self.calibration)

    def _time(self, file: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        return measure_pte(file, tuple(input_shape), self.threads, self.protocol, self.clock)

    def _versions(self) -> dict[str, str]:
        return executorch_runtime()
