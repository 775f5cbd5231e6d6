"""`mnas latency ...` and `mnas device ...`: JSON documents, text, and exit 2 with one line for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mnas.cli import main

pytest.importorskip("onnxruntime")

SMALL = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.2_relu"
TOKEN = "cli-test-token-123"


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_usage_error(capsys, *argv, match):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mnas: error:") and match in lines[0], err


@pytest.fixture(scope="module")
def server():
    from mnas.latency import Protocol
    from mnas.latency.server import DeviceServer

    fast = Protocol(warmup=2, warmup_s=0.0, min_repeats=5, max_repeats=10, min_sample_ms=0.2)
    with DeviceServer(TOKEN, "127.0.0.1", 0, protocol=fast, quiet=True) as s:
        yield s


def test_measure_json(capsys):
    code, out, _ = run(capsys, "latency", "measure", SMALL, "--input-size", "16", "--repeats", "5", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["backend"] == "onnxruntime" and data["input_size"] == 16
    assert data["median_ms"] > 0 and data["cv"] >= 0 and data["n"] <= 5
    assert data["device"]["cpu"] and data["runtime"]["onnxruntime"]


def test_measure_text_and_torch_backend(capsys):
    code, out, _ = run(capsys, "latency", "measure", SMALL, "--input-size", "16", "--repeats", "5",
                       "--backend", "torch")
    assert code == 0 and " ms median " in out and "(IQR " in out and "CV " in out and "backend torch" in out


def test_measure_on_a_device_server(capsys, server):
    code, out, _ = run(capsys, "latency", "measure", SMALL, "--input-size", "16", "--backend", "remote",
                       "--url", server.url, "--token", TOKEN, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["backend"] == "remote" and data["median_ms"] > 0 and data["settings"]["url"] == server.url


def test_device_info(capsys, server):
    code, out, _ = run(capsys, "device", "info", "--url", server.url, "--token", TOKEN, "--json")
    assert code == 0 and json.loads(out)["device"]["cpu"]


@pytest.mark.parametrize("argv, match", [
    (["latency", "measure", "r1_k4_s11_e1_i8_o8"], "bad ARCH"),
    (["latency", "measure", "mnasnet_a1", "--backend", "remote"], "needs --url"),
    (["latency", "measure", "mnasnet_a1", "--backend", "lut"], "needs --lut"),
    (["latency", "measure", "mnasnet_a1", "--lut", "/nonexistent/t.json"], "not found"),
    (["latency", "measure", "mnasnet_a1", "--backend", "torch", "--url", "http://127.0.0.1:1"],
     "--url is for --backend remote"),
    (["latency", "measure", "mnasnet_a1", "--url", "http://127.0.0.1:1"], "needs the server's token"),
    (["latency", "measure", "mnasnet_a1", "--backend", "onnxruntime", "--device", "cuda"], "--device cuda"),
    (["latency", "measure", "mnasnet_a1", "--backend", "remote", "--url", "nota-url", "--token", TOKEN],
     "expected http://HOST:PORT"),
    (["latency", "validate", "--lut", "/nonexistent/t.json"], "not found"),
    (["device", "serve", "--port", "0", "--token", "short"], "at least 8 characters"),
    (["device", "serve", "--port", "70000", "--token", TOKEN], "--port 70000"),
])
def test_bad_input_exits_2_with_one_line(capsys, monkeypatch, argv, match):
    monkeypatch.delenv("MNAS_DEVICE_TOKEN", raising=False)
    assert_usage_error(capsys, *argv, match=match)


def test_missing_token_and_unreachable_server(capsys, monkeypatch, server):
    monkeypatch.delenv("MNAS_DEVICE_TOKEN", raising=False)
    assert_usage_error(capsys, "device", "serve", "--port", "0", match="needs a token")
    assert_usage_error(capsys, "latency", "measure", SMALL, "--backend", "remote", "--url", server.url,
                       "--token", "wrong-token-xyz", "--input-size", "16", match="refused the token")
    url = server.url.rsplit(":", 1)[0] + ":1"  # nothing listens on port 1
    assert_usage_error(capsys, "device", "info", "--url", url, "--token", TOKEN, match="did not answer")


def test_bad_option_values_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["latency", "measure", "mnasnet_a1", "--threads", "0"])
    assert exc.value.code == 2


def test_build_lut_validate_and_measure_with_the_table(capsys, monkeypatch, tmp_path):
    import mnas.space

    real = mnas.space.MnasNetSpace

    def micro(num_classes, input_size, width_mult=1.0, strides=None, **_):  # the CLI's space, cut to 26 signatures
        return real(num_classes, input_size, width_mult=width_mult, strides=strides, ops=("ds", "mbconv3"),
                    kernel_sizes=(3,), se_ratios=(0.0,), skips=("none",), filter_mults=(1.0,), layer_deltas=(0,),
                    head_chs=64)

    monkeypatch.setattr(mnas.space, "MnasNetSpace", micro)
    out = tmp_path / "lut.json"
    code, stdout, _ = run(capsys, "latency", "build-lut", "--out", str(out), "--input-size", "16", "--num-classes",
                          "10", "--in-chans", "3", "--width-mult", "1", "--references", "none", "--repeats", "5",
                          "--fit-archs", "3", "--json")
    assert code == 0, stdout
    summary = json.loads(stdout)
    assert summary["entries"] == 26 and out.is_file()
    code, stdout, _ = run(capsys, "latency", "validate", "--lut", str(out), "--n", "4", "--repeats", "5", "--json")
    assert code == 0
    report = json.loads(stdout)
    assert report["n"] == 4 and 0 <= report["within_10pct"] <= 1 and report["mape"] >= 0
    assert "spearman" in report
    arch = report["rows"][0]["arch"]
    code, stdout, _ = run(capsys, "latency", "measure", arch, "--lut", str(out), "--json")  # the table's sizes
    assert code == 0
    predicted = json.loads(stdout)
    assert predicted["backend"] == "lut" and predicted["input_size"] == 16 and predicted["num_classes"] == 10
    assert predicted["median_ms"] == pytest.approx(report["rows"][0]["predicted_ms"])
    assert_usage_error(capsys, "latency", "measure", arch, "--lut", str(out), "--input-size", "32",
                       match="built for input size 16, not 32")
    assert_usage_error(capsys, "latency", "measure", "mnasnet_a1", "--lut", str(out), "--input-size", "16",
                       "--num-classes", "10", match="not in the lookup table")


def test_the_real_command_end_to_end():
    proc = subprocess.run([sys.executable, "-m", "mnas.cli", "latency", "measure", "mnasnet_small", "--input-size",
                           "32", "--repeats", "5", "--json"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["median_ms"] > 0


@pytest.mark.parametrize("name, match", [
    ("study.db", "is a study database (SQLite), not a lookup table"),
    ("new.db", "is named as a study database: a lookup table is a JSON file, e.g. new.json"),
    ("notes.json", "exists and is not a lookup table"),
    ("table.txt", "a lookup table is a JSON file: give a name ending in .json, e.g. {tmp}/table.json"),  # its folder kept
])
def test_build_lut_refuses_an_out_that_is_no_table_before_the_data_and_the_backend(capsys, monkeypatch, tmp_path,
                                                                                   name, match):
    """`--out study.db` (a search's study) was refused only after the data was loaded and the backend set up."""
    import sqlite3

    import mnas.cli.latency_cmd as latency_cmd
    import mnas.train

    def costly(*args, **kwargs):
        raise AssertionError("set up before --out was checked")

    monkeypatch.setattr(mnas.train, "load", costly)
    monkeypatch.setattr(latency_cmd, "make_backend", costly)
    if name == "study.db":
        with sqlite3.connect(tmp_path / name) as db:
            db.execute("create table trials (number integer)")
    elif name == "notes.json":
        (tmp_path / name).write_text('{"mine": 1}')
    before = (tmp_path / name).read_bytes() if (tmp_path / name).exists() else None
    assert_usage_error(capsys, "latency", "build-lut", "--out", str(tmp_path / name), match=match.format(tmp=tmp_path))
    assert ((tmp_path / name).read_bytes() if (tmp_path / name).exists() else None) == before
