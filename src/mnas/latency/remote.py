"""`Remote`: the same measurement, performed by a device server (`mnas device serve`) over HTTP.

The client exports the model to ONNX here and sends the bytes; the server times them. Network
failures and 502/503/504 are retried with exponential back-off; any other answer is final.
Standard library only (urllib), so the client adds no dependency.
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

__all__ = ["DeviceUnavailable", "DeviceUnreachableError", "Remote"]

TOKEN_ENV = "MNAS_DEVICE_TOKEN"
_RETRY_STATUS = (502, 503, 504)


class DeviceUnavailable(ConnectionError):
    """The device server did not answer, or answered only 502/503/504 (after the retries)."""


class DeviceUnreachableError(DeviceUnavailable):
    """No HTTP answer at all from the device server (refused, unresolvable, reset or timed out), after the retries.

    Its message is one line naming the URL and what to check; the search CLI exits 2 on it."""


class Remote(OnnxBackend):
    """Latency measured by the device server at `url` (``http://host:port``), authenticated by `token`
    (default: the ``MNAS_DEVICE_TOKEN`` environment variable)."""

    name = "remote"

    def __init__(self, url: str, token: str | None = None, timeout: float = 300.0, retries: int = 3,
                 backoff_s: float = 0.5, repeats: int | None = None):
        super().__init__()
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

    def settings(self) -> dict[str, Any]:
        return {"url": self.url, "repeats": self.repeats}

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

    def describe(self) -> dict[str, Any]:
        info = self.info()
        return {"backend": self.name, "settings": {**self.settings(), "server": info.get("settings", {})},
                "device": info.get("device", {}), "runtime": info.get("runtime", {})}

    def measure_onnx(self, model: bytes, input_shape: tuple[int, ...]) -> dict[str, Any]:
        """Statistics for ONNX bytes, timed by the server."""
        limit = self.info().get("max_body_bytes")
        if isinstance(limit, int) and len(model) > limit:
            raise ValueError(f"the ONNX model is {len(model)} bytes, over the device server's limit of {limit}:"
                             " restart the server with a larger --max-body-mb")
        query = "shape=" + ",".join(str(int(d)) for d in input_shape)
        if self.repeats is not None:
            query += f"&repeats={int(self.repeats)}"
        return self._request("POST", f"/v1/measure?{query}", body=model)

    def _result(self, stats: dict[str, Any], shape: tuple[int, ...], num_classes: int,
                arch: str | None) -> LatencyResult:
        return LatencyResult(
            median_ms=stats["median_ms"], iqr_ms=stats["iqr_ms"], cv=stats["cv"], n=stats["n"], backend=self.name,
            settings={**self.settings(), "server": stats.get("settings", {})}, input_size=int(shape[-1]),
            batch_size=int(shape[0]), in_chans=int(shape[1]) if len(shape) == 4 else 0, num_classes=num_classes,
            device=stats.get("device", {}),
            runtime={**stats.get("runtime", {}), "client": runtime_versions("torch")},
            min_ms=stats.get("min_ms", float("nan")), wall_median_ms=stats.get("wall_median_ms", float("nan")),
            number=stats.get("number", 1), clock=stats.get("clock", "wall"), arch=arch)



def _error_message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read().decode()).get("error", exc.reason))
    except (ValueError, OSError, AttributeError):
        return str(exc.reason)
