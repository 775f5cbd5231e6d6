"""The device server: runs on the target, times models sent to it over HTTP.

Runtimes (`runtimes`, default every one installed): ONNX Runtime (.onnx; needs only the standard
library, NumPy and ONNX Runtime, never PyTorch), LiteRT with XNNPACK (.tflite; needs ai-edge-litert)
and ExecuTorch (.pte lowered to XNNPACK; needs executorch, which brings torch into its measuring
process only). Endpoints, every one behind ``Authorization: Bearer <token>`` (compared in constant
time, from the headers, before any body is read):

- ``GET /v1/info``: CPU, runtime versions, threads, protocol, the server's limits, and under
  ``runtimes`` each runtime it measures with its file format, precisions and versions;
- ``POST /v1/measure?shape=1,3,224,224[&runtime=litert][&repeats=N]`` with the file as the body
  (a ``Content-Length`` is required; ``Expect: 100-continue`` is honoured): the statistics of the
  shared protocol (as `mnas.latency.ort.measure_onnx`), plus device and runtime. ``runtime`` is
  ``onnxruntime`` (the default), ``litert`` or ``executorch``; the precision is the file's.

Every answer, including those of the HTTP layer itself, is JSON; errors are
``{"error": "<one line>", "kind": "<one word>"}``:

====  ==================================================================================
400   malformed request, parameters or model (`invalid_model`, `bad_request`, `http`); a model
      that keeps tensor data in a file (`file_reference`: refused before the runtime sees it);
      a .tflite custom or delegate operator, a .pte delegate other than XNNPACK (`unsupported_op`);
      a runtime this server does not measure (`unsupported_runtime`)
401   missing or wrong token (the body, if any, is read and dropped, never kept)
404   unknown path; 405 known path, other method; 411 no ``Content-Length``
413   body over ``max_body_bytes`` (the body is read and dropped for up to 10 s so that a client
      that sends before it reads sees the answer; then the server closes)
414   request line over 8 KiB; 431 headers over 32 KiB in all; 501 unknown method
422   the model went over a limit: `time_limit` (load + time over ``time_limit_s``, not counting
      a wait for the device lock), `memory_limit` (an allocation over ``max_memory_bytes``), or
      `worker_crashed` (the measuring process died); the server keeps serving
500   `internal`; 503 `busy` (over ``max_connections``) or `device_busy` (another process held
      the device lock for 10 minutes) or `worker_unavailable`: all worth a retry
====  ==================================================================================

Messages never contain a runtime's own text (it can print tensor values); the server's log has
it. Models are loaded and timed in a killable child process per runtime (`mnas.latency.server_worker`;
ONNX Runtime's starts with the server, the others on their first request), one at a time (a lock
here, and the cross-process device lock there). Every file is checked in that process before its
runtime is given it: `mnas.latency.server_check` (ONNX), `mnas.latency.server_flatbuffers` (.tflite,
.pte; the identifier is checked here first).
"""

from __future__ import annotations

import hmac
import os
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from mnas.latency.base import Protocol
from mnas.latency.ort import check_shape
from mnas.latency.quantize import PRECISIONS
from mnas.latency.server_check import ModelRefused
from mnas.latency.server_flatbuffers import check_identifier
from mnas.latency.server_http import MAX_HEADER_BYTES, MAX_REQUEST_LINE, BoundedServer, CappedReader, discard
from mnas.latency.server_job import DISTRIBUTIONS, FORMATS, INSTALL, MODULES, NAMES, RUNTIMES
from mnas.latency.server_worker import MeasureWorker, WorkerError

__all__ = ["DEFAULT_MAX_BODY", "DEFAULT_MAX_CONNECTIONS", "DEFAULT_MAX_MEMORY", "DEFAULT_TIME_LIMIT_S", "MAX_REPEATS",
           "RUNTIMES", "DeviceServer", "check_runtimes", "check_token", "installed_runtimes"]

DEFAULT_MAX_BODY = 64 * 2**20
DEFAULT_MAX_MEMORY = 2**30
DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_TIME_LIMIT_S = 60.0
# Upper bounds of the server's own options: past them a setting is a typo that breaks every request
# (a time limit of 1e308 s overflows the wait; 100,000 threads time every measurement out).
MAX_TIME_LIMIT_S = 86400.0
MAX_BODY_LIMIT = 2**31  # protobuf's own limit for one ONNX file, and a flatbuffer's
MAX_CONNECTIONS_LIMIT = 1024
MAX_MEMORY_LIMIT = 2**40
MAX_REPEATS = 1000
API = "/v1"
_ROUTES = {f"{API}/info": "GET", f"{API}/measure": "POST"}
_MIN_BODY_RATE = 256 * 1024  # bytes/s an authenticated upload must average, on top of the header timeout
_DRAIN_S = 10.0  # the longest a connection spends dropping a body the server will not use


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, kind: str = "bad_request"):
        super().__init__(message)
        self.status, self.kind = status, kind


class _Handler(BaseHTTPRequestHandler):
    server_version = "mnas-device/1"
    protocol_version = "HTTP/1.1"  # for Expect: 100-continue; every answer still closes the connection
    timeout = 30  # per read or write; the watchdog bounds whole phases
    server: _Server

    # -- the HTTP layer, bounded and in JSON -------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        if not self.server.device.quiet:
            sys.stderr.write(f"mnas device: {self.address_string()} {format % args}\n")

    def handle_one_request(self) -> None:
        # The stdlib's loop, with an 8 KiB request line, a deadline for the headers, and quiet
        # handling of clients that vanish (a reset is not an error of the server's).
        dog = self.server.watchdog
        dog.set(self.connection, self.server.device.header_timeout_s)
        self.close_connection = True
        try:
            self.raw_requestline = self.rfile.readline(MAX_REQUEST_LINE + 1)
            if len(self.raw_requestline) > MAX_REQUEST_LINE:
                self.requestline = self.request_version = self.command = ""
                self.send_error(414, f"request line longer than {MAX_REQUEST_LINE} bytes")
                return
            if not self.raw_requestline or not self.parse_request():
                return
            method = getattr(self, f"do_{self.command}", None)
            if method is None:
                self.send_error(501, f"unsupported method {self.command[:16]!r}: use GET or POST")
                return
            method()
            self.wfile.flush()
        except OSError:  # timeouts, resets, a socket shut down by the watchdog
            pass
        finally:
            dog.clear(self.connection)
            self.close_connection = True

    def parse_request(self) -> bool:
        self._raw_rfile = self.rfile
        self.rfile = CappedReader(self._raw_rfile, MAX_HEADER_BYTES)  # type: ignore[assignment]
        try:
            return super().parse_request()
        finally:
            self.rfile = self._raw_rfile

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's errors (400, 414, 431, 501, 505) in the API's JSON."""
        short = self.responses.get(code, ("Error", ""))[0]
        text = message or short
        if code == 431:  # the stdlib's text names its own per-line limit, not the one that applied
            text, explain = f"request headers over {MAX_HEADER_BYTES} bytes in all, or over 100 header lines", None
        if explain and explain not in text:
            text = f"{text}: {explain}"
        self._send(code, {"error": text[:300], "kind": "http"})
        self._linger()

    def _linger(self) -> None:
        # The HTTP layer answers before reading the whole request (a 414 after 8 KiB): stop sending, then
        # drop what the client still sends (at most 256 KiB, 1 s) so that closing does not reset the
        # connection before the client has read the answer.
        try:
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            for _ in range(64):
                if not self.connection.recv(4096):
                    break
        except OSError:
            pass

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        import json

        body = json.dumps(payload).encode()
        if not str(getattr(self, "request_version", "")).startswith("HTTP/1."):
            self.request_version = "HTTP/1.0"  # a request that did not parse still gets a status line and headers
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if getattr(self, "command", "") != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def _refuse(self, error: _HTTPError, drain: bool = True) -> None:
        """Answer `error`, then drop what the client is still sending (bounded) so that it reads the answer."""
        self.server.watchdog.set(self.connection, _DRAIN_S)
        self._send(error.status, {"error": str(error), "kind": error.kind})
        length = self._declared_length()
        if drain and length:  # bounded in time by the watchdog, not in bytes: a dropped chunk costs no memory
            discard(self._raw_rfile, length, length)

    # -- what a request may do, from its headers alone ----------------------------------------
    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        expected = self.server.device.token.encode()
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), expected)

    def _declared_length(self) -> int | None:
        text = self.headers.get("Content-Length")
        if text is None:
            return None
        text = text.strip()
        return int(text) if text.isdigit() and len(text) <= 18 else None

    def _precheck(self) -> int:
        """The body length the request may send; `_HTTPError` for a request to refuse before its body."""
        if not self._authorised():
            raise _HTTPError(401, "missing or wrong token: send 'Authorization: Bearer <token>'", "unauthorised")
        path = urlsplit(self.path).path
        if path not in _ROUTES:
            raise _HTTPError(404, f"no {self.command} {path[:80]}: try GET {API}/info or POST {API}/measure", "not_found")
        if _ROUTES[path] != self.command:
            raise _HTTPError(405, f"{path} takes {_ROUTES[path]}, not {self.command[:16]}", "method")
        if self.headers.get("Transfer-Encoding"):
            raise _HTTPError(411, "chunked bodies are not supported: send a Content-Length", "length")
        text = self.headers.get("Content-Length")
        if self.command == "GET":
            return 0
        if text is None:
            raise _HTTPError(411, "a Content-Length header is required", "length")
        length = self._declared_length()
        if length is None:
            raise _HTTPError(400, f"bad Content-Length {text[:40]!r}")
        limit = self.server.device.max_body_bytes
        if length > limit:
            raise _HTTPError(413, f"request body of {length} bytes is over the server's limit of {limit} bytes"
                                  " (the server's --max-body-mb)", "too_large")
        return length

    def handle_expect_100(self) -> bool:
        try:
            self._precheck()
            if self.command == "POST":  # parameters and runtime too: a request that cannot be measured sends nothing
                query = parse_qs(urlsplit(self.path).query)
                try:
                    _parse_params(query)
                except ValueError as exc:
                    raise _HTTPError(400, str(exc)[:300]) from None
                self.server.device.check_runtime(query)
        except _HTTPError as exc:  # answer now: the client has not sent the body, and need not
            self._refuse(exc, drain=False)
            return False
        return super().handle_expect_100()

    # -- the API ---------------------------------------------------------------------------
    def _handle(self) -> None:
        device = self.server.device
        try:
            length = self._precheck()
        except _HTTPError as exc:
            self._refuse(exc)
            return
        query = parse_qs(urlsplit(self.path).query)
        try:
            if self.command == "GET":
                if self._declared_length():  # a GET with a body: drop it so the client reads the answer
                    self.server.watchdog.set(self.connection, _DRAIN_S)
                    discard(self._raw_rfile, self._declared_length() or 0, device.max_body_bytes)
                self._send(200, device.info())
                return
            try:
                _parse_params(query)  # before the body: a request that cannot be measured is not read
                device.check_runtime(query)
            except _HTTPError as exc:
                self._refuse(exc)
                return
            except ValueError as exc:
                self._refuse(_HTTPError(400, str(exc)[:300]))
                return
            self.server.watchdog.clear(self.connection)  # waiting for a turn is bounded by the measurements ahead
            with device.upload_slots:  # at most two bodies in memory: one measuring, one waiting
                self.server.watchdog.set(self.connection, device.header_timeout_s + length / _MIN_BODY_RATE)
                body = self._raw_rfile.read(length)
                self.server.watchdog.clear(self.connection)  # the measurement has its own limit
                if len(body) != length:
                    raise _HTTPError(400, f"body ended after {len(body)} of {length} bytes")
                result = device.measure(body, query)
            self._send(200, result)
        except _HTTPError as exc:
            self._send(exc.status, {"error": str(exc), "kind": exc.kind})
        except WorkerError as exc:
            if exc.detail:
                self.log_message("measurement failed (%s): %s", exc.kind, exc.detail)
            self._send(exc.status, {"error": str(exc), "kind": exc.kind})
        except ValueError as exc:
            self._send(400, {"error": str(exc)[:300], "kind": "bad_request"})
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - report and keep serving
            self.log_message("internal error: %r", exc)
            self._send(500, {"error": f"internal error ({type(exc).__name__}); the details are in the server's log",
                             "kind": "internal"})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle  # noqa: N815


class _Server(BoundedServer):
    device: DeviceServer


def _parse_params(query: dict[str, list[str]]) -> tuple[tuple[int, ...], int | None]:
    unknown = sorted(set(query) - {"shape", "repeats", "runtime"})
    if unknown:
        raise ValueError(f"unknown parameter {unknown[0][:40]!r}: expected shape and optionally runtime and repeats")
    _runtime_param(query)
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


def _runtime_param(query: dict[str, list[str]]) -> str:
    text = query.get("runtime", ["onnxruntime"])[-1]
    if text not in RUNTIMES:
        raise ValueError(f"unknown runtime {text[:40]!r}: expected one of {', '.join(RUNTIMES)}")
    return text


def installed_runtimes() -> tuple[str, ...]:
    """The runtimes whose packages this machine has, found without importing them (the parent stays small)."""
    import importlib.util

    def has(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return tuple(r for r in RUNTIMES if has(MODULES[r]) and (r != "executorch" or has("torch")))


def check_runtimes(runtimes: Any) -> tuple[str, ...]:
    """`runtimes` (names, or a comma-separated string; None: every installed one) checked against this
    machine: ValueError for an unknown name, ImportError (one line, what to install) for a missing one."""
    installed = installed_runtimes()
    if runtimes is None:
        if not installed:
            raise ImportError("the device server needs a runtime: pip install 'mnas[server]' (ONNX Runtime),"
                              " ai-edge-litert (LiteRT) or executorch")
        return installed
    names = [r.strip() for r in runtimes.split(",")] if isinstance(runtimes, str) else list(runtimes)
    if not names or not all(isinstance(r, str) and r for r in names):
        raise ValueError(f"runtimes={runtimes!r}: expected names among {', '.join(RUNTIMES)}")
    for name in names:
        if name not in RUNTIMES:
            raise ValueError(f"unknown runtime {name[:40]!r}: expected one of {', '.join(RUNTIMES)}")
        if name not in installed:
            raise ImportError(f"runtime {name} is not installed on this machine: {INSTALL[name]}")
    return tuple(dict.fromkeys(names))


def check_token(token: Any) -> None:
    """ValueError unless clients can send `token`: 8 or more printable ASCII characters, no space at either
    end (a header value is stripped, and non-ASCII is not sent as typed), not all blank."""
    if not isinstance(token, str) or len(token) < 8 or not token.strip():
        raise ValueError("the device server needs a token of at least 8 characters, not all blank"
                         " (--token or MNAS_DEVICE_TOKEN)")
    if token != token.strip() or not token.isascii() or not token.isprintable():
        raise ValueError("the device server's token must be printable ASCII with no space at either end (an HTTP"
                         " header could not carry it as typed): use letters, digits and punctuation")


def _at_most(name: str, value: Any, limit: float, why: str) -> None:
    if value > limit:
        raise ValueError(f"{name}={value!r}: expected at most {limit:g} ({why})")


def _positive(name: str, value: Any, kind: type = int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or not value > 0:
        raise ValueError(f"{name}={value!r}: expected a positive {'number' if kind is float else 'integer'}")


class DeviceServer:
    """The latency server. ``with DeviceServer(token=...) as s: s.url`` runs it in a background thread;
    `serve_forever()` runs it in this one. Starts its measuring process at once (about a second).

    Limits: `max_body_bytes` per upload, `time_limit_s` per measurement, `max_memory_bytes` of
    address space for the measuring process above its idle size (None: no cap), `max_connections`
    served at once, `header_timeout_s` for a client to send its request line and headers."""

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, threads: int = 1,
                 max_body_bytes: int = DEFAULT_MAX_BODY, protocol: Protocol | None = None, quiet: bool = False,
                 time_limit_s: float = DEFAULT_TIME_LIMIT_S, max_memory_bytes: int | None = DEFAULT_MAX_MEMORY,
                 max_connections: int = DEFAULT_MAX_CONNECTIONS, header_timeout_s: float = 10.0,
                 runtimes: Any = None):
        check_token(token)
        _positive("threads", threads)
        _positive("max_body_bytes", max_body_bytes)
        _positive("time_limit_s", time_limit_s, float)
        _positive("max_connections", max_connections)
        _positive("header_timeout_s", header_timeout_s, float)
        if max_memory_bytes is not None:
            _positive("max_memory_bytes", max_memory_bytes)
        _at_most("threads", threads, os.cpu_count() or 1, "this machine's CPU count")
        _at_most("max_body_bytes", max_body_bytes, MAX_BODY_LIMIT, "2 GiB, the largest ONNX file")
        _at_most("time_limit_s", time_limit_s, MAX_TIME_LIMIT_S, "a day")
        _at_most("header_timeout_s", header_timeout_s, MAX_TIME_LIMIT_S, "a day")
        _at_most("max_connections", max_connections, MAX_CONNECTIONS_LIMIT, "a thread each")
        if max_memory_bytes is not None:
            _at_most("max_memory_bytes", max_memory_bytes, MAX_MEMORY_LIMIT, "1 TiB")
        self.runtimes = check_runtimes(runtimes)  # checked without importing them into this process
        self.token, self.threads, self.max_body_bytes = token, threads, max_body_bytes
        self.protocol, self.quiet = protocol or Protocol(), quiet
        self.time_limit_s, self.max_memory_bytes = float(time_limit_s), max_memory_bytes
        self.max_connections, self.header_timeout_s = max_connections, float(header_timeout_s)
        self._measure_lock = threading.Lock()
        self.upload_slots = threading.BoundedSemaphore(2)
        self.workers = {r: MeasureWorker(threads, max_memory_bytes, self.time_limit_s, quiet, r) for r in self.runtimes}
        self.worker = self.workers[self.runtimes[0]]  # started now (ONNX Runtime's, when served); the others on first use
        self._facts_of: dict[str, dict[str, Any]] = {}
        self._unavailable: dict[str, str] = {}  # advertised runtimes whose measuring process could not import them
        self._installed_versions: dict[str, dict[str, str]] = {}
        try:
            self.httpd = _Server((host, port), _Handler, max_connections)
        except OSError as exc:
            raise ValueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        self.httpd.device = self
        try:
            self._facts = self.worker.start()
        except WorkerError as exc:
            self.httpd.server_close()
            raise RuntimeError(str(exc)) from None
        self._facts_of[self.runtimes[0]] = self._facts
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def _versions(self, runtime: str) -> dict[str, str]:
        """`runtime`'s versions: its measuring process's, or (not started yet) the installed distribution's."""
        facts = self._facts_of.get(runtime)
        if facts:
            return dict(facts["runtime"])
        if runtime not in self._installed_versions:  # read once: a metadata lookup scans the environment
            from mnas.latency.quantize import package_versions

            self._installed_versions[runtime] = package_versions(DISTRIBUTIONS[runtime])
        return dict(self._installed_versions[runtime])

    def served_runtimes(self) -> dict[str, dict[str, Any]]:
        """What `/v1/info` says under ``runtimes``: each runtime measured here, its format and precisions."""
        return {r: {"format": FORMATS[r], "precisions": list(PRECISIONS), "versions": self._versions(r)}
                for r in self.runtimes if r not in self._unavailable}

    def info(self) -> dict[str, Any]:
        cap = self.max_memory_bytes if (self._facts or {}).get("address_space_cap") else None
        return {"device": self._facts["device"], "runtime": self._facts["runtime"],
                "settings": {"threads": self.threads, "inter_threads": 1, "protocol": self.protocol.to_dict()},
                "max_body_bytes": self.max_body_bytes, "api": 1, "runtimes": self.served_runtimes(),
                "limits": {"max_body_bytes": self.max_body_bytes, "time_limit_s": self.time_limit_s,
                           "max_memory_bytes": cap, "max_connections": self.max_connections}}

    def check_runtime(self, query: dict[str, list[str]]) -> str:
        """The runtime a request asks for; `_HTTPError` 400 ``unsupported_runtime`` when it is not served here."""
        runtime = _runtime_param(query)
        if runtime in self.runtimes and runtime not in self._unavailable:
            return runtime
        served = ", ".join(self.served_runtimes()) or "none"
        why = self._unavailable.get(runtime) or (
            f"install it on the device ({INSTALL[runtime]}) and restart 'mnas device serve'"
            + (" with it in --runtimes" if runtime in installed_runtimes() else ""))
        raise _HTTPError(400, f"this device server does not measure {NAMES[runtime]} ({runtime}); it measures {served}:"
                              f" {why}"[:300], "unsupported_runtime")

    def measure(self, model: bytes, query: dict[str, list[str]]) -> dict[str, Any]:
        """Time `model` as the request asks, one request at a time; `WorkerError` if it cannot be timed."""
        shape, repeats = _parse_params(query)
        runtime = self.check_runtime(query)
        if not model:
            raise ValueError(f"empty body: send the {FORMATS[runtime]} file as the request body")
        if runtime != "onnxruntime":  # the identifier here, at no cost: junk never starts a runtime's process;
            try:                        # the whole walk runs in the worker, under its time and memory caps
                check_identifier(model, "tflite" if runtime == "litert" else "pte")
            except ModelRefused as exc:
                raise _HTTPError(400, str(exc)[:300], exc.kind) from None
        protocol = self.protocol
        if repeats is not None:
            protocol = Protocol(**{**protocol.to_dict(), "max_repeats": repeats,
                                   "min_repeats": min(protocol.min_repeats, repeats)})
        worker = self.workers[runtime]
        with self._measure_lock:
            try:
                stats = worker.measure(model, shape, protocol.to_dict())
            except WorkerError as exc:
                if exc.kind == "unsupported_runtime":  # installed, but its measuring process cannot import it
                    self._unavailable[runtime] = str(exc)
                raise
            if worker.ready_facts:
                self._facts_of[runtime] = worker.ready_facts
        return {**stats, "input_shape": list(shape), **self.info(), "runtime": self._versions(runtime),
                "measured_in": runtime}

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
        self.close_workers()

    def close_workers(self) -> None:
        for worker in self.workers.values():
            worker.close()

    def __enter__(self) -> DeviceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
