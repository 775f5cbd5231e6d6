"""Run an exported instance-aware model with NumPy and ONNX Runtime only (no PyTorch, no mnas training code).

    from mnas.instance.runner import InstanceRunner
    runner = InstanceRunner("export_dir", threshold=0.5)       # or budget_ms=3.0
    out = runner.predict(images)                               # uint8 (N, H, W, C)
    out["labels"], out["routes"], out["fallbacks"]

Per image: normalise, run the controller, turn its probabilities into a route with the QoS knob
(a threshold, or a latency budget on the table's predicted milliseconds), run that route's
network. A route that was not exported runs on the nearest exported one (fewest module switches
apart, then the lower predicted latency), counted in ``fallbacks``. One ONNX Runtime session per
route, created on first use, one intra-op thread by default (the latency the figures assume).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mnas.instance.qos import budget_policy, check_qos, threshold_policy
from mnas.instance.routes import parse_route, policy_bits, route_string

__all__ = ["InstanceRunner"]

FORMAT = "mnas.instance.export/1"


def _session(path: Path, threads: int) -> Any:
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise ImportError("the instance runner needs onnxruntime: pip install 'mnas[server]'") from exc
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class InstanceRunner:
    """An export directory (see `mnas.instance.export`) loaded for inference."""

    def __init__(self, directory: str | Path, threshold: float | None = None, budget_ms: float | None = None,
                 threads: int = 1):
        self.directory = Path(directory)
        path = self.directory / "manifest.json"
        if not path.is_file():
            raise FileNotFoundError(f"no manifest.json in {self.directory}: not an instance export (mnas instance export)")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{path}: format {self.manifest.get('format')!r}, expected {FORMAT!r}")
        check_qos(threshold, budget_ms)
        self.threshold = self.manifest["threshold"] if threshold is None and budget_ms is None else threshold
        self.budget_ms, self.threads = budget_ms, threads
        m = self.manifest
        self.skippable = [bool(s) for s in m["skippable"]]
        self.mean = np.asarray(m["mean"], dtype=np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(m["std"], dtype=np.float32).reshape(1, -1, 1, 1)
        table = m["table"]
        self.modules_ms = np.asarray(table["modules_ms"], dtype=np.float64)
        self.fixed_ms = float(table["stem_head_ms"]) + float(table["controller_ms"])
        self.controller = _session(self.directory / m["controller"], threads)
        self.exported = {text: parse_route(text, m["num_layers"]) for text in m["routes"]}
        self._bits = {t: self._unpack(r) for t, r in self.exported.items()}
        self._sessions: dict[str, Any] = {}
        self._nearest: dict[str, str] = {}

    @staticmethod
    def _unpack(route: tuple[int, ...]) -> np.ndarray:
        return ((np.asarray(route)[:, None] >> np.arange(5)) & 1).astype(bool).ravel()

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, C) -> normalised float32 (N, C, H, W)."""
        images = np.asarray(images)
        size, chans = self.manifest["input_size"], self.manifest["in_chans"]
        if images.ndim != 4 or images.shape[1:] != (size, size, chans) or images.dtype != np.uint8:
            raise ValueError(f"images of shape {images.shape} and dtype {images.dtype}: expected uint8"
                             f" (N, {size}, {size}, {chans})")
        x = images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        return np.ascontiguousarray((x - self.mean) / self.std)

    def routes(self, x: np.ndarray) -> list[str]:
        """Each normalised image's route under the QoS knob."""
        probs = self.controller.run(None, {"input": x})[0]  # (N, L, 5)
        if self.budget_ms is not None:
            policy = budget_policy(probs, self.modules_ms, self.skippable, max(self.budget_ms - self.fixed_ms, 1e-9))
        else:
            policy = threshold_policy(probs, self.threshold)
        return [route_string(b) for b in policy_bits(policy, self.skippable)]

    def resolve(self, route: str) -> str:
        """The exported route that runs for `route`: itself, or the nearest exported one."""
        if route in self.exported:
            return route
        if route not in self._nearest:
            want = self._unpack(parse_route(route))
            self._nearest[route] = min(self._bits, key=lambda t: (int((self._bits[t] != want).sum()),
                                                                  float((self._bits[t] * self.modules_ms.ravel()).sum())))
        return self._nearest[route]

    def _route_session(self, route: str) -> Any:
        if route not in self._sessions:
            self._sessions[route] = _session(self.directory / self.manifest["routes"][route], self.threads)
        return self._sessions[route]

    def predict(self, images: np.ndarray) -> dict[str, Any]:
        """Labels, chosen routes, the routes that ran, fallbacks, and wall-clock ms per image (controller,
        QoS and route network, one image at a time; a session's loading and first run are not timed)."""
        x = self.preprocess(images)
        labels, chosen, ran, times = [], [], [], []
        for i in range(len(x)):
            image = x[i:i + 1]
            start = time.perf_counter()
            route = self.routes(image)[0]
            run = self.resolve(route)
            if run not in self._sessions:  # load and warm the session outside the timing
                self._route_session(run).run(None, {"input": image})
                start = time.perf_counter()
                route = self.routes(image)[0]
                run = self.resolve(route)
            logits = self._sessions[run].run(None, {"input": image})[0]
            times.append((time.perf_counter() - start) * 1e3)
            labels.append(int(logits.argmax(1)[0]))
            chosen.append(route)
            ran.append(run)
        return {"labels": np.asarray(labels), "routes": chosen, "ran": ran,
                "fallbacks": sum(a != b for a, b in zip(chosen, ran, strict=True)), "wall_ms": np.asarray(times)}

    def warm(self) -> None:
        """Create every route's session now (so `predict` times inference, not loading)."""
        for route in self.exported:
            self._route_session(route)
