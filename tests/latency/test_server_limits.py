"""Issue 13, items 1-5: the device server against hostile requests, over real HTTP on 127.0.0.1.

Each test is a regression test for one item (named in its docstring); the models are tiny
(`mnas.latency.server_testing`), the limits short (1.5 s, 256 MiB, 1 MiB bodies)."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
import tracemalloc

import pytest
from latency_helpers import TOKEN, fast_protocol

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from mnas.latency.device import DeviceLock  # noqa: E402
from mnas.latency.server import DeviceServer  # noqa: E402
from mnas.latency.server_testing import (  # noqa: E402
    expand_bomb,
    external_data_model,
    gather_out_of_range,
    loop_bomb,
    relu_model,
)

SECRET = b"ABCDEFGH-not-for-clients"
SECRET_AS_INT64 = str(int.from_bytes(SECRET[:8], "little"))
BODY_LIMIT = 2**20


@pytest.fixture(scope="module")
def tight():
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast_protocol(), quiet=True, time_limit_s=1.5,
                      max_memory_bytes=256 * 2**20, max_body_bytes=BODY_LIMIT, header_timeout_s=1.0) as server:
        yield server


def address(server):
    return server.httpd.server_address[:2]


def post(server, model, shape="1", token=TOKEN, timeout=30):
    conn = http.client.HTTPConnection(*address(server), timeout=timeout)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request("POST", f"/v1/measure?shape={shape}", body=model, headers=headers)
    response = conn.getresponse()
    status, data = response.status, json.loads(response.read())
    conn.close()
    return status, data


def raw(server, data, timeout=10.0):
    """Send raw bytes, read the answer to the end; (status, JSON body, header text)."""
    with socket.create_connection(address(server), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while len(answer) < 2**20:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), (json.loads(body) if body else None), head.decode("latin-1")


def serves(server):
    assert post(server, relu_model((1, 3, 8, 8)), "1,3,8,8")[0] == 200


# -- item 1: no file reads, no runtime text ------------------------------------------------------

@pytest.mark.parametrize("where", ["sparse", "loop", "if", "initializer", "constant"])
def test_a_model_that_reads_a_file_is_refused_and_leaks_nothing(tight, tmp_path, monkeypatch, where):
    """Item 1: external data (here relative to the server's directory) never reaches ONNX Runtime."""
    (tmp_path / "secret.bin").write_bytes(SECRET)
    monkeypatch.chdir(tmp_path)
    status, data = post(tight, external_data_model("secret.bin", where))
    assert SECRET_AS_INT64 not in json.dumps(data), data  # the old server printed the file's first 8 bytes here
    assert status == 400 and data["kind"] == "file_reference" and "external file" in data["error"], data
    serves(tight)


def test_runtime_error_text_is_not_sent_to_the_client(tight):
    """Item 1: ONNX Runtime prints the offending index of a Gather; the client gets the error class only."""
    status, data = post(tight, gather_out_of_range(987654321))
    assert "987654321" not in json.dumps(data), data
    assert status == 400 and data["kind"] == "invalid_model" and "InvalidArgument" in data["error"], data
    assert set(data) == {"error", "kind"}


# -- item 2: a time limit per request ------------------------------------------------------------

def test_a_runaway_loop_gets_422_and_the_next_request_is_served(tight):
    """Item 2: a Loop of 10^15 iterations is stopped at the limit; the measuring process is replaced."""
    worker = getattr(tight, "worker", None)  # None on the old server, which measured in its own thread
    before = (worker.restarts, worker.pid) if worker else (0, None)
    status, data = post(tight, loop_bomb(10**15), timeout=20)  # the old server never answered
    assert status == 422 and data["kind"] == "time_limit" and "1.5 s" in data["error"], data
    assert worker.restarts == before[0] + 1 and worker.pid != before[1]
    serves(tight)
    restarts = worker.restarts
    serves(tight)
    serves(tight)
    assert worker.restarts == restarts  # the replacement lives on after the request that started it


def test_a_measuring_process_killed_from_outside_is_replaced_once(tight):
    """Item 2: a replacement started from a request's thread outlives that thread (PR_SET_PDEATHSIG is per thread)."""
    import os
    import signal

    os.kill(tight.worker.pid, signal.SIGKILL)
    time.sleep(0.3)
    serves(tight)  # notices the death, starts a replacement from this request's thread and waits for it
    restarts = tight.worker.restarts
    for _ in range(3):
        time.sleep(0.3)  # the thread that started it has ended by now
        serves(tight)
    assert tight.worker.restarts == restarts


def test_waiting_for_the_device_lock_is_not_counted(tight):
    """Item 2: the one-measurement-at-a-time lock still holds, and waiting for it is not a timeout."""
    lock = DeviceLock("cpu")
    lock.acquire()  # as a LUT build in another process would
    result = []
    thread = threading.Thread(target=lambda: result.append(post(tight, relu_model((1, 4)), "1,4")))
    thread.start()
    try:
        thread.join(timeout=2.5)  # longer than the 1.5 s limit
        assert thread.is_alive(), "the measurement ran while another process held the device"
    finally:
        lock.release()
    thread.join(timeout=30)
    assert result and result[0][0] == 200, result


# -- item 3: headers first, bounded connections, no buffered rejects -------------------------------

def test_an_unauthenticated_upload_is_answered_from_its_headers(tight):
    """Item 3: 401 arrives before (and without) the body; the old server read the whole body first."""
    head = (f"POST /v1/measure?shape=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-123\r\n"
            f"Content-Length: {BODY_LIMIT // 2}\r\n\r\n").encode()
    with socket.create_connection(address(tight), timeout=5) as sock:
        sock.sendall(head)  # and no body: an answer can only come from the headers
        answer = b""
        while b'"unauthorised"' not in answer and len(answer) < 4096:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401") and b'"unauthorised"' in answer


def test_an_unauthenticated_body_is_dropped_not_kept(tight):
    """Item 3: the body of a request that is refused is read in small chunks, never held whole."""
    body = bytes(BODY_LIMIT - 1)
    tracemalloc.start()
    try:
        status, data = post(tight, body, token="wrong-token-123")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == 401, data
    assert peak < BODY_LIMIT // 4, f"peak {peak} bytes for a refused body of {len(body)}"


def test_connections_over_the_limit_get_503_at_once():
    """Item 3: --max-connections bounds the connections served; one more gets a JSON 503, not a thread."""
    with DeviceServer(TOKEN, "127.0.0.1", 0, quiet=True, max_connections=2, header_timeout_s=30.0) as server:
        idle = [socket.create_connection(address(server), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.2)  # both accepted
            status, data, _ = raw(server, f"GET /v1/info HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
            assert status == 503 and data["kind"] == "busy"
        finally:
            for sock in idle:
                sock.close()
        for _ in range(50):  # the slots come back once the idle connections are gone
            status = raw(server, f"GET /v1/info HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())[0]
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200


def test_a_slow_sender_is_cut_off_at_the_header_deadline(tight):
    """Item 3: a client trickling header lines is disconnected after header_timeout_s (1 s here)."""
    with socket.create_connection(address(tight), timeout=5) as sock:
        sock.sendall(b"GET /v1/info HTTP/1.1\r\n")
        closed = False
        for i in range(40):  # 8 s at most
            try:
                sock.sendall(f"X-Slow-{i}: 1\r\n".encode())
            except OSError:
                closed = True
                break
            if select.select([sock], [], [], 0.2)[0]:
                try:
                    closed = sock.recv(4096) == b"" or True
                except OSError:
                    closed = True
                break
        assert closed, "the server still waited for headers after 8 s"
    serves(tight)


# -- item 4: memory per measurement ---------------------------------------------------------------

def test_an_expand_bomb_gets_422_and_the_server_keeps_serving(tight):
    """Item 4: Expand of 1 element to 20000 x 20000 (1.6 GB) fails inside the 256 MiB cap, cleanly."""
    status, data = post(tight, expand_bomb(20000))
    assert status == 422 and data["kind"] == "memory_limit", data
    serves(tight)


# -- item 5: 413 that a client can read, JSON from the HTTP layer ----------------------------------

def test_an_oversized_body_gets_a_readable_413(tight):
    """Item 5: a client that sends a body over the limit before reading gets the JSON 413, not a broken pipe.

    8 MiB is more than loopback's socket buffers hold, so the old server's close broke the client's send."""
    status, data = post(tight, bytes(8 * BODY_LIMIT))
    assert status == 413 and data["kind"] == "too_large" and "limit" in data["error"]
    serves(tight)


LONG_PATH = "/v1/info?" + "a" * 9000
MANY_HEADERS = "".join(f"X-{i}: {i}\r\n" for i in range(101))


@pytest.mark.parametrize("request_bytes, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /v1/info HTTP/1.1 extra\r\n\r\n", 400),
    (f"GET {LONG_PATH} HTTP/1.1\r\n\r\n".encode(), 414),
    (b"GET /v1/info HTTP/1.1\r\nX-Big: " + b"a" * 40000 + b"\r\n\r\n", 431),
    (f"GET /v1/info HTTP/1.1\r\n{MANY_HEADERS}\r\n".encode(), 431),
    (b"BREW /v1/info HTTP/1.1\r\n\r\n", 501),
    (b"GET /v1/info HTTP/2.0\r\n\r\n", 505),
])
def test_errors_of_the_http_layer_are_json(tight, request_bytes, status):
    """Item 5: what the HTTP layer refuses is answered in the API's JSON, not the stdlib's HTML."""
    got, data, head = raw(tight, request_bytes)
    assert got == status and "application/json" in head and data["kind"] == "http" and data["error"]
    serves(tight)


def test_wrong_method_is_405_and_head_has_no_body(tight):
    status, data, _ = raw(tight, f"DELETE /v1/measure HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert status == 405 and data["kind"] == "method"
    status, data, head = raw(tight, f"HEAD /v1/info HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n\r\n".encode())
    assert status == 405 and data is None and "Content-Length" in head


def test_expect_100_continue_is_refused_before_the_body(tight):
    """Items 3 and 5: with Expect: 100-continue a refused request never sends its body at all."""
    head = (f"POST /v1/measure?shape=1 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\n"
            f"Content-Length: {10 * BODY_LIMIT}\r\n\r\n").encode()
    status, data, _ = raw(tight, head)
    assert status == 413 and data["kind"] == "too_large"
    ok_head = (f"POST /v1/measure?shape=1,4 HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\nExpect: 100-continue\r\n"
               f"Content-Length: {len(relu_model((1, 4)))}\r\n\r\n").encode()
    with socket.create_connection(address(tight), timeout=10) as sock:
        sock.sendall(ok_head)
        assert sock.recv(4096).startswith(b"HTTP/1.1 100")
        sock.sendall(relu_model((1, 4)))
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
