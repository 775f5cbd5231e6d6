"""Issue 21 item 3: bad input to `arch show`, `latency` and `device serve` is exit 2 with one line, before
any work. Inputs that would hang or abort a mnas without the checks run in a subprocess with a timeout."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from mnas.cli import main

SMALL = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.2_relu"
TOKEN = "hostile-test-token-1"


def one_line_exit_2(capsys, *argv: str) -> str:
    rc = main(list(argv))
    err = capsys.readouterr().err
    assert rc == 2 and "internal error" not in err and len(err.strip().splitlines()) == 1, (rc, err)
    return err


def refused_at_once(*argv: str, timeout: float = 90) -> str:
    """Run the real command; it must exit 2 with one line within `timeout` (it would hang or abort otherwise)."""
    try:
        proc = subprocess.run([sys.executable, "-m", "mnas.cli", *argv], capture_output=True, text=True,
                              timeout=timeout, env={**os.environ, "MNAS_DEVICE_TOKEN": ""})
    except subprocess.TimeoutExpired:
        pytest.fail(f"mnas {' '.join(argv)[:80]} did not exit within {timeout} s")
    err = proc.stderr.strip()
    assert proc.returncode == 2 and len(err.splitlines()) == 1 and "internal error" not in err, (proc.returncode, err)
    return err


# -- architecture files and strings ------------------------------------------------------------------
@pytest.mark.parametrize("content, match", [
    ("[" * 5000 + "]" * 5000, "nested too deeply"),
    ('{"a":' * 5000 + "1" + "}" * 5000, "nested too deeply"),
    ("null", "got NoneType"),
    ("3", "got int"),
    ('{"arch": null}', "'arch' must be the architecture's text"),
])
@pytest.mark.parametrize("command", [("arch", "show"), ("latency", "measure")])
def test_bad_architecture_json_is_exit_2(tmp_path, capsys, content, match, command):
    path = tmp_path / "arch.json"
    path.write_text(content)
    assert match in one_line_exit_2(capsys, *command, str(path))


def test_arch_show_refuses_a_stride_3_block(capsys):
    err = one_line_exit_2(capsys, "arch", "show", "r1_k3_s33_e1_i32_o16", "--input-size", "32")
    assert "a block's stride is 1 or 2" in err


def test_arch_show_refuses_what_latency_measure_refuses_as_too_large(capsys):
    huge = "r1_k3_s11_e64_i100000_o100000"
    err = one_line_exit_2(capsys, "arch", "show", huge)
    assert "parameters" in err and "above the 2,000,000,000 this mnas builds" in err
    pytest.importorskip("onnxruntime")
    assert "above the 2,000,000,000" in one_line_exit_2(capsys, "latency", "measure", huge)


def test_arch_show_json_still_works_for_a_normal_arch(capsys):
    assert main(["arch", "show", SMALL, "--json", "--input-size", "16"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] > 0


# -- latency -------------------------------------------------------------------------------------------
def test_measure_refuses_a_shape_that_does_not_fit_in_memory(capsys, monkeypatch):
    """Checked against this machine's memory before anything is built (here a machine of 1 MiB)."""
    pytest.importorskip("onnxruntime")
    import mnas.cli.latency_cmd as latency_cmd

    monkeypatch.setattr(latency_cmd, "physical_memory", lambda: 2**20, raising=False)
    err = one_line_exit_2(capsys, "latency", "measure", SMALL, "--input-size", "64", "--batch-size", "8")
    assert "--input-size 64 --batch-size 8: measuring needs about" in err and "use a smaller input size or batch" in err


def test_measure_refuses_a_huge_input_size_on_this_machine(capsys):
    pytest.importorskip("onnxruntime")
    import mnas.cli.latency_cmd as latency_cmd

    if not getattr(latency_cmd, "physical_memory", lambda: None)():
        pytest.skip("this OS does not report its memory")
    for extra in (["--input-size", "100000"], ["--input-size", "32", "--batch-size", "10000000"]):
        assert "measuring needs about" in one_line_exit_2(capsys, "latency", "measure", "mnasnet_a1", *extra)


def test_threads_beyond_the_cpu_count_are_refused():
    pytest.importorskip("onnxruntime")
    err = refused_at_once("latency", "measure", SMALL, "--input-size", "16", "--threads", "100000")
    assert "--threads" in err and f"machine with {os.cpu_count()} CPUs" in err


def test_build_lut_refuses_a_fifo_and_a_folder(tmp_path):
    pytest.importorskip("onnxruntime")
    fifo = tmp_path / "lut.json"
    os.mkfifo(fifo)
    assert "is a FIFO, not a regular file" in refused_at_once("latency", "build-lut", "--out", str(fifo))
    assert "is a folder" in refused_at_once("latency", "build-lut", "--out", str(tmp_path))


def test_build_lut_refuses_a_device_node(tmp_path):
    pytest.importorskip("onnxruntime")
    node = tmp_path / "zero.json"
    try:
        os.mknod(node, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # a copy of /dev/zero: reading it never ends
    except (PermissionError, OSError):
        pytest.skip("cannot make a device node here")
    assert "is a device, not a regular file" in refused_at_once("latency", "build-lut", "--out", str(node))


# -- device serve: its own options, checked before it starts ------------------------------------------
@pytest.mark.parametrize("extra, match", [
    (["--token", " " * 12], "not all blank"),
    (["--token", "\t\t\t\t\t\t\t\t"], "not all blank"),
    (["--token", TOKEN + " "], "no space at either end"),
    (["--token", "tökén-ünïcode"], "printable ASCII"),
    (["--token", TOKEN, "--time-limit-s", "1e308"], "--time-limit-s: 1e308: expected at most 86,400"),
    (["--token", TOKEN, "--threads", "100000"], f"machine with {os.cpu_count()} CPUs"),
    (["--token", TOKEN, "--max-connections", "100000"], "expected at most 1,024"),
    (["--token", TOKEN, "--max-body-mb", "1e308"], "expected at most 2,048"),
    (["--token", TOKEN, "--max-memory-mb", "1e308"], "expected at most 1,048,576"),
])
def test_device_serve_checks_its_options_at_start(extra, match):
    pytest.importorskip("onnxruntime")
    err = refused_at_once("device", "serve", "--host", "127.0.0.1", "--port", "0", "--quiet", *extra, timeout=60)
    assert match in err


@pytest.mark.parametrize("target", ["", "   "])
def test_an_empty_target_is_refused_not_taken_for_the_default(tmp_path, target):
    err = refused_at_once("search", "--target", target, "--trials", "1", "--storage", str(tmp_path / "s.db"))
    assert "empty target" in err
    assert not (tmp_path / "s.db").exists()
