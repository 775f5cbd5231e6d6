"""The device server: runs on the target, times ONNX models sent to it over HTTP.

Needs only the standard library, NumPy and ONNX Runtime (never PyTorch). Endpoints, every one
behind ``Authorization: Bearer <token>`` (compared in constant time):

- ``GET /v1/info``: CPU, runtime versions, threads, protocol, body limit;
- ``POST /v1/measure?shape=1,3,224,224[&repeats=N]`` with the ONNX file as the body: the
  statistics of `mnas.latency.ort.measure_onnx`, plus device and runtime.

Errors are JSON ``{"error": "..."}``: 401 bad or missing token, 404 unknown path, 411 no length,
413 body over the limit, 400 malformed ONNX, shape or parameters, 500 anything else. Measurements
run one at a time (a lock here, and the cross-process device lock); the server keeps serving after
every bad request.
"""

from __future__ import annotations

import hmac
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mnas.latency.base import Protocol
from mnas.latency.device import device_info, runtime_versions
from mnas.latency.ort import check_shape, measure_onnx

__all__ = ["DEFAULT_MAX_BODY", "MAX_REPEATS", "DeviceServer"]

DEFAULT_MAX_BODY = 64 * 2**20
MAX_REPEATS = 1000
API = "/v1"


class _HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class _Handler(BaseHTTPRequestHandler):
    server_version = "mnas-device/1"
    timeout = 60  # a client that stops sending cannot hold a thread for ever
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        if not self.server.device.quiet:
            sys.stderr.write(f"mnas device: {self.address_string()} {format % args}\n")

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        expected = self.server.device.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            raise _HTTPError(411, "a Content-Length header is required")
        try:
            length = int(text)
        except ValueError:
            raise _HTTPError(400, f"bad Content-Length {text[:40]!r}") from None
        if length < 0:
            raise _HTTPError(400, f"bad Content-Length {text[:40]!r}")
        limit = self.server.device.max_body_bytes
        if length > limit:
            raise _HTTPError(413, f"request body of {length} bytes is over the server's limit of {limit} bytes")
        return length

    def _handle(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            if not self._authorised():
                if method == "POST":  # drain a body of acceptable size so the client reads the 401
                    try:
                        self.rfile.read(self._content_length())
                    except _HTTPError:
                        pass
                raise _HTTPError(401, "missing or wrong token: send 'Authorization: Bearer <token>'")
            if method == "GET" and url.path == f"{API}/info":
                self._send(200, self.server.device.info())
            elif method == "POST" and url.path == f"{API}/measure":
                length = self._content_length()
                body = self.rfile.read(length)
                if len(body) != length:
                    raise _HTTPError(400, f"body ended after {len(body)} of {length} bytes")
                self._send(200, self.server.device.measure(body, parse_qs(url.query)))
            else:
                raise _HTTPError(404, f"no {method} {url.path}: try GET {API}/info or POST {API}/measure")
        except _HTTPError as exc:
            self._send(exc.status, {"error": str(exc)})
        except ValueError as exc:
            self._send(400, {"error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - report and keep serving
            self._send(500, {"error": f"internal error: {type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    device: DeviceServer


def _parse_params(query: dict[str, list[str]]) -> tuple[tuple[int, ...], int | None]:
    unknown = sorted(set(query) - {"shape", "repeats"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0]!r}: expected shape and optionally repeats")
    if "shape" not in query:
        raise ValueError("missing parameter 'shape', e.g. ?shape=1,3,224,224")
    try:
        shape = [int(d) for d in query["shape"][-1].replace("x", ",").split(",")]
    except ValueError:
        raise ValueError(f"bad shape {query['shape'][-1][:60]!r}: expected integers separated by commas") from None
    repeats = None
    if "repeats" in query:
        text = query["repeats"][-1]
        if not text.isdigit() or not 1 <= int(text) <= MAX_REPEATS:
            raise ValueError(f"bad repeats {text[:20]!r}: expected an integer in [1, {MAX_REPEATS}]")
        repeats = int(text)
    return check_shape(shape), repeats


class DeviceServer:
    """The latency server. ``with DeviceServer(token=...) as s: s.url`` runs it in a background thread;
    `serve_forever()` runs it in this one."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, threads: int = 1,
                 max_body_bytes: int = DEFAULT_MAX_BODY, protocol: Protocol | None = None, quiet: bool = False):
        if not isinstance(token, str) or len(token) < 8:
            raise ValueError("the device server needs a token of at least 8 characters (--token or MNAS_DEVICE_TOKEN)")
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads={threads!r}: expected a positive integer")
        if not isinstance(max_body_bytes, int) or max_body_bytes < 1:
            raise ValueError(f"max_body_bytes={max_body_bytes!r}: expected a positive integer")
        from mnas._util import require

        require("onnxruntime", "the device server")
        self.token, self.threads, self.max_body_bytes = token, threads, max_body_bytes
        self.protocol, self.quiet = protocol or Protocol(), quiet
        self._measure_lock = threading.Lock()
        try:
            self.httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.device = self
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def info(self) -> dict[str, Any]:
        return {"device": device_info(), "runtime": runtime_versions("onnxruntime", "numpy"),
                "settings": {"threads": self.threads, "inter_threads": 1, "protocol": self.protocol.to_dict()},
                "max_body_bytes": self.max_body_bytes, "api": 1}

    def measure(self, model: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
        """Time `model` as the request asks, one request at a time."""
        shape, repeats = _parse_params(query)
        if not model:
            raise ValueError("empty body: send the ONNX file as the request body")
        protocol = self.protocol
        if repeats is not None:
            protocol = Protocol(**{**protocol.to_dict(), "max_repeats": repeats,
                                   "min_repeats": min(protocol.min_repeats, repeats)})
        with self._measure_lock:
            stats = measure_onnx(model, shape, self.threads, 1, protocol)
        return {**stats, "input_shape": list(shape), **self.info()}

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def start(self) -> DeviceServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="mnas-device-server", daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> DeviceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
