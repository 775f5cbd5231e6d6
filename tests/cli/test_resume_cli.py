"""`mnas search --resume --storage F` alone resumes (issue 21): the study restores how it was made; a
contradicting flag is one line naming the setting, its stored and its given value; safe ones apply.
The advice printed after Ctrl-C, and the README's resume line, are run as written."""

from __future__ import annotations

import json
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mnas.cli import main

pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

README = Path(__file__).resolve().parents[2] / "README.md"
TINY = ["--epochs", "0.2", "--width-mult", "0.25", "--head", "32"]


def _npz(root: Path) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 112)
    x = (rng.integers(0, 60, (112, 8, 8, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    path = root / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _config(db):
    from mnas.study import SQLiteStorage

    with SQLiteStorage(db, read_only=True) as storage:
        return storage.get_meta("config"), {s: storage.count_trials(s) for s in ("complete", "failed", "running")}


# A study made with settings far from the defaults, from its own directory with a relative --data path.
MADE_WITH = ["--data", "tiny.npz", *TINY, "--strategy", "evolution", "--strategy-opt", "population_size=6", "--seed", "3",
             "--target", "1ms", "--reward", "hard", "--max-params", "1M", "--val-fraction", "0.25", "--trials", "1"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A one-trial study in runs/s.db under its own directory: (directory, study path)."""
    root = tmp_path_factory.mktemp("made")
    _npz(root)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        assert main(["search", *MADE_WITH, "--storage", "runs/s.db", "--quiet"]) == 0
    finally:
        mp.undo()
    return root, root / "runs" / "s.db"


def _copy(made, tmp_path) -> Path:
    """A copy of the made study (each test resumes its own)."""
    import sqlite3

    with sqlite3.connect(made[1]) as src, sqlite3.connect(tmp_path / "s.db") as dst:
        src.backup(dst)
    return tmp_path / "s.db"


def test_resume_with_the_storage_alone_restores_every_setting(made, tmp_path, capsys, monkeypatch):
    root, _ = made
    db = _copy(made, tmp_path)
    before, _ = _config(db)
    monkeypatch.chdir(tmp_path)  # not where the search started: its relative --data path still resolves
    code, out, err = _run(capsys, "search", "--resume", "--storage", str(db), "--trials", "2", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["trials"] == 2 and result["target_ms"] == 1.0 and result["constraints"] == {"max_params": 1e6}
    after, states = _config(db)
    for key in ("space", "seed", "reward", "evaluator", "strategy", "strategy_options", "constraints"):
        assert after[key] == before[key], key
    assert after["budget"]["trials"] == 2 and states["running"] == 0
    # the original flags typed again agree with the study (a default typed out too); safe ones apply
    code, out, err = _run(capsys, "search", "--resume", "--storage", str(db), "--data", str(root / "tiny.npz"), *TINY,
                          "--strategy", "evolution", "--strategy-opt", "population_size=6", "--seed", "3", "--target",
                          "1ms", "--reward", "hard", "--max-params", "1000000", "--strides", "1,1,1,1,1,1,2,1",
                          "--trials", "3", "--hours", "1", "--threads", "1", "--executor", "local", "--json")
    assert code == 0, err
    assert json.loads(out)["trials"] == 3 and _config(db)[0]["budget"] == {"trials": 3, "hours": 1, "max_repeats": 200}


@pytest.mark.parametrize("given, needle", [
    (["--epochs", "1"], "--epochs 1: {db} was made with --epochs 0.2;"),
    (["--width-mult", "0.5"], "--width-mult 0.5: {db} was made with --width-mult 0.25;"),
    (["--head", "64"], "--head 64: {db} was made with --head 32;"),
    (["--space", "layerwise"], "--space layerwise: {db} was made with --space mnasnet;"),
    (["--strategy", "random"], "--strategy random: {db} was made with --strategy evolution;"),
    (["--strategy-opt", "population_size=5"], "--strategy-opt population_size=5: {db} was made with --strategy-opt"
                                              " population_size=6;"),
    (["--seed", "0"], "--seed 0: {db} was made with --seed 3;"),
    (["--target", "2ms"], "--target 2ms: {db} was made with --target 1ms;"),
    (["--reward", "soft"], "--reward soft: {db} was made with --reward hard;"),
    (["--max-params", "2M"], "--max-params 2M: {db} was made with --max-params 1M;"),
    (["--val-fraction", "0.2"], "--val-fraction 0.2: {db} was made with --val-fraction 0.25;"),
    (["--data", "digits"], "--data digits: {db} was made with --data tiny.npz;"),
    (["--backend", "torch"], "--backend torch: {db} was made with --backend onnxruntime;"),
])
def test_a_contradicting_flag_is_one_line_naming_stored_and_given(made, tmp_path, capsys, given, needle):
    db = _copy(made, tmp_path)
    code, _, err = _run(capsys, "search", "--resume", "--storage", str(db), *given)
    assert code == 2
    assert needle.format(db=db) in err and "drop " in err and len(err.strip().splitlines()) == 1 and "{" not in err
    assert _config(db)[1]["complete"] == 1  # nothing ran



def test_an_inherited_score_on_a_proxy_study_names_the_missing_supernet(made, tmp_path, capsys):
    # before: '--inherited-score likelihood: S was made without --inherited-score; drop ...' (it was made without
    # --supernet, and an inherited score applies only to supernet searches)
    db = _copy(made, tmp_path)
    code, _, err = _run(capsys, "search", "--resume", "--storage", str(db), "--inherited-score", "likelihood")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"--inherited-score likelihood: {db} was made without --supernet" in err and "supernet search" in err
    assert "without --inherited-score" not in err and "drop --inherited-score" in err
    code, out, err = _run(capsys, "search", "--resume", "--storage", str(db), "--inherited-score", "accuracy", "--json")
    assert code == 0, err  # top-1, what proxy training scores anyway: agrees with the study


def test_a_stored_inherited_score_mnas_does_not_know_is_named(made, tmp_path, capsys):
    # before: '--inherited-score top5 scores the sub-networks of a --supernet checkpoint: add --supernet ...'
    from mnas.cli._resume import RECORD_KEY
    from mnas.study import SQLiteStorage

    db = _copy(made, tmp_path)
    with SQLiteStorage(db) as storage:  # a record edited by hand
        record = storage.get_meta(RECORD_KEY)
        record["args"]["inherited_score"] = "top5"
        storage.set_meta(RECORD_KEY, record)
    for given in ((), ("--inherited-score", "likelihood")):
        code, _, err = _run(capsys, "search", "--resume", "--storage", str(db), *given)
        assert code == 2 and len(err.strip().splitlines()) == 1
        assert f"{db} records --inherited-score 'top5'" in err and "expected accuracy or likelihood" in err, err
        assert "--supernet" not in err
    assert _config(db)[1]["complete"] == 1  # nothing ran

def test_an_older_study_without_its_command_line_resumes_from_its_config(made, tmp_path, capsys):
    from mnas.study import SQLiteStorage

    db = tmp_path / "old.db"
    code, _, err = _run(capsys, "search", *TINY, "--strategy", "evolution", "--seed", "2", "--trials", "1", "--storage",
                        str(db), "--quiet")
    assert code == 0, err
    with SQLiteStorage(db) as storage:
        storage.set_meta("cli", None)  # as mnas stored studies before it kept its command line
    code, out, err = _run(capsys, "search", "--resume", "--storage", str(db), "--trials", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["trials"] == 2
    code, _, err = _run(capsys, "search", "--resume", "--storage", str(db), "--epochs", "1")
    assert code == 2 and "--epochs 1: " in err and "--epochs 0.2" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, "search", "--resume", "--storage", str(db), "--width-mult", "0.35")
    assert code == 2 and "--width-mult 0.35" in err and "--width-mult 0.25" in err and "{" not in err


def test_the_readme_resume_line_works_as_written(tmp_path, capsys, monkeypatch):
    line = next(m for m in re.findall(r"^(mnas search [^#\n]*--resume[^#\n]*?)\s*(?:#|$)", README.read_text(), re.M))
    argv = shlex.split(line)
    storage = argv[argv.index("--storage") + 1]
    monkeypatch.chdir(tmp_path)
    # made with other flags than the defaults, stopped by its time budget after one trial
    code, _, err = _run(capsys, "search", *TINY, "--strategy", "random", "--trials", "3", "--hours", "0.0003",
                        "--storage", storage, "--quiet")
    assert code == 0, err
    done = _config(storage)[1]["complete"]
    assert done < 3
    code, out, err = _run(capsys, *argv[1:])
    assert code == 0, err
    assert _config(storage)[1]["complete"] > done and "study: " + storage in out


def test_the_advice_printed_after_ctrl_c_resumes(tmp_path):
    """Ctrl-C a real search, then run the exact command it printed: it finishes the study."""
    from mnas.study import SQLiteStorage, StudyNotReadyError

    db = tmp_path / "runs" / "c.db"

    def complete():
        try:
            with SQLiteStorage(db, read_only=True) as reader:
                return reader.count_trials("complete")
        except StudyNotReadyError:
            return 0

    cmd = [sys.executable, "-m", "mnas.cli", "search", "--epochs", "0.5", "--width-mult", "0.25", "--head", "32",
           "--strategy", "random", "--trials", "5", "--storage", "runs/c.db", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            if db.exists() and complete() >= 1:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-2000:]
    advice = re.search(r"Resume with: (.+)$", err, re.M).group(1)
    argv = shlex.split(advice)
    assert argv[:2] == ["mnas", "search"]
    before, _ = _config(db)
    resumed = subprocess.run([sys.executable, "-m", "mnas.cli", *argv[1:]], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    after, states = _config(db)
    assert states["running"] == 0 and states["complete"] + states["failed"] == 5
    assert after["evaluator"] == before["evaluator"] and after["space"] == before["space"]


@pytest.mark.parametrize("strategy", ["replay", "predictor", "tpe", "nsga2", "gp"])
def test_every_strategy_the_readme_names_runs_from_the_cli(tmp_path, capsys, strategy):
    if strategy in ("tpe", "nsga2", "gp"):
        pytest.importorskip("optuna")
    if strategy == "gp":
        pytest.importorskip("scipy")
    db = tmp_path / "s.db"
    code, out, err = _run(capsys, "search", *TINY, "--strategy", strategy, "--trials", "2", "--storage", str(db),
                          "--json")
    assert code == 0, err
    assert json.loads(out)["trials"] == 2 and _config(db)[0]["strategy"] == strategy


@pytest.mark.parametrize("strategy, module, extra", [("tpe", "optuna", "mnas[optuna]"), ("nsga2", "optuna", "mnas[optuna]"),
                                                     ("gp", "optuna", "mnas[optuna]"), ("gp", "scipy", "mnas[latency]")])
def test_a_missing_extra_is_one_line_saying_what_to_install(tmp_path, capsys, monkeypatch, strategy, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # import optuna -> ImportError, as when it is not installed
    code, _, err = _run(capsys, "search", "--strategy", strategy, "--trials", "1", "--storage", str(tmp_path / "s.db"))
    assert code == 2 and f"pip install '{extra}'" in err and f"--strategy {strategy}" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "s.db").exists()


def test_a_gradient_search_resumes_from_the_printed_advice(tmp_path, capsys, monkeypatch):
    import mnas.loop.gradient_study as gradient

    _npz(tmp_path)
    monkeypatch.chdir(tmp_path)

    class StopAfterOneEpoch(gradient.GradientProgress):
        def __call__(self, record):
            super().__call__(record)
            raise KeyboardInterrupt  # after epoch 1's checkpoint, as Ctrl-C would

    monkeypatch.setattr(gradient, "GradientProgress", StopAfterOneEpoch)
    code, _, err = _run(capsys, "search", "--data", "tiny.npz", "--space", "nb201", "--cell-channels", "4",
                        "--cells-per-stage", "1", "--strategy", "darts", "--strategy-opt", "train_images=32",
                        "--strategy-opt", "batch_size=8", "--strategy-opt", "epochs=2", "--backend", "torch",
                        "--storage", "runs/d.db")
    assert code == 130, err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(re.search(r"Resume with: (.+)$", err, re.M).group(1))
    assert argv[:2] == ["mnas", "search"] and "--strategy" not in argv
    code, out, err = _run(capsys, *argv[1:], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["states"]["complete"] == 1 and result["best"]["extra"]["epoch"] == 2
    code, _, err = _run(capsys, *argv[1:], "--strategy-opt", "epochs=3")
    assert code == 2 and "--strategy-opt epochs=3: runs/d.db was made with --strategy-opt epochs=2" in err


def test_an_fbnet_search_resumes_from_the_printed_advice_with_its_table(tmp_path, capsys, monkeypatch):
    import zlib

    import mnas.loop.gradient_study as gradient
    from mnas.latency import enumerate_units
    from mnas.latency.lut import FORMAT
    from mnas.space import MnasNetSpace

    _npz(tmp_path)
    space = MnasNetSpace(3, 8, width_mult=0.25, head_chs=16, strides=[1, 1, 1, 2, 1, 1, 1, 1])
    entries = {u.key: {"ms": 0.01 + (zlib.crc32(u.key.encode()) % 1000) / 1000} for u in enumerate_units(space)}
    (tmp_path / "lut.json").write_text(json.dumps({"format": FORMAT, "complete": True, "entries": entries,
                                                   "input_size": 8, "num_classes": 3}))
    monkeypatch.chdir(tmp_path)

    class StopAfterOneEpoch(gradient.GradientProgress):
        def __call__(self, record):
            super().__call__(record)
            raise KeyboardInterrupt

    monkeypatch.setattr(gradient, "GradientProgress", StopAfterOneEpoch)
    options = ["epochs=2", "max_rounds=1", "warmup_epochs=0", "batch_size=8", "train_images=24", "steps_per_epoch=1"]
    code, _, err = _run(capsys, "search", "--data", "tiny.npz", "--width-mult", "0.25", "--head", "16", "--strides",
                        "1,1,1,2,1,1,1,1", "--strategy", "fbnet", "--target", "3ms", "--lut", "lut.json", "--backend",
                        "torch", *[x for o in options for x in ("--strategy-opt", o)], "--storage", "f.db")
    assert code == 130, err
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    argv = shlex.split(re.search(r"Resume with: (.+)$", err, re.M).group(1))
    code, _, err = _run(capsys, *argv[1:], "--target", "4ms")
    assert code == 2 and "--target 4ms: f.db was made with --target 3ms;" in err and len(err.strip().splitlines()) == 1
    code, out, err = _run(capsys, *argv[1:], "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["states"]["complete"] == 1 and result["target_ms"] == 3.0 and result["best"]["extra"]["derived"]
