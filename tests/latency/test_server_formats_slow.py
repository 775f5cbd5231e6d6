"""The remote backend in LiteRT and ExecuTorch, end to end: a network converted on the client, uploaded,
checked and timed by the device server. Marked slow: each conversion takes 10-100 s on a busy
2-core machine (``pytest -m slow tests/latency/test_server_formats_slow.py``). Tiny networks at 8x8."""

from __future__ import annotations

import json

import pytest
from latency_helpers import SMALL, TOKEN, fast_protocol

pytestmark = pytest.mark.slow

pytest.importorskip("onnxruntime")

from mnas.cli import main  # noqa: E402
from mnas.latency import Remote  # noqa: E402
from mnas.latency.server import DeviceServer  # noqa: E402
from mnas.latency.server_check import ModelRefused  # noqa: E402
from mnas.latency.server_flatbuffers import check_pte, check_tflite  # noqa: E402
from mnas.latency.server_testing import patch_pte_segment  # noqa: E402

SIZE, CLASSES = 8, 10


@pytest.fixture(scope="module")
def server():
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast_protocol(), quiet=True, time_limit_s=120.0) as s:
        yield s


def kept_files(backend, monkeypatch):
    """The files `backend` uploads, kept as it converts them."""
    files = []
    convert = backend.to_file

    def keep(model, shape):
        files.append(convert(model, shape))
        return files[-1]

    monkeypatch.setattr(backend, "to_file", keep)
    return files


def test_remote_measures_a_network_in_litert_int8(server, monkeypatch):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("litert_torch")
    backend = Remote(server.url, TOKEN, runtime="litert", precision="int8", calibration=2, repeats=5)
    files = kept_files(backend, monkeypatch)
    result = backend.measure(SMALL, SIZE, CLASSES)
    assert result.backend == "remote" and result.median_ms > 0 and 1 <= result.n <= 5
    assert result.settings["runtime"] == "litert" and result.settings["precision"] == "int8"
    assert result.runtime["ai-edge-litert"] and result.runtime["client"]["litert-torch"]
    assert backend.deployment == ("litert", "int8")
    assert backend.describe()["runtime"]["ai-edge-litert"]
    (tflite,) = files
    check_tflite(tflite)  # a real int8 conversion passes the server's walk
    with pytest.raises(ModelRefused):
        check_tflite(tflite[: len(tflite) // 2])


def test_cli_measures_a_network_in_executorch_on_the_server(server, capsys, monkeypatch):
    pytest.importorskip("executorch")
    files = []
    import mnas.latency.remote as remote

    convert = remote.Remote.to_file
    monkeypatch.setattr(remote.Remote, "to_file", lambda self, m, s: files.append(convert(self, m, s)) or files[-1])
    code = main(["latency", "measure", str(SMALL), "--input-size", str(SIZE), "--num-classes", str(CLASSES),
                 "--backend", "remote", "--url", server.url, "--token", TOKEN, "--runtime", "executorch",
                 "--repeats", "5", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    data = json.loads(out)
    assert data["backend"] == "remote" and data["median_ms"] > 0
    assert data["settings"]["runtime"] == "executorch" and data["settings"]["precision"] == "fp32"
    assert data["runtime"]["executorch"] and "onnxruntime" not in data["runtime"]
    (pte,) = files
    check_pte(pte)
    # the real program with a segment pointing past the end, truncated: one line from the server, still serving
    backend = Remote(server.url, TOKEN, runtime="executorch")
    shape = (1, 3, SIZE, SIZE)
    for bad, match in [(patch_pte_segment(pte, -1, size=10**6), "past the end"), (pte[:-64], "past the end"),
                       (pte[:4] + b"ET99" + pte[8:], None)]:
        if match is None:  # a newer identifier passes the walk; the runtime refuses it (its text is not sent)
            with pytest.raises(ValueError, match="answered 400: ExecuTorch failed while loading"):
                backend.measure_file(bad, shape)
            continue
        with pytest.raises(ValueError, match=f"answered 400: not a valid .pte program: .*{match}"):
            backend.measure_file(bad, shape)
    assert backend.measure_file(pte, shape)["median_ms"] > 0
