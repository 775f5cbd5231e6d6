"""`ConvertedBackend`: what the LiteRT and ExecuTorch backends share — a network converted to a
deployment file (.tflite, .pte) in fp32 or int8, then timed in its runtime by the shared protocol.

A subclass names its runtime and says how to check the packages (`_require`), convert a model
(`convert`), time a file (`_time`) and list the versions that made a figure (`_versions`).
"""

from __future__ import annotations

from typing import Any

from mnas.latency.base import LatencyBackend, LatencyResult, Protocol
from mnas.latency.device import device_info
from mnas.latency.quantize import DEFAULT_CALIBRATION, check_calibration, check_precision
from mnas.space import Arch

__all__ = ["ConvertedBackend"]


class ConvertedBackend(LatencyBackend):
    """Base of the backends that time a converted file; `threads` of the runtime, `precision` fp32 or
    int8 (static PTQ on `calibration` inputs), `clock` and `protocol` as for ONNX Runtime."""

    def __init__(self, threads: int = 1, precision: str = "fp32", calibration: int = DEFAULT_CALIBRATION,
                 clock: str = "auto", protocol: Protocol | None = None):
        super().__init__()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: expected a positive integer")
        self.precision = check_precision(precision)
        self.calibration = check_calibration(calibration)
        self._require()
        self.threads, self.clock = threads, clock
        self.protocol = protocol or Protocol()

    # -- what a runtime provides --------------------------------------------------------------------
    def _require(self) -> None:
        """Import the runtime's packages, or raise ImportError naming the extra to install."""
        raise NotImplementedError

    def convert(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        """`model` as this runtime's file, in this backend's precision."""
        raise NotImplementedError

    def _time(self, file: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """The shared protocol's statistics of running `file` on inputs of `input_shape`."""
        raise NotImplementedError

    def _versions(self) -> dict[str, str]:
        raise NotImplementedError

    # -- shared ---------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads, "precision": self.precision, "calibration": self.calibration,
                "clock": self.clock, "protocol": self.protocol.to_dict()}

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "settings": self.settings(), "device": device_info(), "runtime": self._versions()}

    def _result(self, stats: dict[str, Any], shape: tuple[int, ...], num_classes: int, arch: str | None) -> LatencyResult:
        return LatencyResult(
            median_ms=stats["median_ms"], iqr_ms=stats["iqr_ms"], cv=stats["cv"], n=stats["n"], backend=self.name,
            settings=self.settings(), input_size=int(shape[-1]), batch_size=int(shape[0]),
            in_chans=int(shape[1]) if len(shape) == 4 else 0, num_classes=num_classes, device=device_info(),
            runtime=self._versions(), min_ms=stats["min_ms"], wall_median_ms=stats["wall_median_ms"],
            number=stats["number"], clock=stats["clock"], arch=arch)

    def measure_model(self, model: Any, input_shape: tuple[int, ...]) -> LatencyResult:
        shape = tuple(input_shape)
        return self._result(self._time(self.convert(model, shape), shape), shape, 0, None)

    def _measure(self, arch: Arch, input_size: int, num_classes: int, batch_size: int,
                 in_chans: int = 3) -> LatencyResult:
        from mnas.latency.export import timing_model

        shape = (batch_size, in_chans, input_size, input_size)
        model = timing_model(arch, input_size, num_classes, batch_size, in_chans)
        return self._result(self._time(self.convert(model, shape), shape), shape, num_classes, str(arch))
