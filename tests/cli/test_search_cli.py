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


def test_the_resolved_target_is_said_before_the_search(tmp_path):
    # regression: a zoo target's milliseconds were printed only in the report after the search
    proc = run("--trials", "1", "--epochs", "0.2", "--width-mult", "0.25", "--head", "32", "--reward", "hard",
               "--storage", str(tmp_path / "s.db"))
    line = next(x for x in proc.stderr.splitlines() if x.startswith("target: "))
    assert line.startswith("target: mobilenetv2_x0.25 = ") and " ms (OnnxRuntime" in line and "reward hard" in line
    assert proc.stderr.index(line) < proc.stderr.index("trial 0 complete")


def test_a_study_made_with_retrain_reference_resumes_with_the_printed_command(tmp_path):
    # regression (review): --retrain-reference was restored on resume but --target was not, so the
    # 'mnas search --resume --storage S' mnas prints exited 2 asking for a zoo target
    db = str(tmp_path / "s.db")
    common = ("--epochs", "0.2", "--width-mult", "0.25", "--head", "32", "--storage", db)
    first = run("--trials", "1", "--target", "mnasnet_small", "--reward", "hard", "--retrain-top", "1",
                "--retrain-epochs", "1", "--retrain-reference", *common)
    assert "reference mnasnet_small (1 epochs from scratch" in first.stdout
    again = run("--resume", "--storage", db, "--trials", "2")
    assert "reference mnasnet_small" in again.stdout and "training finished earlier" in again.stderr


@pytest.mark.parametrize("args, needle", [
    (("--target", "fast"), "unknown model 'fast'"),
    (("--target", "5xx"), "must be a positive latency such as 3ms"),
    (("--target", "mnasnet_b1_x0"), "argument --target: 'mnasnet_b1_x0': multiplier 0.0 out of range"),
    (("--data", "nothing/here"), "data not found"),
    (("--alpha", "-0.1"), "--alpha and --beta go together"),
    (("--strides", "1,x"), "--strides"),
    (("--strategy-opt", "oops"), "KEY=VALUE"),
    (("--url", "http://127.0.0.1:9"), "--url needs --token"),
])
def test_bad_input_exits_2(tmp_path, capsys, args, needle):
    # In-process through the same entry point as the console script (a subprocess each costs a torch import).
    from mnas.cli import main

    try:
        code = main(["search", "--storage", str(tmp_path / "x.db"), "--trials", "1", *args])
    except SystemExit as exc:  # refused by the option's own type (--target): argparse exits
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("target, needle", [
    ("mobilenetv3", "unknown model 'mobilenetv3': did you mean 'mobilenetv2'?"),
    ("0.8x mnasnet_bb", "unknown model 'mnasnet_bb': did you mean '0.8x mnasnet_b1'?"),
    ("resnet50", "unknown model 'resnet50': give a latency such as 20ms or a zoo model: mnasnet_a1,"),
])
def test_a_misspelt_zoo_target_is_one_line_with_one_hint(tmp_path, capsys, target, needle):
    # regression: "'mobilenetv3': unknown model 'mobilenetv3', did you mean 'mobilenetv2'? (see 'mnas models')
    # (see 'mnas search --help')": the name twice and two parenthetical hints on one line
    from mnas.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["search", "--trials", "1", "--storage", str(tmp_path / "x.db"), "--target", target])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert needle in err and err.count("(") == 1 and err.count(repr(target.split()[-1])) == 1, err
    assert not (tmp_path / "x.db").exists()


def test_ctrl_c_stops_cleanly_and_resume_requeues(tmp_path):
    import signal
    import time

    from mnas.study import SQLiteStorage, StudyNotReadyError

    def complete(path):
        try:
            reader = SQLiteStorage(path, read_only=True)
        except StudyNotReadyError:  # polled between the search creating the file and its tables
            return 0
        try:
            return reader.count_trials("complete")
        finally:
            reader.close()

    db = tmp_path / "c.db"
    common = ("--storage", str(db), "--epochs", "0.5", "--width-mult", "0.25", "--head", "32", "--quiet")
    # Python leaves SIGINT ignored when it starts with it ignored, as it does under a launcher that runs
    # the suite in the background of a non-interactive shell (POSIX: `cmd &` ignores SIGINT there):
    # the child gets the default disposition, so Ctrl-C reaches it as it would from a terminal.
    proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "search", "--trials", "100", *common],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if db.exists() and complete(db) >= 2:
                break
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # never leave a search running behind a failed test
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130 and "Resume with: mnas search --resume" in err
    storage = SQLiteStorage(db, read_only=True)
    done = storage.count_trials("complete")
    assert done >= 2
    storage.close()
    resumed = json.loads(run("--trials", str(done + 1), "--json", "--resume", *common[:-1]).stdout)
    assert resumed["states"]["running"] == 0 and resumed["states"]["complete"] >= done + 1 - resumed["states"]["failed"]


# -- issue 13: fast checks of the search command's pieces (no search run) ---------------------------
def _study_with(outcomes):
    from mnas.loop import create_study
    from mnas.objectives import Reward
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(10, 224)
    study = create_study(None, space=space, reward=Reward.soft(20))
    for i, ok in enumerate(outcomes):
        n = study.storage.create_trial([0] * len(space.decisions), f"r1_k3_s11_e1_i32_o16 | s{i}_h8_d0.0_relu")
        if ok:
            study.storage.complete_trial(n, 0.8, 10.0, 0.8)
        else:
            study.storage.fail_trial(n, "simulated out of memory")
    return study


def test_help_explains_seed_lr_strategy_executor(capsys):
    from mnas.cli import main

    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("seeds the strategy", "learning rate", "regularized evolution", "a pool of --workers"):
        assert needle in out


def test_zero_complete_trials_exit_non_zero_and_states_are_words(capsys):
    from mnas.cli.search_cmd import _report

    assert _report(_study_with([False, False]), "x.db", 1.0, False) == 1
    captured = capsys.readouterr()
    assert "no trial completed (2 failed)" in captured.err and "simulated out of memory" in captured.err
    assert "{" not in captured.out and "(2 failed)" in captured.out
    assert _report(_study_with([True, False]), "x.db", 1.0, False) == 0
    assert "(1 complete, 1 failed)" in capsys.readouterr().out


def test_the_best_under_the_target_says_why_it_is_not_in_the_printed_front(capsys):
    # regression: the front is the retrained trials with the most seeds, Study.best(target) falls back to fewer
    # seeds or to search scores when none of those is under the target, and the line named a trial the table
    # above it did not show, without a word
    from mnas.cli._report import report_study
    from mnas.loop import create_study
    from mnas.objectives import Reward
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(10, 224)

    def study_of(*trials):  # (accuracy, latency_ms, extra); the target is 1 ms
        study = create_study(None, space=space, reward=Reward.soft(1.0))
        for i, (acc, lat, extra) in enumerate(trials):
            n = study.storage.create_trial([0] * len(space.decisions), f"r1_k3_s11_e1_i32_o16 | s{i + 1}_h8_d0.0_relu",
                                           extra=extra)
            study.storage.complete_trial(n, acc, lat, acc)
        return study

    def lines(study):
        assert report_study(study, "x.db", 1.0, False) == 0
        out = capsys.readouterr().out
        front = out.split("Pareto front", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
        return [row.split()[0] for row in front], next(x for x in out.splitlines() if x.startswith("best under"))

    retrained = {"accuracy_source": "standalone", "retrained_from": 1}
    # the only retrained trial is over the target: the best under it is a search score, off the retrained front
    front, line = lines(study_of((0.60, 0.8, {}), (0.70, 1.5, {}), (0.65, 1.5, retrained)))
    assert front == ["2"] and line.startswith("best under the target: trial 0, 60.0% at 0.800 ms")
    assert line.endswith("(not retrained: the front above holds the retrained trials, none under the target)")
    # three seeds over the target, one seed under it: the one-seed trial is the pick, the front the three-seed one
    front, line = lines(study_of((0.60, 0.8, {}), (0.70, 1.5, {}), (0.65, 1.5, {**retrained, "seeds": [0, 1, 2]}),
                                 (0.62, 0.8, {**retrained, "retrained_from": 0})))
    assert front == ["2"] and line.startswith("best under the target: trial 3, 62.0% at 0.800 ms")
    assert line.endswith("(retrained with 1 seed: the front above holds the trials retrained with 3 seeds, none under"
                         " the target)")
    # the usual case, the pick in the front: the line is as it was
    front, line = lines(study_of((0.60, 0.8, {}), (0.70, 1.5, {}), (0.62, 0.8, {**retrained, "retrained_from": 0})))
    assert front == ["2"] and line == "best under the target: trial 2, 62.0% at 0.800 ms"


def test_an_empty_file_is_not_a_study_to_resume(tmp_path):
    from mnas.cli.search_cmd import _holds_study

    empty = tmp_path / "e.db"
    empty.write_bytes(b"")
    assert not _holds_study(str(empty)) and not _holds_study(str(tmp_path / "none.db"))


def test_live_table_keeps_its_columns_and_caption_on_a_narrow_terminal():
    import io

    from rich.console import Console

    from mnas.cli.search_cmd import render_table
    from mnas.loop import Budget, SearchEvent
    from mnas.objectives import Reward

    study = _study_with([True])
    event = SearchEvent("complete", study, study.trials[0], 5.0, Budget(trials=30), Reward.soft(20))
    console = Console(file=io.StringIO(), width=100)
    console.print(render_table(event, "runs/x.db", 100))
    text = console.file.getvalue()
    assert "trial" in text and "reward" in text and "trials 1/30" in text


def test_live_table_names_a_likelihood_score():
    # regression (review): the live display put exp(-cross-entropy) in an "accuracy" column as a percentage
    import io

    from rich.console import Console

    from mnas.cli.search_cmd import render_table
    from mnas.loop import Budget, SearchEvent, create_study
    from mnas.objectives import Reward
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(10, 224)
    study = create_study(None, space=space, reward=Reward.soft(20))
    n = study.storage.create_trial([0] * len(space.decisions), "r1_k3_s11_e1_i32_o16 | s0_h8_d0.0_relu")
    study.storage.complete_trial(n, 0.3809, 10.0, 0.3809, extra={"score_metric": "likelihood", "inherited_accuracy": 0.474})
    event = SearchEvent("complete", study, study.trials[0], 5.0, Budget(trials=30), Reward.soft(20))
    console = Console(file=io.StringIO(), width=120)
    console.print(render_table(event, "runs/x.db", 120))
    text = console.file.getvalue()
    assert "likelihood" in text and "0.3809" in text and "38.1%" not in text
    # the log lines: a likelihood-scored trial without its top-1 (a study edited outside mnas) invents none
    from mnas.loop import ProgressPrinter

    n = study.storage.create_trial([0] * len(space.decisions), "r1_k3_s11_e1_i32_o16 | s1_h8_d0.0_relu")
    study.storage.complete_trial(n, 0.3, 9.0, 0.3, extra={"score_metric": "likelihood"})
    out = io.StringIO()
    ProgressPrinter(out)(SearchEvent("complete", study, study.trials[1], 6.0, Budget(trials=30), Reward.soft(20)))
    assert "likelihood 0.3000" in out.getvalue() and "top-1" not in out.getvalue()


def test_progress_lines_for_logs():
    import io

    from mnas.loop import Budget, ProgressPrinter, SearchEvent
    from mnas.objectives import Reward

    study = _study_with([True, False])
    out = io.StringIO()
    printer = ProgressPrinter(out)
    for t in study.trials:
        printer(SearchEvent("complete" if t.reward else "failed", study, t, 60.0, Budget(trials=5), Reward.soft(20)))
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[  1/5] trial 0 complete") or "trial 0 complete" in lines[0]
    assert "trial 1 failed: simulated out of memory" in lines[1]


def test_search_takes_option_lists_and_refuses_them_beside_a_supernet(tmp_path, capsys):
    import argparse

    from mnas.cli import main
    from mnas.cli._common import space_from_args

    args = argparse.Namespace(space=None, input_size=None, width_mult=0.25, head=32, strides=None, ops="ds,mbconv6",
                              kernel_sizes="5", se_ratios=None, skips="identity,none", filter_mults="1", layer_deltas=None)
    space = space_from_args(args, 10, 32)
    assert space.options["op"] == ("ds", "mbconv6") and space.options["kernel"] == (5,)
    assert space.options["skip"] == ("identity", "none") and space.options["filters"] == (1.0,)
    (tmp_path / "sn.pt").write_bytes(b"x")
    assert main(["search", "--supernet", str(tmp_path / "sn.pt"), "--ops", "mbconv6", "--storage",
                 str(tmp_path / "s.db"), "--trials", "1"]) == 2
    assert "drop --ops" in capsys.readouterr().err
    assert main(["search", "--space", "nb201", "--skips", "identity", "--target", "5ms", "--storage",
                 str(tmp_path / "t.db"), "--trials", "1"]) == 2
    assert "--skips" in capsys.readouterr().err


def test_url_takes_the_token_from_the_environment(tmp_path):
    # regression (review): mnas search required --token where 'mnas latency measure' takes MNAS_DEVICE_TOKEN
    import os

    proc = subprocess.run([sys.executable, "-m", "mnas.cli", "search", "--url", "http://127.0.0.1:9",
                           "--storage", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "MNAS_DEVICE_TOKEN": "from-the-env"})
    assert proc.returncode == 2 and "needs --token" not in proc.stderr and "cannot reach" in proc.stderr, proc.stderr
