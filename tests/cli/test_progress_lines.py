"""Issue 21 item 4: off a terminal (logs, nohup, CI) long commands say what they are doing — a line
as each phase starts, and progress with a rate and the time left at a modest interval."""

from __future__ import annotations

import io
import time

import pytest


def test_count_lines_give_the_rate_and_the_time_left():
    from mnas._util.progress import CountLines, Throttle, rate_and_left

    out = io.StringIO()
    lines = CountLines("build-lut", unit="measurements", file=out, every=3600)
    for done in range(1, 11):
        lines(done, 10, f"unit {done}")
    text = out.getvalue().splitlines()
    assert len(text) == 2  # the first and the last: the interval keeps a log short
    assert text[0].startswith("build-lut: 1/10 (10.0%)") and text[-1].startswith("build-lut: 10/10 (100.0%)")
    assert "measurements/s" in text[-1]
    assert rate_and_left(10, 100, 5.0, "layers") == "2.00 layers/s, about 45 s left"
    assert rate_and_left(1, 100, 120.0) == "0.50/min, about 3.3 h left"
    throttle = Throttle(30)
    assert throttle.due(100.0) and not throttle.due(110.0) and throttle.due(131.0)


def test_the_interval_comes_from_the_environment(monkeypatch):
    from mnas._util.progress import progress_every

    monkeypatch.setenv("MNAS_PROGRESS_EVERY", "5")
    assert progress_every() == 5.0
    monkeypatch.setenv("MNAS_PROGRESS_EVERY", "soon")
    assert progress_every() == 30.0


def test_build_lut_off_a_terminal_says_each_phase_and_its_progress(tmp_path, monkeypatch, capsys):
    """Before: a rich bar that off a terminal printed nothing until the end (21 silent minutes)."""
    import mnas.cli.latency_cmd as latency_cmd
    from mnas.cli import main
    from mnas.latency import LatencyBackend, LatencyResult

    class Fake(LatencyBackend):
        name = "fake"

        def measure_model(self, model, input_shape):
            time.sleep(0.002)
            return LatencyResult(0.01, 0.0, 0.0, 1, self.name, {}, input_shape[-1], 1, 0, {"cpu": "x"}, {})

        def _measure(self, arch, input_size, num_classes, batch_size, in_chans=3):
            return LatencyResult(1.0, 0.0, 0.0, 1, self.name, {}, input_size, 1, num_classes, {"cpu": "x"}, {})

    monkeypatch.setattr(latency_cmd, "make_backend", lambda args: Fake())
    monkeypatch.setenv("MNAS_PROGRESS_EVERY", "0")
    out = tmp_path / "lut.json"
    assert main(["latency", "build-lut", "--out", str(out), "--ops", "mbconv6", "--kernel-sizes", "3", "--se-ratios", "0",
                 "--skips", "identity", "--filter-mults", "1", "--references", "none", "--fit-archs", "2"]) == 0
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert any(line.startswith("build-lut: measuring ") and "layer signatures" in line for line in err), err
    assert any(line.startswith("build-lut: fitting scale and overhead") for line in err), err
    progress = [line for line in err if line.startswith("build-lut: ") and "%)" in line]
    assert len(progress) >= 5 and any(" left" in line for line in progress), err
    assert " at load " in captured.out or "load not recorded" in captured.out


def _study(outcomes):
    from mnas.loop import create_study
    from mnas.objectives import Reward
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(10, 224)
    study = create_study(None, space=space, reward=Reward.soft(20))
    for i, ok in enumerate(outcomes):
        n = study.storage.create_trial([0] * len(space.decisions), f"r1_k3_s11_e1_i32_o16 | s{i + 1}_h8_d0.0_relu")
        study.storage.complete_trial(n, 0.8, 10.0, 0.8) if ok else study.storage.fail_trial(n, "x")
    return study


def test_search_lines_have_a_start_line_a_rate_and_the_time_left():
    from mnas.loop import Budget, ProgressPrinter, SearchEvent
    from mnas.objectives import Reward

    study = _study([])
    out = io.StringIO()
    printer = ProgressPrinter(out)
    tokens = [0] * len(study.space.decisions)
    for i, elapsed in enumerate((60.0, 120.0)):
        n = study.storage.create_trial(tokens, f"r1_k3_s11_e1_i32_o16 | s{i + 1}_h8_d0.0_relu")
        printer(SearchEvent("start", study, study.storage.get_trial(n), elapsed - 60, Budget(trials=10), Reward.soft(20), 1))
        study.storage.complete_trial(n, 0.8, 10.0, 0.8)
        printer(SearchEvent("complete", study, study.storage.get_trial(n), elapsed, Budget(trials=10), Reward.soft(20)))
    lines = out.getvalue().splitlines()
    assert "trial 0 started" in lines[0]  # before: nothing until the first trial finished
    assert lines[-1].endswith("1.00 trials/min, about 8.0 min left"), lines[-1]


def test_a_phase_is_announced_only_once_it_lasts():
    from mnas.cli._progress import Phases

    out = io.StringIO()
    with Phases(delay=0.3, file=out) as phases:
        phases("quick")
        phases.end()
        phases("slow")
        time.sleep(1.0)
    assert out.getvalue() == "slow\n"


def test_plain_search_progress_says_a_long_trial_is_still_running():
    from mnas.cli.search_cmd import _PlainProgress
    from mnas.loop import Budget, SearchEvent
    from mnas.objectives import Reward

    study = _study([True])
    out = io.StringIO()
    with _PlainProgress(file=out, every=0.2) as display:
        display.update(SearchEvent("start", study, study.trials[0], 0.0, Budget(trials=5), Reward.soft(20), 1))
        deadline = time.monotonic() + 10
        while "running for" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.1)
    assert "trial 0 running for" in out.getvalue()


def test_training_off_a_terminal_prints_lines_within_an_epoch(capsys):
    from mnas.train.progress import ConsoleProgress

    progress = ConsoleProgress(every=0)
    progress.start_epoch(0, 2, 4)
    for _ in range(4):
        progress.step(1.5, 0.25, 100.0)
    progress.end_epoch({"epoch": 1, "train_loss": 1.5, "train_accuracy": 0.25, "images_per_second": 100.0,
                        "lr": 0.1, "seconds": 1.0})
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("  epoch 1/2 step 1/4") and "img/s" in err[0] and "left in the epoch" in err[0]
    assert err[-1].startswith("epoch 1/2")


@pytest.mark.filterwarnings("ignore")
def test_search_says_each_phase_before_the_first_trial(tmp_path, capsys, monkeypatch):
    """Before: off a terminal the first line came when the first trial finished (5 minutes on CIFAR).
    A phase is announced once it lasts $MNAS_PROGRESS_EVERY seconds (at most 10), so bad input refused
    at once still gets its one line; here every phase is announced at once."""
    from mnas.cli import main

    monkeypatch.setenv("MNAS_PROGRESS_EVERY", "0")

    assert main(["search", "--storage", str(tmp_path / "s.db"), "--trials", "1", "--epochs", "0.05", "--width-mult",
                 "0.25", "--head", "32", "--strategy", "random"]) == 0
    err = capsys.readouterr().err
    for needle in ("loading the data: digits", "data: Dataset('digits'", "measuring the target's reference",
                   "search: random, 1 trials, target ", "trial 0 started"):
        assert needle in err, (needle, err)
