"""Hostile requests against a device server this script starts itself on 127.0.0.1 (issue 13, items 1-5),
hostile .tflite and .pte files where the server measures LiteRT and ExecuTorch (issue 20 item 1), and
bad values of the server's own options, which must stop it at start (issue 21).

    python benchmarks/probe_server.py            # the checkout's server
    python benchmarks/probe_server.py --startup-only   # only the start-up options (seconds, no requests)
    python benchmarks/probe_server.py --formats-only   # only the .tflite/.pte cases (and a legitimate ONNX one)
    PYTHONPATH=/tmp/old/src python benchmarks/probe_server.py   # an older tree, for a before/after

Only loopback: the server listens on 127.0.0.1 and every request goes there. Every loop is bounded
in count and every wait in time, so the probe ends even against a server that hangs. Prints each
case's outcome, tried / handled counts, per-request overhead and the server's peak RSS (the
parent's VmHWM and, sampled every 50 ms, parent plus measuring process). Needs onnx and onnxruntime;
the format cases need ai-edge-litert / executorch on the server's side (skipped, and said so, without
them) and, for a real .pte, executorch's exporter here (a ~15-60 s conversion of a tiny network).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from mnas.latency.server_testing import (
    Table,
    Vector,
    build_flatbuffer,
    expand_bomb,
    external_data_model,
    gather_out_of_range,
    loop_bomb,
    patch_pte_segment,
    pte_program,
    relu_model,
    relu_tflite,
    tflite_while_bomb,
    xnnpack_blob,
)

TOKEN = "probe-token-0123456789"
SECRET = b"ABCDEFGH-probe-secret"
SECRET_INT = str(int.from_bytes(SECRET[:8], "little"))
HOST = "127.0.0.1"
TIME_LIMIT_S = 3.0


def _rss_kb(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            out += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    except OSError:
        pass
    return out


class Server:
    """`mnas device serve` in a subprocess, in a directory holding secret.bin; RSS sampled in the background."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="mnas-probe-")
        (Path(self.dir) / "secret.bin").write_bytes(SECRET)
        help_text = subprocess.run([sys.executable, "-m", "mnas.cli", "device", "serve", "--help"], capture_output=True,
                                   text=True, timeout=60).stdout
        extra = ["--time-limit-s", str(TIME_LIMIT_S), "--max-memory-mb", "512"] if "--time-limit-s" in help_text else []
        self.new_api = bool(extra)
        cmd = [sys.executable, "-m", "mnas.cli", "device", "serve", "--host", HOST, "--port", "0", "--token", TOKEN,
               "--quiet", *extra]
        self.proc = subprocess.Popen(cmd, cwd=self.dir, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path[1:])})
        line = self.proc.stderr.readline()
        if "device server on http://" not in line:
            raise SystemExit(f"the server did not start: {line}")
        self.port = int(line.split(" on ", 1)[1].split()[0].rsplit(":", 1)[1])
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()  # drain its log
        self.peak_total_kb = 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            total = _rss_kb(self.proc.pid) + sum(_rss_kb(c) for c in _children(self.proc.pid))
            self.peak_total_kb = max(self.peak_total_kb, total)

    def rss_kb(self) -> int:
        return _rss_kb(self.proc.pid)

    def close(self) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=15)


def request(srv: Server, method: str, path: str, body: bytes | None = None, token: str | None = TOKEN,
            headers: dict | None = None, timeout: float = 30.0) -> tuple[int, dict | None, str]:
    """(status, JSON or None, note); status 0 when the connection failed (the note says how)."""
    conn = http.client.HTTPConnection(HOST, srv.port, timeout=timeout)
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=body, headers=hdrs)
        response = conn.getresponse()
        data = response.read(2**20)
        try:
            return response.status, json.loads(data) if data else None, ""
        except ValueError:
            return response.status, None, "body is not JSON"
    except (OSError, http.client.HTTPException) as exc:
        return 0, None, f"{type(exc).__name__}"
    finally:
        conn.close()


def raw(srv: Server, data: bytes, timeout: float = 15.0) -> tuple[int, dict | None, str]:
    try:
        with socket.create_connection((HOST, srv.port), timeout=timeout) as sock:
            sock.sendall(data)
            answer = b""
            while len(answer) < 2**20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
    except OSError as exc:
        return 0, None, type(exc).__name__
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        status = int(head.split()[1])
    except (IndexError, ValueError):
        return 0, None, f"no status line ({answer[:30]!r})"
    try:
        return status, json.loads(body) if body else None, ""
    except ValueError:
        return status, None, "body is not JSON"


def legit(srv: Server, timeout: float = 30.0) -> int:
    return request(srv, "POST", "/v1/measure?shape=1,3,16,16&repeats=5", relu_model(), timeout=timeout)[0]


def _json_error(status: int, data: dict | None, allowed: tuple[int, ...]) -> bool:
    return status in allowed and isinstance(data, dict) and isinstance(data.get("error"), str)


def run_cases(srv: Server) -> list[tuple[str, bool, str]]:
    results: list[tuple[str, bool, str]] = []

    def case(name: str, handled: bool, outcome: str) -> None:
        results.append((name, handled, outcome))
        print(f"  {'ok ' if handled else 'BAD'}  {name}: {outcome}", flush=True)

    st = legit(srv)
    case("legitimate measurement", st == 200, f"{st}")
    # item 1: file references and runtime text
    for where in ("initializer", "sparse", "constant", "loop", "if", "function", "no_entries"):
        st, data, note = request(srv, "POST", "/v1/measure?shape=1", external_data_model("secret.bin", where))
        leaked = SECRET_INT in json.dumps(data)
        case(f"external data in {where}", _json_error(st, data, (400,)) and not leaked,
             f"{st} {'LEAKED the file bytes' if leaked else (data or {}).get('kind', note)}")
    st, data, note = request(srv, "POST", "/v1/measure?shape=1", gather_out_of_range(987654321))
    case("runtime error text (Gather index 987654321)", _json_error(st, data, (400,)) and "987654321" not in json.dumps(data),
         f"{st} {'echoed the index' if '987654321' in json.dumps(data) else (data or {}).get('kind', note)}")
    # item 2: a runaway model
    t0 = time.perf_counter()
    st, data, note = request(srv, "POST", "/v1/measure?shape=1", loop_bomb(10**15), timeout=TIME_LIMIT_S + 20)
    took = time.perf_counter() - t0
    t1 = time.perf_counter()
    after = legit(srv, timeout=20)
    case("Loop of 1e15 iterations, then a legitimate request",
         _json_error(st, data, (408, 422, 503)) and after == 200,
         f"{st or note} after {took:.1f} s; next request {after} after {time.perf_counter() - t1:.2f} s")
    # item 4: an Expand bomb
    before = srv.rss_kb()
    st, data, note = request(srv, "POST", "/v1/measure?shape=1", expand_bomb(20000), timeout=60)
    after = legit(srv, timeout=30)
    case("Expand to 20000x20000, then a legitimate request", _json_error(st, data, (413, 422)) and after == 200,
         f"{st} {(data or {}).get('kind', note)}; next {after}; server RSS {before // 1024} -> {srv.rss_kb() // 1024} MiB")
    # item 3: unauthenticated uploads on many connections
    rss0, statuses = srv.rss_kb(), []
    body = bytes(63 * 2**20)

    def upload() -> None:
        statuses.append(request(srv, "POST", "/v1/measure?shape=1", body, token="wrong-token-000", timeout=60)[0])

    threads = [threading.Thread(target=upload) for _ in range(20)]
    peak = rss0
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        peak = max(peak, srv.rss_kb())
        time.sleep(0.05)
    for t in threads:
        t.join(timeout=1)
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    # Over --max-connections (16) a connection is answered 503 and closed unread: a client still sending sees a
    # reset (status 0 here). Handled means: memory stays flat and nothing but 401/503/reset comes back.
    case("20 unauthenticated 63 MB uploads at once", peak - rss0 < 100 * 1024 and set(statuses) <= {0, 401, 503},
         f"statuses {counts} (0: reset, over the connection limit); server RSS {rss0 // 1024} -> peak {peak // 1024} MiB")
    # item 5: oversized body, HTTP-layer errors
    st, data, note = request(srv, "POST", "/v1/measure?shape=1", bytes(65 * 2**20), timeout=60)
    case("65 MiB body (limit 64 MiB) sent before reading", _json_error(st, data, (413,)), f"{st or note}")
    st, data, note = raw(srv, b"POST /v1/measure?shape=1 HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode()
                         + b"\r\nContent-Length: 99999999999\r\nExpect: 100-continue\r\n\r\n")
    case("Expect: 100-continue with a 100 GB Content-Length", _json_error(st, data, (413,)), f"{st or note}")
    for label, data_bytes, allowed in [
        ("garbage request line", b"GARBAGE\r\n\r\n", (400,)),
        ("request line of NUL bytes", b"\x00" * 100 + b"\r\n\r\n", (400,)),
        ("four-word request line", b"GET /v1/info HTTP/1.1 x\r\n\r\n", (400,)),
        ("HTTP/2.0", b"GET /v1/info HTTP/2.0\r\n\r\n", (505,)),
        ("HTTP/1.a", b"GET /v1/info HTTP/1.a\r\n\r\n", (400,)),
        ("100 KB request line", b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n", (414,)),
        ("100 KB header", b"GET /v1/info HTTP/1.1\r\nX: " + b"a" * 100_000 + b"\r\n\r\n", (431,)),
        ("300 headers", b"GET /v1/info HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n", (431,)),
        ("header without a colon", b"GET /v1/info HTTP/1.1\r\nno colon here\r\n\r\n", (400, 401)),
        ("method BREW", b"BREW /v1/info HTTP/1.1\r\n\r\n", (501,)),
        ("chunked body", b"POST /v1/measure?shape=1 HTTP/1.1\r\nAuthorization: Bearer " + TOKEN.encode()
         + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (411, 400, 501)),
    ]:
        st, data, note = raw(srv, data_bytes)
        case(label, _json_error(st, data, allowed), f"{st or ''} {note or (data or {}).get('kind', '')}".strip())
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS"):
        st, data, note = request(srv, method, "/v1/measure", b"x")
        case(f"{method} /v1/measure", _json_error(st, data, (405, 501)), f"{st or note}")
    st, data, note = request(srv, "HEAD", "/v1/info")
    case("HEAD /v1/info", st in (405, 501) and data is None, f"{st or note}")
    # bad tokens
    for label, hdr in [("no token", None), ("empty bearer", ""), ("wrong token", "wrong-token-123"),
                       ("token plus a byte", TOKEN + "x"), ("8 KB token", "t" * 8000), ("non-ASCII token", "tökén-ünïcode")]:
        st, data, note = request(srv, "GET", "/v1/info", token=hdr)
        case(f"bad token: {label}", _json_error(st, data, (401,)), f"{st or note}")
    st, data, note = request(srv, "GET", "/v1/info", token=None, headers={"Authorization": f"Basic {TOKEN}"})
    case("bad token: Basic scheme", _json_error(st, data, (401,)), f"{st or note}")
    # bad parameters and bodies ("bad JSON": a JSON document where the ONNX file belongs)
    for label, path, body in [
        ("JSON instead of ONNX", "/v1/measure?shape=1", b'{"model": "resnet50", "shape": [1, 3, 224, 224]'),
        ("random 1 MB", "/v1/measure?shape=1", os.urandom(2**20)),
        ("truncated ONNX", "/v1/measure?shape=1,3,16,16", relu_model()[:40]),
        ("empty body", "/v1/measure?shape=1", b""),
        ("no shape", "/v1/measure", relu_model()),
        ("negative shape", "/v1/measure?shape=1,-3,16,16", relu_model()),
        ("shape of 1e12 elements", "/v1/measure?shape=1000000,1000000", relu_model()),
        ("10000-dimension shape (a 20 KB URL)", "/v1/measure?shape=" + ",".join(["1"] * 10000), relu_model()),
        ("repeats=10^9", "/v1/measure?shape=1,3,16,16&repeats=1000000000", relu_model()),
        ("unknown parameter", "/v1/measure?shape=1,3,16,16&threads=64", relu_model()),
        ("wrong input shape", "/v1/measure?shape=1,3,32,32", relu_model()),
    ]:
        st, data, note = request(srv, "POST", path, body)
        case(label, _json_error(st, data, (400, 414)), f"{st or note} {(data or {}).get('kind', '')}")
    for label, value in [("Content-Length -1", "-1"), ("Content-Length abc", "abc"), ("Content-Length 1e9", "1e9")]:
        st, data, note = raw(srv, f"POST /v1/measure?shape=1 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                                  f"Content-Length: {value}\r\n\r\n".encode())
        case(label, _json_error(st, data, (400,)), f"{st or note}")
    st, data, note = raw(srv, f"POST /v1/measure?shape=1 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                              f"Content-Length: 1000\r\n\r\nshort".encode(), timeout=60)
    case("body shorter than its Content-Length", st in (0, 400) and legit(srv) == 200, f"{st or note}; then served")
    # slow senders and connection floods
    t0, socks = time.monotonic(), []
    for _ in range(30):
        try:
            s = socket.create_connection((HOST, srv.port), timeout=5)
            s.sendall(b"GET /v1/info HTTP/1.1\r\n")
            socks.append(s)
        except OSError:
            pass
    during = legit(srv, timeout=10)
    closed_at: dict[int, float] = {}
    for _ in range(40):  # 20 s at most: one header byte per connection every 0.5 s
        for i, s in enumerate(socks):
            if i in closed_at:
                continue
            try:
                s.sendall(b"X")
                s.setblocking(False)
                try:
                    if s.recv(4096) == b"":
                        closed_at[i] = time.monotonic() - t0
                except BlockingIOError:
                    pass
                except OSError:
                    closed_at[i] = time.monotonic() - t0
                s.setblocking(True)
            except OSError:
                closed_at[i] = time.monotonic() - t0
        if len(closed_at) == len(socks):
            break
        time.sleep(0.5)
    for s in socks:
        s.close()
    latest = max(closed_at.values(), default=float("nan"))
    after = legit(srv)
    case("30 slowloris connections (a header byte every 0.5 s)", len(closed_at) == len(socks) and after == 200,
         f"{len(closed_at)}/{len(socks)} cut off, the last after {latest:.1f} s; a legitimate request during the"
         f" attack got {during}, after it {after}")
    idle = []
    for _ in range(100):
        try:
            idle.append(socket.create_connection((HOST, srv.port), timeout=5))
        except OSError:
            break
    time.sleep(0.5)
    st, data, note = request(srv, "GET", "/v1/info", timeout=10)
    for s in idle:
        s.close()
    time.sleep(0.5)
    after = request(srv, "GET", "/v1/info", timeout=10)[0]
    case("100 idle connections, then one more", st in (200, 503) and after == 200,
         f"the extra one got {st or note}; after closing them {after}; server RSS {srv.rss_kb() // 1024} MiB")
    results_now: list[int] = []
    threads = [threading.Thread(target=lambda: results_now.append(legit(srv, timeout=60))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    case("8 legitimate measurements at once", results_now == [200] * 8, f"{sorted(results_now)}")
    kids = _children(srv.proc.pid)
    if kids:
        os.kill(kids[0], signal.SIGKILL)
        time.sleep(0.2)
        case("measuring process killed from outside, then a request", legit(srv) == 200, "served")
    return results


def _real_pte() -> bytes | None:
    """A tiny network (8x8 input) lowered to XNNPACK as a .pte here, or None without executorch's exporter."""
    try:
        from mnas.latency.executorch_backend import pte_bytes
        from mnas.latency.export import timing_model
        from mnas.space import as_arch
    except ImportError:
        return None
    arch = as_arch("r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.2_relu")
    try:
        return pte_bytes(timing_model(arch, 8, 10), (1, 3, 8, 8))
    except (ImportError, ValueError) as exc:
        print(f"  (no real .pte: {str(exc).splitlines()[0][:120]})", flush=True)
        return None


def _dag_tflite() -> bytes:
    """A 25 kB .tflite whose 3,000 subgraph entries share one subgraph of 3,000 tensors (9 M table visits)."""
    tensor = Table({0: Vector("i32", [1]), 2: ("u32", 0)})
    subgraph = Table({0: Vector("table", [tensor] * 3000), 1: Vector("i32", [0]), 2: Vector("i32", [0])})
    return build_flatbuffer(Table({0: ("u32", 3), 1: Vector("table", [Table({3: ("i32", 19)})]),
                                   2: Vector("table", [subgraph] * 3000), 4: Vector("table", [Table()])}), b"TFL3")


def format_cases(srv: Server) -> list[tuple[str, bool, str]]:
    """.tflite in LiteRT and .pte in ExecuTorch (issue 20 item 1): every hostile file gets one JSON line and a
    4xx (or 422 for a limit), and a legitimate file in the same runtime is served after it."""
    results: list[tuple[str, bool, str]] = []

    def case(name: str, handled: bool, outcome: str) -> None:
        results.append((name, handled, outcome))
        print(f"  {'ok ' if handled else 'BAD'}  {name}: {outcome}", flush=True)

    info = request(srv, "GET", "/v1/info")[1] or {}
    served = info.get("runtimes") or {}
    print(f"  server measures: {', '.join(served) or 'onnxruntime (an older server: no runtimes listed)'}", flush=True)
    st, data, note = request(srv, "POST", "/v1/measure?shape=1,3,8,8&runtime=tvm", relu_tflite())
    case("runtime=tvm", _json_error(st, data, (400,)), f"{st or note} {(data or {}).get('kind', '')}")

    def probe(runtime: str, label: str, body: bytes, allowed: tuple[int, ...], kinds: tuple[str, ...],
              shape: str = "1,3,8,8", legit: tuple[bytes, str] | None = None, timeout: float = 60.0) -> None:
        t0 = time.perf_counter()
        st, data, note = request(srv, "POST", f"/v1/measure?shape={shape}&runtime={runtime}", body, timeout=timeout)
        took = time.perf_counter() - t0
        kind = (data or {}).get("kind", note)
        ok = _json_error(st, data, allowed) and kind in kinds and "\n" not in (data or {}).get("error", "")
        after = ""
        if legit is not None:
            after_st = request(srv, "POST", f"/v1/measure?shape={legit[1]}&runtime={runtime}&repeats=5", legit[0],
                               timeout=60)[0]
            ok = ok and after_st == 200
            after = f"; next legitimate {after_st}"
        error = (data or {}).get("error", "")
        case(f"{runtime}: {label}", ok, f"{st or note} {kind} in {took:.2f} s{after}: {error[:110]}")

    def warm_up(runtime: str, body: bytes) -> None:
        """The first request in a runtime starts its measuring process (imports: seconds, a minute under load)."""
        t0 = time.perf_counter()
        st, data, note = request(srv, "POST", f"/v1/measure?shape=1,3,8,8&runtime={runtime}&repeats=5", body,
                                 timeout=300)
        case(f"{runtime}: first request (starts its measuring process)", st == 200,
             f"{st or note} after {time.perf_counter() - t0:.1f} s {(data or {}).get('error', '')[:80]}")

    if "litert" in served:
        good = (relu_tflite(), "1,3,8,8")
        warm_up("litert", good[0])
        st, data, note = request(srv, "POST", "/v1/measure?shape=1,3,8,8&runtime=litert&repeats=5", good[0])
        case("litert: legitimate .tflite (hand-built Relu)", st == 200 and (data or {}).get("measured_in") == "litert",
             f"{st or note} {(data or {}).get('median_ms', 0) * 1e3:.2f} us")
        st, data, note = request(srv, "POST", "/v1/measure?shape=1,3,8,8&runtime=litert&repeats=5",
                                 relu_tflite(weight_offset=0))
        case("litert: legitimate .tflite with its weights after the flatbuffer", st == 200, f"{st or note}")
        for label, body, kinds in [
            ("truncated to 200 bytes", relu_tflite()[:200], ("invalid_model",)),
            ("truncated real-size file (weights cut)", relu_tflite(weight_offset=0)[:-100], ("invalid_model",)),
            ("wrong identifier TFL2", relu_tflite()[:4] + b"TFL2" + relu_tflite()[8:], ("invalid_model",)),
            ("an ONNX file", relu_model((1, 3, 8, 8)), ("invalid_model",)),
            ("buffer at offset 1e9 (past the end)", relu_tflite(weight_offset=10**9), ("invalid_model",)),
            ("buffer at offset 2^63", relu_tflite(weight_offset=2**63), ("invalid_model",)),
            ("buffer size 2^64-1 (overflow)", relu_tflite(weight_offset=64, weight_size=2**64 - 1), ("invalid_model",)),
            ("root table past the end", b"\xff\xff\x00\x00" + relu_tflite()[4:], ("invalid_model",)),
            ("custom op Convolution2DTransposeBias", relu_tflite(op=32, custom_code="Convolution2DTransposeBias"),
             ("unsupported_op",)),
            ("Flex (TensorFlow) custom op", relu_tflite(op=32, custom_code="FlexConv2D"), ("unsupported_op",)),
            ("DELEGATE node", relu_tflite(op=51), ("unsupported_op",)),
            ("STABLEHLO_CUSTOM_CALL", relu_tflite(op=173), ("unsupported_op",)),
            ("external buffer (weights.bin)", relu_tflite(external_buffer=True), ("file_reference",)),
            ("tensor names buffer 99", relu_tflite(tensor_buffer=99), ("invalid_model",)),
            ("operator reads tensor 99", relu_tflite(op_input=99), ("invalid_model",)),
            ("25 kB file, 9 M table visits (shared tables)", _dag_tflite(), ("invalid_model",)),
        ]:
            probe("litert", label, body, (400,), kinds, legit=good)
        probe("litert", "66 MiB body (limit 64 MiB)", relu_tflite() + bytes(66 * 2**20), (413,), ("too_large",),
              legit=good)
        probe("litert", "WHILE that never ends", tflite_while_bomb(), (422,), ("time_limit",), shape="1",
              legit=good, timeout=TIME_LIMIT_S + 30)
        probe("litert", "three 8000x8000 float tensors alive (732 MiB; cap 512 MiB above idle)",
              relu_tflite((1, 1, 8000, 8000), chain=2), (422,), ("memory_limit",), shape="1,1,8000,8000", legit=good)
    else:
        print("  (litert not served: pip install ai-edge-litert on the server's side)", flush=True)
    if "executorch" in served:
        real = _real_pte()
        good = (real, "1,3,8,8") if real else None
        if real:
            warm_up("executorch", real)
            st, data, note = request(srv, "POST", "/v1/measure?shape=1,3,8,8&runtime=executorch&repeats=5", real,
                                     timeout=120)
            case("executorch: legitimate .pte (tiny network, XNNPACK)", st == 200, f"{st or note}"
                 f" {(data or {}).get('median_ms', 0) * 1e3:.1f} us, {len(real)} bytes")
        cases = [
            ("truncated (hand-built)", pte_program(delegate=xnnpack_blob())[:100], ("invalid_model",)),
            ("wrong identifier XX12", pte_program(identifier=b"XX12"), ("invalid_model",)),
            ("a .tflite", relu_tflite(), ("invalid_model",)),
            ("segment at offset 2^40", pte_program(segments=[bytes(16)], segment_offsets=[(2**40, 16)]),
             ("invalid_model",)),
            ("segment size 2^64-1", pte_program(segments=[bytes(16)], segment_offsets=[(0, 2**64 - 1)]),
             ("invalid_model",)),
            ("segments without an extended header", pte_program(segment_offsets=[(0, 16)], header=False),
             ("invalid_model",)),
            ("tensor data EXTERNAL (.ptd)", pte_program(external_tensor=True), ("file_reference",)),
            ("XNNPACK weights named but not in the file (.ptd)", pte_program(delegate=xnnpack_blob(named_key="w0")),
             ("file_reference",)),
            ("VulkanBackend delegate", pte_program(delegate=xnnpack_blob(), delegate_id="VulkanBackend"),
             ("unsupported_op",)),
            ("XNNPACK constant outside its data", pte_program(delegate=xnnpack_blob(constant_offset=8, constant_size=64)),
             ("invalid_model",)),
        ]
        if real:
            cases += [
                ("real .pte truncated by half", real[: len(real) // 2], ("invalid_model",)),
                ("real .pte, last 64 bytes cut", real[:-64], ("invalid_model",)),
                ("real .pte, last segment's size 1e6 (past the end)", patch_pte_segment(real, -1, size=10**6),
                 ("invalid_model",)),
                ("real .pte, a segment at offset 2^40", patch_pte_segment(real, 1, offset=2**40), ("invalid_model",)),
                ("real .pte, identifier XX12", real[:4] + b"XX12" + real[8:], ("invalid_model",)),
            ]
        for label, body, kinds in cases:
            probe("executorch", label, body, (400,), kinds, legit=good)
        probe("executorch", "66 MiB body (limit 64 MiB)", pte_program() + bytes(66 * 2**20), (413,), ("too_large",),
              legit=good)
    else:
        print("  (executorch not served: pip install executorch on the server's side)", flush=True)
    st = legit(srv)
    case("ONNX after the format cases", st == 200, f"{st}")
    return results


def overhead(srv: Server, n: int = 20) -> str:
    """Round trip through the server against the same measurement in this process."""
    from mnas.latency import Protocol, measure_onnx

    info = request(srv, "GET", "/v1/info")[1] or {}
    proto = Protocol.from_dict({**info.get("settings", {}).get("protocol", {}), "max_repeats": 5, "min_repeats": 5})
    model = relu_model()
    trips, local, failed = [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        status, data, note = request(srv, "POST", "/v1/measure?shape=1,3,16,16&repeats=5", model)
        trips.append((time.perf_counter() - t0) * 1e3)
        t0 = time.perf_counter()
        measure_onnx(model, (1, 3, 16, 16), 1, 1, proto, lock=None)
        local.append((time.perf_counter() - t0) * 1e3)
        if status != 200:
            failed.append(f"{status or note} {(data or {}).get('error', '')[:80]}")
    if failed:
        return f"overhead: {len(failed)} of {n} requests failed: {failed[:3]}"
    diff = [a - b for a, b in zip(trips, local, strict=True)]
    q = statistics.quantiles(diff, n=4)
    return (f"per request (n={n}, 1x3x16x16 Relu, 5 repeats): server round trip median {statistics.median(trips):.1f} ms,"
            f" same measurement in-process {statistics.median(local):.1f} ms, overhead median {statistics.median(diff):.1f}"
            f" ms (IQR {q[0]:.1f}..{q[2]:.1f})")


def startup_cases() -> list[tuple[str, bool, str]]:
    """The server's own options (issue 21): each bad value must stop `mnas device serve` at start with
    exit 2 and one line, not start a server nobody can use. A server still up after 90 s is killed (a busy
    machine takes tens of seconds to import the CLI)."""
    results = []
    for label, extra in [
        ("all-blank --token", ["--token", " " * 12]),
        ("--token with a trailing space", ["--token", TOKEN + " "]),
        ("non-ASCII --token", ["--token", "tökén-ünïcode-123"]),
        ("--time-limit-s 1e308", ["--token", TOKEN, "--time-limit-s", "1e308"]),
        ("--threads 100000", ["--token", TOKEN, "--threads", "100000"]),
        ("--max-connections 100000", ["--token", TOKEN, "--max-connections", "100000"]),
        ("--max-body-mb 1e308", ["--token", TOKEN, "--max-body-mb", "1e308"]),
        ("--max-memory-mb 1e308", ["--token", TOKEN, "--max-memory-mb", "1e308"]),
        ("--runtimes tvm", ["--token", TOKEN, "--runtimes", "tvm"]),
        ("--runtimes ''", ["--token", TOKEN, "--runtimes", ""]),
    ]:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "device", "serve", "--host", HOST, "--port", "0",
                                 "--quiet", *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "MNAS_DEVICE_TOKEN": ""})
        try:
            _, err = proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate(timeout=15)
            outcome, ok = "started and kept serving (killed after 90 s)", False
        else:
            lines = err.strip().splitlines()
            ok = proc.returncode == 2 and len(lines) == 1 and "internal error" not in err
            outcome = f"exit {proc.returncode} in {time.perf_counter() - t0:.1f} s: {(lines or [''])[-1][:120]}"
        results.append((f"serve with {label}", ok, outcome))
        print(f"  {'ok ' if ok else 'BAD'}  serve with {label}: {outcome}", flush=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--startup-only", action="store_true",
                        help="only the server's own options at start (no server, no requests)")
    parser.add_argument("--formats-only", action="store_true",
                        help="only the .tflite/.pte cases (and the start-up options)")
    args = parser.parse_args()
    startup = startup_cases()
    print(f"start-up options: tried {len(startup)}, handled {sum(ok for _, ok, _ in startup)}", flush=True)
    if args.startup_only:
        return 0
    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min),"
          f" {os.cpu_count()} CPUs", flush=True)
    t0 = time.perf_counter()
    srv = Server()
    print(f"server pid {srv.proc.pid} on {HOST}:{srv.port} ({'new' if srv.new_api else 'old'} options),"
          f" started in {time.perf_counter() - t0:.1f} s, RSS {srv.rss_kb() // 1024} MiB", flush=True)
    try:
        if srv.new_api and not args.formats_only:
            print(overhead(srv), flush=True)
        results = [] if args.formats_only else run_cases(srv)
        handled = sum(ok for _, ok, _ in results)
        print(f"requests: tried {len(results)}, handled {handled}")
        formats = format_cases(srv)
        print(f".tflite/.pte: tried {len(formats)}, handled {sum(ok for _, ok, _ in formats)}")
        results += formats
        results += startup
        print(f"tried {len(results)}, handled {sum(ok for _, ok, _ in results)} (requests and start-up options)")
        print(f"server peak RSS: parent VmHWM {_rss_kb(srv.proc.pid, 'VmHWM') // 1024} MiB; parent + measuring process"
              f" (sampled every 50 ms) {srv.peak_total_kb // 1024} MiB")
        if srv.new_api and not args.formats_only:
            print(overhead(srv))
    finally:
        srv.close()
    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; wall {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
