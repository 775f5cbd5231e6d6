"""The device server's HTTP plumbing: bounded reads, a watchdog for slow clients, a connection cap.

Standard library only. What it guarantees, whatever a client sends:

- the request line is at most `MAX_REQUEST_LINE` bytes (else 414) and all header lines together at
  most `MAX_HEADER_BYTES` (else 431), so a connection costs kilobytes until it is authenticated;
- a connection that has not finished its headers `header_timeout_s` after it started, or its body
  by its own deadline, is shut down by one watchdog thread (slow senders cannot hold a thread);
- at most `max_connections` connections are served at once; one more is answered 503 at once;
- a body the server will not use is read in small chunks and dropped, never buffered.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any, BinaryIO

__all__ = ["MAX_HEADER_BYTES", "MAX_REQUEST_LINE", "BoundedServer", "CappedReader", "Watchdog", "discard", "json_response"]

MAX_REQUEST_LINE = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
_CHUNK = 64 * 1024


class CappedReader:
    """A file-like view of `raw` that allows `limit` bytes of readline in all; then `LineTooLong` (a 431)."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw, self.left, self.limit = raw, limit, limit

    def readline(self, size: int = -1) -> bytes:
        if self.left <= 0:
            raise http.client.LineTooLong(f"headers longer than {self.limit} bytes")
        size = self.left + 1 if size is None or size < 0 else min(size, self.left + 1)
        line = self.raw.readline(size)
        self.left -= len(line)
        if self.left < 0:
            raise http.client.LineTooLong(f"headers longer than {self.limit} bytes")
        return line


def discard(rfile: BinaryIO, length: int, limit: int) -> int:
    """Read and drop up to min(length, limit) bytes, 64 KiB at a time; the bytes read (stops at EOF or an error)."""
    done, want = 0, min(length, limit)
    try:
        while done < want:
            chunk = rfile.read(min(_CHUNK, want - done))
            if not chunk:
                break
            done += len(chunk)
    except OSError:
        pass
    return done


def json_response(status: int, reason: str, payload: dict[str, Any], head: bool = False) -> bytes:
    """A complete HTTP/1.1 response with a JSON body that closes the connection."""
    body = json.dumps(payload).encode()
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Connection: close", "", ""]
    return "\r\n".join(lines).encode() + (b"" if head else body)


class Watchdog:
    """One thread that shuts down sockets whose deadline has passed (``set``/``clear`` per connection)."""

    def __init__(self, period_s: float = 0.2):
        self._deadlines: dict[socket.socket, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._period = period_s
        self._thread = threading.Thread(target=self._run, name="mnas-device-watchdog", daemon=True)
        self._thread.start()

    def set(self, sock: socket.socket, seconds: float) -> None:
        with self._lock:
            self._deadlines[sock] = time.monotonic() + seconds

    def clear(self, sock: socket.socket) -> None:
        with self._lock:
            self._deadlines.pop(sock, None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            now = time.monotonic()
            with self._lock:
                expired = [s for s, deadline in self._deadlines.items() if deadline < now]
                for sock in expired:
                    del self._deadlines[sock]
            for sock in expired:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # the handler's blocked read returns; it then closes
                except OSError:
                    pass


class BoundedServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most `max_connections` connections at once."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address: tuple[str, int], handler: Any, max_connections: int):
        self.max_connections = max_connections
        self._slots = threading.BoundedSemaphore(max_connections)
        self.watchdog = Watchdog()
        self.refused = 0
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: socket.socket) -> None:
        # Answered from the accepting thread without reading the request: a few hundred bytes fit in any
        # socket buffer, so this never blocks; whatever the client already sent is read and dropped.
        payload = {"error": f"the server is serving its limit of {self.max_connections} connections: try again"
                            " shortly", "kind": "busy"}
        try:
            request.setblocking(False)
            try:
                for _ in range(16):
                    if not request.recv(_CHUNK):
                        break
            except OSError:
                pass
            request.sendall(json_response(503, "Service Unavailable", payload))
            request.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            self.shutdown_request(request)

    def server_close(self) -> None:
        self.watchdog.stop()
        super().server_close()
