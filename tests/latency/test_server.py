"""The device server over real HTTP on 127.0.0.1: auth, limits, bad input, serialisation, no torch."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest
from latency_helpers import SMALL, TOKEN

from mnas.latency import DeviceUnavailable, Remote
from mnas.latency.server import DeviceServer

pytest.importorskip("onnxruntime")

SHAPE = "1,3,16,16"


@pytest.fixture(scope="module")
def small_onnx():
    from mnas.latency import onnx_bytes
    from mnas.latency.export import timing_model

    return onnx_bytes(timing_model(SMALL, 16, 10), 16)


def request(server, method, path, body=None, token=TOKEN, headers=None):
    """One raw HTTP request; returns (status, JSON body)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = f"Bearer {token}"
    conn.request(method, path, body=body, headers=hdrs)
    response = conn.getresponse()
    status, data = response.status, json.loads(response.read() or b"{}")
    conn.close()
    return status, data


def still_serving(server):
    status, data = request(server, "GET", "/v1/info")
    assert status == 200 and data["device"]["cpu"]


def test_info_describes_the_device(device_server):
    status, data = request(device_server, "GET", "/v1/info")
    assert status == 200
    assert data["device"]["cpu"] and "onnxruntime" in data["runtime"]
    assert data["settings"]["threads"] == 1


def test_measure_returns_statistics(device_server, small_onnx):
    status, data = request(device_server, "POST", f"/v1/measure?shape={SHAPE}&repeats=6", body=small_onnx)
    assert status == 200, data
    assert data["median_ms"] > 0 and data["iqr_ms"] >= 0 and data["cv"] >= 0
    assert data["n"] <= 6 and data["input_shape"] == [1, 3, 16, 16]
    assert data["device"]["cpu"] and data["runtime"]["onnxruntime"]


@pytest.mark.parametrize("token", [None, "", "wrong-token-0123456789", TOKEN[:-1], TOKEN + "x"])
def test_wrong_or_missing_token_is_401(device_server, small_onnx, token):
    assert request(device_server, "GET", "/v1/info", token=token)[0] == 401
    status, data = request(device_server, "POST", f"/v1/measure?shape={SHAPE}", body=small_onnx, token=token)
    assert status == 401 and "token" in data["error"]
    still_serving(device_server)


def test_body_over_the_limit_is_413(device_server):
    status, data = request(device_server, "POST", f"/v1/measure?shape={SHAPE}",
                           headers={"Content-Length": str(device_server.max_body_bytes + 1)}, body=b"")
    assert status == 413 and "limit" in data["error"]
    still_serving(device_server)


@pytest.mark.parametrize("path, body, message", [
    (f"/v1/measure?shape={SHAPE}", b"this is not onnx", "not a valid ONNX"),
    (f"/v1/measure?shape={SHAPE}", b"", "empty body"),
    ("/v1/measure", None, "missing parameter 'shape'"),
    ("/v1/measure?shape=1,3,x,16", None, "bad shape"),
    ("/v1/measure?shape=1,3,0,16", None, "positive integers"),
    ("/v1/measure?shape=1,3,32,32", None, "does not fit"),
    ("/v1/measure?shape=1,3,16", None, "does not fit"),
    ("/v1/measure?shape=100000,3,224,224", None, "more than"),
    (f"/v1/measure?shape={SHAPE}&repeats=0", None, "bad repeats"),
    (f"/v1/measure?shape={SHAPE}&threads=4", None, "unknown parameter 'threads'"),
])
def test_bad_requests_are_400_and_the_server_keeps_serving(device_server, small_onnx, path, body, message):
    status, data = request(device_server, "POST", path, body=small_onnx if body is None else body)
    assert status == 400, data
    assert message in data["error"]
    still_serving(device_server)


def test_unknown_path_is_404_and_missing_length_is_411(device_server):
    assert request(device_server, "GET", "/v1/nothing")[0] == 404
    parts = urlsplit(device_server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    conn.putrequest("POST", f"/v1/measure?shape={SHAPE}")
    conn.putheader("Authorization", f"Bearer {TOKEN}")
    conn.endheaders()
    assert conn.getresponse().status == 411
    conn.close()
    still_serving(device_server)


def test_requests_are_measured_one_at_a_time(device_server, small_onnx, monkeypatch):
    active, peak = [0], [0]
    guard = threading.Lock()

    def fake_measure(model, shape, protocol):  # stands in for the measuring process
        with guard:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.05)
        with guard:
            active[0] -= 1
        return {"median_ms": 1.0, "iqr_ms": 0.0, "cv": 0.0, "n": 1}

    monkeypatch.setattr(device_server.worker, "measure", fake_measure)
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        request(device_server, "POST", f"/v1/measure?shape={SHAPE}", body=small_onnx)[0])) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 4 and peak[0] == 1


def test_remote_backend_against_the_server(device_server, small_onnx):
    remote = Remote(device_server.url, TOKEN, timeout=30)
    stats = remote.measure_onnx(small_onnx, (1, 3, 16, 16))
    assert stats["median_ms"] > 0
    assert remote.describe()["device"]["cpu"]
    with pytest.raises(ValueError, match="refused the token"):
        Remote(device_server.url, "not-the-token").info()
    with pytest.raises(ValueError, match="400.*not a valid ONNX"):
        remote.measure_onnx(b"garbage", (1, 3, 16, 16))


def test_client_retries_then_gives_up_with_a_clear_error():
    closed = DeviceServer(TOKEN, "127.0.0.1", 0, quiet=True)
    url = closed.url
    closed.shutdown()  # nothing listens there any more
    with pytest.raises(DeviceUnavailable, match="did not answer after 3 tries"):
        Remote(url, TOKEN, retries=2, backoff_s=0.01, timeout=2).info()


def test_client_retries_503_and_times_out_on_a_silent_server():
    calls = []

    class Flaky(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            calls.append(self.path)
            if self.path == "/v1/silent":
                time.sleep(1.0)  # longer than the client's timeout
                return
            if self.path == "/v1/info" and len(calls) < 3:
                self.send_error(503)
                return
            if self.path == "/v1/info":
                body = b'{"device": {"cpu": "fake"}}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}"
        assert Remote(url, TOKEN, retries=3, backoff_s=0.01).info()["device"]["cpu"] == "fake"
        assert len(calls) == 3
        silent = Remote(url, TOKEN, retries=1, backoff_s=0.01, timeout=0.3)
        with pytest.raises(DeviceUnavailable, match="timed out"):  # the client's 0.3 s, not the server's 1 s
            silent._request("GET", "/v1/silent")
        assert calls.count("/v1/silent") == 2
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_server_refuses_a_short_token():
    with pytest.raises(ValueError, match="at least 8 characters"):
        DeviceServer("short", "127.0.0.1", 0)


def _block_torch_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def test_server_modules_do_not_import_torch():
    code = ("import sys, mnas.latency.server, mnas.cli.device_cmd, mnas.latency.remote, mnas.latency.server_job, "
            "mnas.latency.server_worker; "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))[:3]")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_device_serve_runs_where_torch_cannot_be_imported(small_onnx, tmp_path):
    # sys.modules['torch'] = None makes every 'import torch' fail, as on a device without PyTorch.
    code = ("import sys; sys.modules['torch'] = None; from mnas.cli import main; "
            f"sys.exit(main(['device', 'serve', '--port', '0', '--token', '{TOKEN}', '--quiet']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True, env=_block_torch_env())
    try:
        line = proc.stderr.readline()
        assert "device server on http://" in line, line + proc.stderr.read() if proc.poll() is not None else line
        url = line.split(" on ", 1)[1].split()[0]
        remote = Remote(url, TOKEN, timeout=60)
        assert remote.measure_onnx(small_onnx, (1, 3, 16, 16))["median_ms"] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
