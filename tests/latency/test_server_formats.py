""".tflite (LiteRT) and .pte (ExecuTorch) on the device server, over real HTTP on 127.0.0.1.

The files are the small hand-built ones of `mnas.latency.server_testing` (no conversion: these
run in the default suite); the tests that need a runtime skip cleanly where it is not installed.
Conversions from PyTorch (seconds to a minute each) are in test_server_formats_slow.py."""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket

import pytest
from latency_helpers import TOKEN, fast_protocol

pytest.importorskip("onnxruntime")

from mnas.cli import main  # noqa: E402
from mnas.latency.server import DeviceServer, check_runtimes, installed_runtimes  # noqa: E402
from mnas.latency.server_testing import (  # noqa: E402
    pte_program,
    relu_model,
    relu_tflite,
    tflite_while_bomb,
    xnnpack_blob,
)

HAS_LITERT = importlib.util.find_spec("ai_edge_litert") is not None
HAS_EXECUTORCH = importlib.util.find_spec("executorch") is not None
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason="needs ai-edge-litert (pip install 'mnas[litert]')")
needs_executorch = pytest.mark.skipif(not HAS_EXECUTORCH, reason="needs executorch (pip install 'mnas[executorch]')")
BODY_LIMIT = 2**20
SHAPE = "1,3,8,8"


@pytest.fixture(scope="module")
def server():
    # 6 s: the WHILE test waits it out; a legitimate tiny measurement takes well under a second, more on a
    # starved machine (these tests run niced beside long jobs)
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast_protocol(), quiet=True, time_limit_s=6.0,
                      max_memory_bytes=256 * 2**20, max_body_bytes=BODY_LIMIT) as s:
        yield s


@pytest.fixture(scope="module")
def onnx_only():
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast_protocol(), quiet=True, runtimes="onnxruntime") as s:
        yield s


def post(server, body, runtime=None, shape=SHAPE, timeout=120, headers=None):
    conn = http.client.HTTPConnection(*server.httpd.server_address[:2], timeout=timeout)
    query = f"shape={shape}" + (f"&runtime={runtime}" if runtime else "")
    conn.request("POST", f"/v1/measure?{query}", body=body,
                 headers={"Authorization": f"Bearer {TOKEN}", **(headers or {})})
    response = conn.getresponse()
    status, data = response.status, json.loads(response.read())
    conn.close()
    return status, data


def refused(server, body, runtime, status, kind, match="", shape=SHAPE):
    got, data = post(server, body, runtime, shape)
    assert got == status and data["kind"] == kind and match in data["error"], data
    assert set(data) == {"error", "kind"} and "\n" not in data["error"]
    return data["error"]


def serves(server, runtime=None):
    body = relu_tflite() if runtime == "litert" else relu_model((1, 3, 8, 8))
    status, data = post(server, body, runtime)
    assert status == 200, data


# -- what the server measures ---------------------------------------------------------------------

def test_info_lists_each_runtime_with_its_format_and_precisions(server):
    runtimes = server.info()["runtimes"]
    assert runtimes["onnxruntime"]["format"] == ".onnx"
    assert ("litert" in runtimes) == HAS_LITERT and ("executorch" in runtimes) == HAS_EXECUTORCH
    for facts in runtimes.values():
        assert facts["precisions"] == ["fp32", "int8"] and isinstance(facts["versions"], dict)


def test_runtimes_option_is_checked():
    assert check_runtimes(None) == installed_runtimes()
    assert check_runtimes("onnxruntime, onnxruntime") == ("onnxruntime",)
    with pytest.raises(ValueError, match="unknown runtime 'tvm'"):
        check_runtimes("onnxruntime,tvm")
    with pytest.raises(ValueError, match="expected names"):
        check_runtimes("")


def test_an_unknown_runtime_is_refused(server):
    refused(server, relu_tflite(), "tvm", 400, "bad_request", "unknown runtime 'tvm'")


def test_a_runtime_not_served_is_refused_before_the_body_is_sent(onnx_only):
    """One line naming what the server measures; with Expect: 100-continue the body is never sent."""
    with socket.create_connection(onnx_only.httpd.server_address[:2], timeout=10) as sock:
        sock.sendall(f"POST /v1/measure?shape={SHAPE}&runtime=litert HTTP/1.1\r\nAuthorization: Bearer {TOKEN}\r\n"
                     "Content-Length: 1000000\r\nExpect: 100-continue\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    data = json.loads(body)
    assert head.split()[1] == b"400" and data["kind"] == "unsupported_runtime", answer
    assert "does not measure LiteRT (litert); it measures onnxruntime" in data["error"]
    assert onnx_only.info()["runtimes"].keys() == {"onnxruntime"}


def test_onnx_requests_are_unchanged(server):
    status, data = post(server, relu_model((1, 3, 8, 8)))
    assert status == 200 and data["measured_in"] == "onnxruntime" and data["runtime"]["onnxruntime"]


# -- .tflite in LiteRT ----------------------------------------------------------------------------

@needs_litert
def test_a_tflite_is_measured_in_litert(server):
    status, data = post(server, relu_tflite(weight_offset=0), "litert")
    assert status == 200, data
    assert data["median_ms"] > 0 and data["n"] >= 1 and data["measured_in"] == "litert"
    assert data["runtime"]["ai-edge-litert"] and "onnxruntime" not in data["runtime"]
    assert data["input_shape"] == [1, 3, 8, 8] and data["device"]["cpu"]


TFLITE_CASES = [
    ("truncated", relu_tflite()[:200], 400, "invalid_model", "past the end"),
    ("wrong identifier", b"\0\0\0\0TFL2" + relu_tflite()[8:], 400, "invalid_model", "identifier"),
    ("buffer past the end", relu_tflite(weight_offset=10**9), 400, "invalid_model", "past the end"),
    ("custom operator", relu_tflite(op=32, custom_code="Convolution2DTransposeBias"), 400, "unsupported_op",
     "Convolution2DTransposeBias"),
    ("delegate node", relu_tflite(op=51), 400, "unsupported_op", "DELEGATE"),
    ("external buffer", relu_tflite(external_buffer=True), 400, "file_reference", "external"),
    ("an ONNX file", relu_model((1, 3, 8, 8)), 400, "invalid_model", "identifier"),
    ("empty", b"", 400, "bad_request", "empty body"),
]


@needs_litert
@pytest.mark.parametrize("name, body, status, kind, match", TFLITE_CASES, ids=[c[0] for c in TFLITE_CASES])
def test_hostile_tflite_files_get_one_line_and_the_server_keeps_serving(server, name, body, status, kind, match):
    refused(server, body, "litert", status, kind, match)
    serves(server, "litert")


@needs_litert
def test_an_oversize_tflite_is_413(server):
    refused(server, relu_tflite() + bytes(BODY_LIMIT), "litert", 413, "too_large", "limit")
    serves(server, "litert")


@needs_litert
def test_a_tflite_while_loop_that_never_ends_gets_422_and_the_next_is_served(server):
    worker = server.workers["litert"]
    serves(server, "litert")
    restarts = worker.restarts
    refused(server, tflite_while_bomb(), "litert", 422, "time_limit", "6 s", shape="1")
    assert worker.restarts == restarts + 1
    serves(server, "litert")
    serves(server)  # ONNX Runtime's measuring process was not touched


@needs_litert
def test_a_tflite_over_the_memory_cap_gets_422(server):
    """Two float tensors of 8000 x 8000 (512 MB) under a 256 MiB cap."""
    refused(server, relu_tflite((1, 1, 8000, 8000)), "litert", 422, "memory_limit", "--max-memory-mb",
            shape="1,1,8000,8000")
    serves(server, "litert")


@needs_litert
def test_a_tflite_at_the_wrong_shape_is_400(server):
    status, data = post(server, relu_tflite(), "litert", shape="1,3,16,16")
    assert status == 400 and data["kind"] == "invalid_model" and "does not fit" in data["error"], data


# -- .pte in ExecuTorch (structures only: a runnable program needs a conversion, in the slow tests) --

PTE_CASES = [
    ("truncated", pte_program(delegate=xnnpack_blob())[:100], "invalid_model", "past the end"),
    ("wrong identifier", pte_program(identifier=b"XX12"), "invalid_model", "identifier"),
    ("segment past the end", pte_program(segments=[bytes(16)], segment_offsets=[(0, 10**6)]), "invalid_model",
     "past the end"),
    ("external tensor", pte_program(external_tensor=True), "file_reference", ".ptd"),
    ("XNNPACK weights from a .ptd", pte_program(delegate=xnnpack_blob(named_key="w0")), "file_reference", ".ptd"),
    ("another delegate", pte_program(delegate=xnnpack_blob(), delegate_id="VulkanBackend"), "unsupported_op",
     "XNNPACK"),
    ("a .tflite", relu_tflite(), "invalid_model", "identifier"),
]


@needs_executorch
def test_a_pte_with_the_wrong_identifier_is_refused_without_starting_executorch(server):
    refused(server, pte_program(identifier=b"XX12"), "executorch", 400, "invalid_model", "identifier")
    refused(server, relu_tflite(), "executorch", 400, "invalid_model", "identifier")
    assert server.workers["executorch"].pid is None  # the HTTP process checks the identifier itself


@needs_executorch
@pytest.mark.slow  # the first request in ExecuTorch starts its measuring process (imports torch: 4-13 s here)
@pytest.mark.parametrize("name, body, kind, match", PTE_CASES, ids=[c[0] for c in PTE_CASES])
def test_hostile_pte_files_are_refused_before_executorch_loads_them(server, name, body, kind, match):
    worker = server.workers["executorch"]
    refused(server, body, "executorch", 400, kind, match)
    assert worker.restarts == 0  # refused by the walk in the measuring process: nothing crashed


@needs_executorch
def test_an_oversize_pte_is_413(server):
    refused(server, pte_program() + bytes(BODY_LIMIT), "executorch", 413, "too_large", "limit")


# -- the command line ---------------------------------------------------------------------------------

def usage_error(capsys, *argv, match):
    code = main(list(argv))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("mnas: error:") and match in lines[0], (out, err)
    return lines[0]


SMALL = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.2_relu"


@pytest.mark.parametrize("argv, match", [
    (["--runtime", "litert"], "--runtime is for --backend remote"),
    (["--backend", "litert", "--url", "http://127.0.0.1:1"], "use --backend remote --runtime litert"),
    (["--backend", "remote", "--url", "http://127.0.0.1:1", "--token", TOKEN, "--device", "cuda"], "--device cuda"),
])
def test_cli_remote_runtime_errors_are_one_line(capsys, argv, match):
    usage_error(capsys, "latency", "measure", SMALL, *argv, match=match)


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is None, reason="needs litert-torch on the client")
def test_cli_asks_the_server_before_converting(capsys, onnx_only, monkeypatch):
    """A runtime the server lacks is one line, before the (slow) conversion starts."""
    import mnas.latency.litert as litert

    monkeypatch.setattr(litert, "tflite_bytes", lambda *a, **k: pytest.fail("converted before asking the server"))
    line = usage_error(capsys, "latency", "measure", SMALL, "--input-size", "8", "--backend", "remote", "--url",
                       onnx_only.url, "--token", TOKEN, "--runtime", "litert", "--precision", "int8",
                       match="does not measure litert (it measures onnxruntime)")
    assert "pip install ai-edge-litert on the device" in line


def test_cli_device_info_lists_the_runtimes(capsys, server):
    assert main(["device", "info", "--url", server.url, "--token", TOKEN]) == 0
    out = capsys.readouterr().out
    assert "measures: onnxruntime (.onnx, fp32/int8)" in out
    assert ("measures: litert (.tflite, fp32/int8)" in out) == HAS_LITERT
