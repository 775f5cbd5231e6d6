"""`mnas search --url URL --token T` in the runtime and precision the device deploys to (issue 20):
`--backend onnxruntime|litert|executorch` names the runtime the device server measures in, `--precision
int8` quantizes there, each candidate converted here and uploaded (the code of `mnas latency measure
--backend remote --runtime R`); `--score int8` scores in the same runtime. The study records the runtime
and precision as it does for local backends and --resume checks them. Bad combinations, a server that
does not measure the runtime and a refused token are one line (exit 2), before any data is loaded."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from _cli_helpers import one_line, run_cli, tiny_npz

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOKEN = "search-remote-token-123"
TINY = ["--epochs", "0.2", "--width-mult", "0.25", "--head", "32", "--strides", "1,1,1,2,1,1,1,1",
        "--strategy", "random", "--target", "1ms", "--trials", "1"]
HAS_LITERT = all(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "litert_torch"))
needs_litert = pytest.mark.skipif(not HAS_LITERT, reason="needs ai-edge-litert and litert-torch (pip install"
                                  " 'mnas[litert]')")


def _config(db):
    from mnas.study import SQLiteStorage

    with SQLiteStorage(db, read_only=True) as storage:
        return storage.get_meta("config"), storage.get_meta("cli")


@pytest.fixture(scope="module")
def server():
    from mnas.latency import Protocol
    from mnas.latency.server import DeviceServer

    fast = Protocol(warmup=2, warmup_s=0.0, min_repeats=5, max_repeats=10, max_time_s=0.5, min_sample_ms=0.2)
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast, quiet=True) as s:
        yield s


@pytest.fixture(scope="module")
def onnx_only():
    from mnas.latency import Protocol
    from mnas.latency.server import DeviceServer

    fast = Protocol(warmup=2, warmup_s=0.0, min_repeats=5, max_repeats=10, max_time_s=0.5, min_sample_ms=0.2)
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast, quiet=True, runtimes="onnxruntime") as s:
        yield s


# -- one line, before any data is loaded or a study file made ------------------------------------------
@pytest.mark.parametrize("given, words", [
    (["--backend", "torch"], "--backend torch: a device server (--url) measures in onnxruntime, litert, executorch;"
                             " give one of them, or drop --url to measure torch on this machine"),
    (["--backend", "torch", "--precision", "int8"], "--backend torch: a device server (--url) measures in"),
    (["--lut", "t.json"], "give one latency source: --url (device server) or --lut (lookup table), not both"),
    (["--url", "ftp://device:21"], "expected http://HOST:PORT"),
])
def test_combinations_that_cannot_work_are_one_line(tmp_path, capsys, given, words):
    argv = ["search", "--url", "http://127.0.0.1:9", "--token", "t", *given, "--storage", str(tmp_path / "s.db")]
    code, _, err = run_cli(capsys, *argv)
    one_line(code, err, words)
    assert not (tmp_path / "s.db").exists()


def test_a_missing_converter_is_one_line_saying_what_to_install(tmp_path, capsys, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    code, _, err = run_cli(capsys, "search", "--url", "http://127.0.0.1:9", "--token", "t", "--backend", "executorch",
                        "--storage", str(tmp_path / "s.db"))
    one_line(code, err, "--backend executorch needs the optional package 'executorch': pip install 'mnas[executorch]'")


def test_the_server_is_asked_before_the_data_is_loaded(tmp_path, capsys, server, onnx_only, monkeypatch):
    import mnas.train

    monkeypatch.setattr(mnas.train, "load", lambda *a, **k: pytest.fail("the data was loaded before the refusal"))
    db = str(tmp_path / "s.db")
    code, _, err = run_cli(capsys, "search", "--url", server.url, "--token", "wrong-token-456", "--storage", db)
    one_line(code, err, f"device server {server.url} refused the token (401): check --token")
    if HAS_LITERT:  # the converter is here, the server lacks the runtime
        code, _, err = run_cli(capsys, "search", "--url", onnx_only.url, "--token", TOKEN, "--backend", "litert",
                            "--storage", db)
        one_line(code, err, f"device server {onnx_only.url} does not measure litert (it measures onnxruntime)")
        # regression: it named 'mnas latency measure's --runtime, which mnas search does not have
        assert err.rstrip().endswith("or ask for --backend onnxruntime"), err
    assert not Path(db).exists()


# -- a search measured on the server in ONNX Runtime int8 (QDQ, converted here in a second) ----------------
def test_an_int8_search_on_a_device_server_records_and_resumes_its_runtime(tmp_path, capsys, server, monkeypatch):
    from mnas.study import Study

    monkeypatch.chdir(tmp_path)
    tiny_npz(tmp_path)
    code, _, err = run_cli(capsys, "search", "--data", "tiny.npz", *TINY, "--url", server.url, "--token", TOKEN,
                        "--precision", "int8", "--score", "int8", "--calibration", "16", "--storage", "s.db", "--quiet")
    assert code == 0, err
    config, record = _config(tmp_path / "s.db")
    assert {k: record["args"][k] for k in ("backend", "precision", "score", "url")} == {
        "backend": "onnxruntime", "precision": "int8", "score": "int8", "url": server.url}
    key = json.loads(config["evaluator"]["latency"])
    assert (key["backend"], key["runtime"], key["precision"]) == ("remote", "onnxruntime", "int8")
    with Study("s.db") as study:
        (t,) = study.complete_trials
    assert t.extra["int8_runtime"] == "onnxruntime" and t.accuracy == t.extra["accuracy_int8"] and t.latency_ms > 0
    for given, needle in ((["--precision", "fp32"], "--precision fp32: s.db was made with --precision int8;"),
                          (["--backend", "litert"], "--backend litert: s.db was made with --backend onnxruntime;")):
        code, _, err = run_cli(capsys, "search", "--resume", "--storage", "s.db", "--token", TOKEN, *given)
        one_line(code, err, needle)
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", "s.db", "--token", TOKEN, "--trials", "2",
                        "--quiet")
    assert code == 0, err
    with Study("s.db") as study:
        assert len(study.complete_trials) == 2
    assert _config(tmp_path / "s.db")[0]["evaluator"] == config["evaluator"]


# -- LiteRT on the server: the candidate converted to .tflite here, timed there --------------------------
@pytest.mark.slow  # two LiteRT conversions (the latency's, the int8 accuracy's): 20-150 s on a busy 2-core machine
@pytest.mark.timeout(900)
@needs_litert
def test_a_litert_search_on_a_device_server_measures_and_scores_in_litert(tmp_path, capsys, server):
    from mnas.study import Study

    db = tmp_path / "s.db"
    code, _, err = run_cli(capsys, "search", "--data", str(tiny_npz(tmp_path)), *TINY, "--url", server.url, "--token", TOKEN,
                        "--backend", "litert", "--precision", "int8", "--score", "int8", "--calibration", "16",
                        "--storage", str(db), "--quiet")
    assert code == 0, err
    config, record = _config(db)
    assert (record["args"]["backend"], record["args"]["precision"]) == ("litert", "int8")
    key = json.loads(config["evaluator"]["latency"])
    assert (key["backend"], key["runtime"], key["precision"]) == ("remote", "litert", "int8")
    assert config["evaluator"]["score"] == {"runtime": "litert", "calibration": 16, "score": "int8"}
    with Study(str(db)) as study:
        (t,) = study.complete_trials
    assert t.extra["int8_runtime"] == "litert" and t.accuracy == t.extra["accuracy_int8"] and t.latency_ms > 0
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--token", TOKEN, "--backend",
                        "executorch")
    one_line(code, err, f"--backend executorch: {db} was made with --backend litert;")
