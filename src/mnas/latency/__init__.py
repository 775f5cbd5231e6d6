"""Layer 3: latency, measured on the device that will run the model, or predicted from a table.

Backends (one base class, `LatencyBackend`; one shared test suite):

- `OnnxRuntime(threads=1)`: ONNX export in memory, ONNX Runtime's CPU provider (the default);
- `Torch(threads=1, device="cpu")`: eager PyTorch, on CPU or CUDA;
- `Remote(url, token)`: a device server (`mnas device serve`) does the timing;
- `LiteRT(threads=1, precision="fp32")`: .tflite via litert_torch, LiteRT's interpreter + XNNPACK (extra `litert`);
- `ExecuTorch(threads=1, precision="fp32")`: .pte lowered to XNNPACK, ExecuTorch's runtime (extra `executorch`);
- `LookupTable.load(path)`: the sum of per-layer latencies measured on the device.

`precision="int8"` (ONNX Runtime, LiteRT, ExecuTorch): static post-training quantization with
each runtime's own quantizer (`mnas.latency.quantize`); `backend.deployment` is the
(runtime, precision) pair a figure stands for, which a lookup table records and checks.

Importing this package does not import PyTorch (the device server depends on that).
"""

from __future__ import annotations

from typing import Any

from mnas.latency.base import LatencyBackend, LatencyResult, Protocol, time_callable
from mnas.latency.device import DeviceLock, device_info, device_lock
from mnas.latency.executorch_backend import ExecuTorch
from mnas.latency.litert import LiteRT
from mnas.latency.lut import LayerUnit, LookupTable, arch_units
from mnas.latency.ort import OnnxRuntime, measure_onnx
from mnas.latency.quantize import PRECISIONS
from mnas.latency.remote import DeviceUnavailable, DeviceUnreachableError, Remote
from mnas.latency.torch_backend import Torch

__all__ = [
    "BACKENDS", "PRECISIONS", "DeviceLock", "DeviceUnavailable", "DeviceUnreachableError", "ExecuTorch",
    "LatencyBackend", "LatencyResult", "LayerUnit", "LiteRT", "LookupTable",
    "OnnxRuntime", "Protocol", "Remote", "Torch", "arch_units", "build_lut", "device_info", "device_lock",
    "enumerate_units", "get_backend", "measure_onnx", "onnx_bytes", "time_callable", "validate_lut",
]

BACKENDS = ("onnxruntime", "torch", "remote", "lut", "litert", "executorch")
_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "pytorch": "torch", "tflite-runtime": "litert",
            "et": "executorch"}


def get_backend(name: str = "onnxruntime", **settings: Any) -> LatencyBackend:
    """A backend by name with its settings: ``get_backend("onnxruntime", threads=1)``,
    ``get_backend("remote", url=..., token=...)``, ``get_backend("lut", path=...)``,
    ``get_backend("litert", precision="int8")``; ``get_backend("lut", path=..., runtime="litert",
    precision="int8")`` refuses a table built for another runtime or precision."""
    key = _ALIASES.get(name, name)
    classes = {"onnxruntime": OnnxRuntime, "torch": Torch, "remote": Remote, "litert": LiteRT, "executorch": ExecuTorch}
    if key in classes:
        try:
            return classes[key](**settings)
        except TypeError as exc:  # an unknown or missing setting
            raise ValueError(f"latency backend {key!r}: {exc}") from None
    if key == "lut":
        if "path" not in settings or not set(settings) <= {"path", "runtime", "precision"}:
            raise ValueError("the lut backend takes path= (the table built by 'mnas latency build-lut') and optionally"
                             " runtime= and precision= to check it against")
        table = LookupTable.load(settings["path"])
        table.check_deployment(settings.get("runtime"), settings.get("precision"))
        return table
    raise ValueError(f"unknown latency backend {name!r}: expected one of {', '.join(BACKENDS)}")


def __getattr__(name: str) -> Any:
    # Torch-dependent helpers, imported on first use so that the package stays torch-free.
    if name == "onnx_bytes":
        from mnas.latency.export import onnx_bytes
        return onnx_bytes
    if name in ("build_lut", "enumerate_units", "validate_lut"):
        from mnas.latency import lut_build
        return getattr(lut_build, name)
    raise AttributeError(f"module 'mnas.latency' has no attribute {name!r}")
