"""PyTorch eager backend: on CPU with a fixed thread count, or on CUDA timed with device events."""

from __future__ import annotations

from typing import Any

from mnas.latency.base import LatencyBackend, LatencyResult, Protocol, Timing, time_callable
from mnas.latency.device import device_info, device_lock, runtime_versions
from mnas.space import Arch

__all__ = ["Torch"]


class Torch(LatencyBackend):
    """Eager PyTorch. CPU: `threads` intra-op threads (default 1, MnasNet's single big core);
    ``device='cuda'``: CUDA events around each sample, with a synchronise after it."""

    name = "torch"

    def __init__(self, threads: int = 1, device: str = "cpu", clock: str = "auto", protocol: Protocol | None = None):
        super().__init__()
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: expected a positive integer")
        if not isinstance(device, str) or not (device == "cpu" or device.startswith("cuda")):
            raise ValueError(f"device={device!r}: expected 'cpu' or 'cuda' (or 'cuda:N')")
        if device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise ValueError(f"device={device!r} but PyTorch sees no CUDA GPU here: use device='cpu'")
        self.threads, self.device, self.clock = threads, device, clock
        self.protocol = protocol or Protocol()

    def settings(self) -> dict[str, Any]:
        return {"threads": self.threads, "device": self.device, "clock": self.clock,
                "protocol": self.protocol.to_dict()}

    def _device_info(self) -> dict[str, Any]:
        info = dict(device_info())
        if self.device.startswith("cuda"):
            import torch

            info["gpu"] = torch.cuda.get_device_name(torch.device(self.device))
        return info

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "settings": self.settings(), "device": self._device_info(),
                "runtime": runtime_versions("torch", "numpy")}

    def _time(self, model: Any, input_shape: tuple[int, ...]) -> Timing:
        import torch

        dev = torch.device(self.device)
        model = model.to(dev).eval()
        x = torch.randn(tuple(input_shape), generator=torch.Generator().manual_seed(0)).to(dev)
        if dev.type == "cuda":
            return self._time_cuda(model, x)
        previous = torch.get_num_threads()
        with device_lock("cpu"), torch.inference_mode():
            torch.set_num_threads(self.threads)
            try:
                return time_callable(lambda: model(x), self.protocol, self.clock, single_thread=self.threads == 1)
            finally:
                torch.set_num_threads(previous)

    def _time_cuda(self, model: Any, x: Any) -> Timing:
        import torch

        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        samples: list[float] = []

        def run() -> None:
            model(x)

        with device_lock(self.device.replace(":", "")), torch.inference_mode():
            # Warm-up and the sample count come from the CPU protocol; each sample is then event-timed.
            warm = time_callable(lambda: (run(), torch.cuda.synchronize()), self.protocol, "wall", False)
            number = warm.number
            for _ in range(max(self.protocol.min_repeats, min(len(warm.samples_ms), self.protocol.max_repeats))):
                start.record()
                for _ in range(number):
                    run()
                end.record()
                torch.cuda.synchronize()
                samples.append(start.elapsed_time(end) / number)
        return Timing(tuple(samples), warm.wall_ms, number, "cuda_event")

    def _result(self, timing: Timing, shape: tuple[int, ...], num_classes: int, arch: str | None) -> LatencyResult:
        s = timing.stats()
        return LatencyResult(
            median_ms=s["median_ms"], iqr_ms=s["iqr_ms"], cv=s["cv"], n=s["n"], backend=self.name,
            settings=self.settings(), input_size=int(shape[-1]), batch_size=int(shape[0]), num_classes=num_classes,
            in_chans=int(shape[1]) if len(shape) == 4 else 0,
            device=self._device_info(), runtime=runtime_versions("torch", "numpy"), min_ms=s["min_ms"],
            wall_median_ms=s["wall_median_ms"], number=s["number"], clock=s["clock"], arch=arch)

    def measure_model(self, model: Any, input_shape: tuple[int, ...]) -> LatencyResult:
        return self._result(self._time(model, tuple(input_shape)), tuple(input_shape), 0, None)

    def _measure(self, arch: Arch, input_size: int, num_classes: int, batch_size: int,
                 in_chans: int = 3) -> LatencyResult:
        from mnas.latency.export import timing_model

        shape = (batch_size, in_chans, input_size, input_size)
        model = timing_model(arch, input_size, num_classes, batch_size, in_chans)
        return self._result(self._time(model, shape), shape, num_classes, str(arch))
