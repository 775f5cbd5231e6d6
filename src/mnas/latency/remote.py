"""`Remote`: the same measurement, performed by a device server (`mnas device serve`) over HTTP.

The client converts the model here and sends the file; the server times it in the runtime asked
for: ONNX Runtime (the model exported to ONNX, QDQ-quantized for int8), LiteRT (.tflite from
`mnas.latency.litert.tflite_bytes`) or ExecuTorch (.pte from `mnas.latency.executorch_backend.pte_bytes`),
fp32 or int8 as the local backends convert them. The server's ``/v1/info`` says which runtimes it
measures; a runtime it lacks is refused with one line before anything is converted. Network
failures and 502/503/504 are retried with exponential back-off; any other answer is final.
Standard library only (urllib), so the client adds no dependency beyond the converter.
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from mnas.latency.base import LatencyResult, OnnxBackend
from mnas.latency.device import runtime_versions
from mnas.latency.quantize import DEFAULT_CALIBRATION, PRECISIONS, check_calibration, check_precision, package_versions

__all__ = ["REMOTE_RUNTIMES", "DeviceUnavailable", "DeviceUnreachableError", "Remote"]

TOKEN_ENV = "MNAS_DEVICE_TOKEN"
_RETRY_STATUS = (502, 503, 504)
REMOTE_RUNTIMES = ("onnxruntime", "litert", "executorch")
_FORMAT = {"onnxruntime": "ONNX", "litert": ".tflite", "executorch": ".pte"}
# What converts a model for each runtime on the client, and what the device needs to serve it.
_CONVERTER = {"onnxruntime": ("onnx", "onnx"), "litert": ("litert_torch", "litert"), "executorch": ("executorch", "executorch")}
_DEVICE_INSTALL = {"onnxruntime": "pip install 'mnas[server]'", "litert": "pip install ai-edge-litert",
                   "executorch": "pip install executorch"}


class DeviceUnavailable(ConnectionError):
    """The device server did not answer, or answered only 502/503/504 (after the retries)."""


class DeviceUnreachableError(DeviceUnavailable):
    """No HTTP answer at all from the device server (refused, unresolvable, reset or timed out), after the retries.

    Its message is one line naming the URL and what to check; the search CLI exits 2 on it."""


def _require_converter(runtime: str) -> None:
    """ImportError (one line, what to install) unless this machine can convert a model for `runtime`;
    found without importing the converter (ExecuTorch's takes seconds to import)."""
    import importlib.util

    module, extra = _CONVERTER[runtime]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise ImportError(f"the remote backend converts models for {runtime} here and needs '{module}': pip install"
                          f" 'mnas[{extra}]' (with torch==2.13.0 pinned, e.g. pip install -c constraints.txt)")


class Remote(OnnxBackend):
    """Latency measured by the device server at `url` (``http://host:port``), authenticated by `token`
    (default: the ``MNAS_DEVICE_TOKEN`` environment variable), in `runtime` (onnxruntime, litert or
    executorch) at `precision` (fp32, or int8: static PTQ on `calibration` seeded inputs, each
    runtime's own quantizer, as the local backends); the model is converted here and uploaded."""

    name = "remote"

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0, retries: int = 3,
                 backoff_s: float = 0.5, repeats: int | None = None, runtime: str = "onnxruntime",
                 precision: str = "fp32", calibration: int = DEFAULT_CALIBRATION):
        super().__init__()
        if runtime not in REMOTE_RUNTIMES:
            raise ValueError(f"runtime={runtime!r}: a device server measures in {', '.join(REMOTE_RUNTIMES)}")
        self.runtime = runtime
        self.precision = check_precision(precision)
        self.calibration = check_calibration(calibration)
        parts = urlsplit(url if isinstance(url, str) else "")
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"device server URL {url!r}: expected http://HOST:PORT")
        token = token or os.environ.get(TOKEN_ENV)
        if not token:
            raise ValueError(f"the remote backend needs the server's token: pass --token or set {TOKEN_ENV}")
        if not timeout > 0 or isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError("timeout must be > 0 seconds and retries an integer >= 0")
        self.url, self.token = f"{parts.scheme}://{parts.netloc}", token
        self.timeout, self.retries, self.backoff_s, self.repeats = float(timeout), retries, backoff_s, repeats
        self._info: dict[str, Any] | None = None
        if (runtime, self.precision) != ("onnxruntime", "fp32"):
            _require_converter(runtime)  # before any request: a missing converter is this machine's problem

    @property
    def deployment(self) -> tuple[str, str]:
        """(runtime, precision) measured on the server: a lookup table built here is valid for that pair only."""
        return self.runtime, self.precision

    def settings(self) -> dict[str, Any]:
        if (self.runtime, self.precision) == ("onnxruntime", "fp32"):
            return {"url": self.url, "repeats": self.repeats}  # as before runtimes existed: old tables resume
        return {"url": self.url, "repeats": self.repeats, "runtime": self.runtime, "precision": self.precision,
                "calibration": self.calibration}

    # -- HTTP -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: bytes | None = None, timeout: float | None = None) -> dict:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url + path, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                    return json.loads(response.read().decode())
            except urllib.error.HTTPError as exc:
                message = _error_message(exc)
                if exc.code in _RETRY_STATUS:
                    last = exc
                    continue
                if exc.code == 401:
                    raise ValueError(f"device server {self.url} refused the token (401): check --token or"
                                     f" {TOKEN_ENV}") from None
                raise ValueError(f"device server {self.url} answered {exc.code}: {message}") from None
            except (TimeoutError, urllib.error.URLError, http.client.HTTPException, ConnectionError,
                    json.JSONDecodeError) as exc:
                last = exc
        tries = f"{self.retries + 1} {'try' if self.retries == 0 else 'tries'}"
        if isinstance(last, urllib.error.HTTPError):
            raise DeviceUnavailable(f"device server {self.url} answered {last.code} ({_error_message(last)}) after"
                                    f" {tries}: it is busy or restarting, try again later")
        reason = getattr(last, "reason", None) or last
        reason = str(reason).strip().splitlines()[0][:200] if str(reason).strip() else type(last).__name__
        raise DeviceUnreachableError(
            f"device server {self.url} did not answer after {tries} ({reason}): check that 'mnas device serve' is"
            " running there, that the host and port in --url are right, and that no firewall blocks the port")

    def info(self) -> dict[str, Any]:
        """The server's device, runtime versions and settings (asked once, then remembered)."""
        if self._info is None:
            self._info = self._request("GET", "/v1/info", timeout=min(self.timeout, 30.0))
        return self._info

    def served_runtimes(self) -> dict[str, Any]:
        """The server's runtimes (``/v1/info``'s ``runtimes``); a server from before runtimes existed measures
        ONNX Runtime only (any ONNX file: fp32 or QDQ int8)."""
        served = self.info().get("runtimes")
        if not isinstance(served, dict):
            return {"onnxruntime": {"format": ".onnx", "precisions": list(PRECISIONS)}}
        return served

    def check_server(self, flag: str = "--runtime") -> None:
        """ValueError (one line) unless the server measures this backend's runtime and precision; `flag` is
        the option that picks the runtime in the caller's command (`mnas search`: --backend)."""
        served = self.served_runtimes()
        if self.runtime not in served:
            raise ValueError(f"device server {self.url} does not measure {self.runtime} (it measures"
                             f" {', '.join(served) or 'nothing'}): {_DEVICE_INSTALL[self.runtime]} on the device and"
                             f" restart 'mnas device serve', or ask for {flag} {next(iter(served), 'onnxruntime')}")
        precisions = (served[self.runtime] or {}).get("precisions", list(PRECISIONS))
        if self.precision not in precisions:
            raise ValueError(f"device server {self.url} measures {self.runtime} in {', '.join(precisions)}, not"
                             f" {self.precision}")

    def describe(self) -> dict[str, Any]:
        info = self.info()
        runtime = info.get("runtime", {})
        if self.runtime != "onnxruntime":
            runtime = (self.served_runtimes().get(self.runtime) or {}).get("versions", {})
        return {"backend": self.name, "settings": {**self.settings(), "server": info.get("settings", {})},
                "device": info.get("device", {}), "runtime": runtime}

    def to_file(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        """The file this backend uploads for `model`: ONNX (QDQ int8 at int8), .tflite or .pte, converted
        here as the onnxruntime, litert and executorch backends convert it. Asks the server first whether
        it measures this runtime (a conversion can take a minute)."""
        self.check_server()
        shape = tuple(input_shape)
        if self.runtime == "litert":
            from mnas.latency.litert import tflite_bytes

            return tflite_bytes(model, shape, self.precision, self.calibration)
        if self.runtime == "executorch":
            from mnas.latency.executorch_backend import pte_bytes

            return pte_bytes(model, shape, self.precision, self.calibration)
        return super().to_onnx(model, shape)

    def to_onnx(self, model: Any, input_shape: tuple[int, ...]) -> bytes:
        """`to_file` (OnnxBackend's name for it: lookup-table builds export once and time many times)."""
        return self.to_file(model, input_shape)

    def measure_file(self, model: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Statistics for the bytes of a file in this backend's runtime, timed by the server."""
        limit = self.info().get("max_body_bytes")
        if isinstance(limit, int) and len(model) > limit:
            raise ValueError(f"the {_FORMAT[self.runtime]} model is {len(model)} bytes, over the device server's limit"
                             f" of {limit}: restart the server with a larger --max-body-mb")
        query = "shape=" + ",".join(str(int(d)) for d in input_shape)
        if self.runtime != "onnxruntime":  # an ONNX request stays as it was, so older servers answer it
            query += f"&runtime={self.runtime}"
        if self.repeats is not None:
            query += f"&repeats={int(self.repeats)}"
        return self._request("POST", f"/v1/measure?{query}", body=model)

    def measure_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """`measure_file` (OnnxBackend's name for it)."""
        return self.measure_file(model, input_shape)

    def _result(self, stats: dict[str, Any], shape: tuple[int, ...], num_classes: int,
                arch: str | None) -> LatencyResult:
        return LatencyResult(
            median_ms=stats["median_ms"], iqr_ms=stats["iqr_ms"], cv=stats["cv"], n=stats["n"], backend=self.name,
            settings={**self.settings(), "server": stats.get("settings", {})}, input_size=int(shape[-1]),
            batch_size=int(shape[0]), in_chans=int(shape[1]) if len(shape) == 4 else 0, num_classes=num_classes,
            device=stats.get("device", {}),
            runtime={**stats.get("runtime", {}), "client": self._client_versions()},
            min_ms=stats.get("min_ms", float("nan")), wall_median_ms=stats.get("wall_median_ms", float("nan")),
            number=stats.get("number", 1), clock=stats.get("clock", "wall"), arch=arch)

    def _client_versions(self) -> dict[str, str]:
        """What converted the file here: torch, and the converter for LiteRT or ExecuTorch."""
        converters = {"litert": ("litert-torch",), "executorch": ("executorch",)}.get(self.runtime, ())
        return {**runtime_versions("torch"), **package_versions(*converters)}


def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode()).get("error", exc.reason))
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)
