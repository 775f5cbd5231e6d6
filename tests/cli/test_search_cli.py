"""`mnas search` through the real command: a tiny run, resume, JSON, and bad input."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("sklearn")


def run(*args, rc=0):
    proc = subprocess.run([sys.executable, "-m", "mnas.cli", "search", *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == rc, proc.stderr[-2000:]
    return proc


def test_tiny_search_then_resume(tmp_path):
    db = tmp_path / "s.db"
    common = ("--storage", str(db), "--epochs", "0.2", "--width-mult", "0.25", "--head", "32", "--strategy", "evolution")
    first = json.loads(run("--trials", "2", "--json", *common).stdout)
    assert first["trials"] == 2 and first["states"]["complete"] == 2
    assert first["best"]["arch"].endswith("| s1_h32_d0.2_relu")
    assert first["target_ms"] > 0
    second = json.loads(run("--trials", "3", "--json", "--resume", *common).stdout)
    assert second["trials"] == 3 and second["target_ms"] == first["target_ms"]
    text = run("--trials", "3", "--quiet", *common).stdout
    assert "Pareto front" in text and "best under the target" in text or "no complete trial" in text


@pytest.mark.parametrize("args, needle", [
    (("--target", "fast"), "not a zoo model"),
    (("--target", "5xx"), "target '5xx'"),
    (("--data", "nothing/here"), "data not found"),
    (("--alpha", "-0.1"), "--alpha and --beta go together"),
    (("--strides", "1,x"), "--strides"),
    (("--strategy-opt", "oops"), "KEY=VALUE"),
    (("--url", "http://127.0.0.1:9"), "--url needs --token"),
])
def test_bad_input_exits_2(tmp_path, capsys, args, needle):
    # In-process through the same entry point as the console script (a subprocess each costs a torch import).
    from mnas.cli import main

    assert main(["search", "--storage", str(tmp_path / "x.db"), "--trials", "1", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


def test_ctrl_c_stops_cleanly_and_resume_requeues(tmp_path):
    import signal
    import time

    from mnas.study import SQLiteStorage

    db = tmp_path / "c.db"
    common = ("--storage", str(db), "--epochs", "0.5", "--width-mult", "0.25", "--head", "32", "--quiet")
    proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "search", "--trials", "100", *common],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if db.exists() and SQLiteStorage(db, read_only=True).count_trials("complete") >= 2:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Resume with: mnas search --resume" in err
    storage = SQLiteStorage(db, read_only=True)
    done = storage.count_trials("complete")
    assert done >= 2
    storage.close()
    resumed = json.loads(run("--trials", str(done + 1), "--json", "--resume", *common[:-1]).stdout)
    assert resumed["states"]["running"] == 0 and resumed["states"]["complete"] >= done + 1 - resumed["states"]["failed"]
