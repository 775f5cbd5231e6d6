"""The search loop: budgets, resume, crash safety, failures, repeats, and the built-in evaluator."""

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnas.loop import Budget, search
from mnas.objectives import Reward
from mnas.study import SQLiteStorage, Study

sys.path.insert(0, str(Path(__file__).parent))
from _search_helpers import SPACE, TinySpace, flaky, slow, synthetic, tiny_eval  # noqa: E402

HELPERS = Path(__file__).parent / "_search_helpers.py"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (see tests/conftest.py)."""


@pytest.mark.parametrize("strategy", ["ppo", "reinforce", "evolution", "random"])
def test_runs_to_budget_and_records_everything(strategy):
    events = []
    study = search(SPACE, evaluate=synthetic, target=20, strategy=strategy, budget=Budget(trials=25), seed=0,
                   callbacks=[events.append])
    trials = study.trials
    assert len(trials) == 25 and all(t.state.value == "complete" for t in trials)
    reward = Reward.soft(20)
    for t in trials:
        assert t.arch == str(SPACE.decode(list(t.tokens)))
        assert t.reward == pytest.approx(reward(t.accuracy, t.latency_ms))
    assert study.best().reward == max(t.reward for t in trials)
    assert [e.kind for e in events].count("complete") == 25
    assert study.storage.load_strategy_state()[1] == 25


def test_resume_continues_with_the_strategy_restored(tmp_path):
    db = tmp_path / "s.db"
    search(SPACE, evaluate=synthetic, target=20, budget=Budget(trials=20), storage=str(db), seed=1)
    first = {t.number: t for t in Study(str(db)).trials}
    study = search(SPACE, evaluate=synthetic, target=20, budget=Budget(trials=30), storage=str(db), seed=1)
    assert len(study.trials) == 30
    assert all(study.storage.get_trial(n) == t for n, t in first.items())
    # A fresh search with the same seed for 30 trials proposes the same sequence: resume is exact.
    fresh = search(SPACE, evaluate=synthetic, target=20, budget=Budget(trials=30), seed=1)
    assert [t.arch for t in fresh.trials] == [t.arch for t in study.trials]


def test_resume_refuses_other_settings(tmp_path):
    db = tmp_path / "s.db"
    search(SPACE, evaluate=synthetic, target=20, budget=Budget(trials=3), storage=str(db))
    with pytest.raises(ValueError, match="different strategy"):
        search(SPACE, evaluate=synthetic, target=20, strategy="random", budget=Budget(trials=5), storage=str(db))
    with pytest.raises(ValueError, match="different reward"):
        search(SPACE, evaluate=synthetic, target=25, budget=Budget(trials=5), storage=str(db))


def _complete_so_far(db):
    from mnas.study import StudyNotReadyError

    try:  # a kill can land before the search has created the file, or between the file and its tables
        with Study(SQLiteStorage(db, read_only=True)) as study:
            return {t.number: t for t in study.complete_trials}
    except StudyNotReadyError:
        return {}
    except ValueError as exc:
        if "no study at" in str(exc):
            return {}
        raise


def test_kill_at_any_moment_loses_no_finished_trial(tmp_path):
    rng = random.Random(0)
    db = tmp_path / "k.db"
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(HELPERS), str(db), "400"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(2.0 + rng.random() * 2.0)
        before = _complete_so_far(db)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        storage = SQLiteStorage(db)
        assert storage.integrity_check() == "ok"
        for number, trial in before.items():
            assert storage.get_trial(number) == trial
        running = storage.get_trials("running")
        assert len(running) <= 1
        storage.close()
    study = search(SPACE, evaluate=slow, target=20, strategy="ppo",
                   budget=Budget(trials=len(Study(str(db)).complete_trials) + 5), storage=str(db), seed=3)
    states = study.summary()["states"]
    assert states.get("running", 0) == 0
    assert study.storage.load_strategy_state()[1] >= len(study.complete_trials)


def test_failing_candidates_are_failed_trials_not_crashes():
    study = search(SPACE, evaluate=flaky, target=20, strategy="random", budget=Budget(trials=30), seed=0)
    failed = study.get_trials("failed")
    assert failed and all("simulated out of memory" in t.failure for t in failed)
    assert len(study.complete_trials) + len(failed) == 30


def test_repeats_are_answered_from_the_study():
    space = TinySpace()
    study = search(space, evaluate=tiny_eval, target=2.0, strategy="random",
                   budget=Budget(trials=50, max_repeats=30), seed=0)
    archs = [t.arch for t in study.trials]
    assert len(archs) == len(set(archs)) == 6  # every member evaluated once, then the loop stopped


def test_bad_arguments():
    with pytest.raises(ValueError, match="latency target"):
        search(SPACE, evaluate=synthetic)
    with pytest.raises(ValueError, match="needs data= and latency="):
        search(SPACE, target=20)
    with pytest.raises(ValueError, match="trials"):
        Budget(trials=0)


def test_builtin_evaluation_on_digits():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    from mnas.latency import OnnxRuntime
    from mnas.space import MnasNetSpace
    from mnas.train import ProxyConfig, load

    data = load("digits", val_fraction=0.2, seed=0)
    space = MnasNetSpace(10, 8, width_mult=0.25, head_chs=32)
    study = search(space, data=data, latency=OnnxRuntime(threads=1), target="mobilenetv2_x0.25",
                   strategy="random", proxy=ProxyConfig(steps=4, batch_size=32, threads=1),
                   budget=Budget(trials=2), seed=0)
    trials = study.complete_trials
    assert len(trials) == 2
    for t in trials:
        assert 0 <= t.accuracy <= 1 and t.latency_ms > 0 and t.params > 0 and t.macs > 0
        assert t.extra.get("latency_cv") is not None
    assert 0 < study.meta["target_ms"] < 1000


def test_process_pool_search_matches_the_budget(tmp_path):
    study = search(SPACE, evaluate=synthetic, target=20, strategy="evolution", budget=Budget(trials=12),
                   storage=str(tmp_path / "p.db"), executor="process", workers=2, seed=0)
    assert len(study.complete_trials) == 12
    assert study.storage.load_strategy_state()[1] == 12


def test_resume_refuses_a_different_proxy(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    from mnas.latency import OnnxRuntime
    from mnas.space import MnasNetSpace
    from mnas.train import ProxyConfig, load

    data = load("digits", val_fraction=0.2, seed=0)
    space = MnasNetSpace(10, 8, width_mult=0.25, head_chs=32)
    args = dict(data=data, latency=OnnxRuntime(threads=1), target=1.0, strategy="random",
                storage=str(tmp_path / "p.db"), seed=0)
    search(space, proxy=ProxyConfig(steps=2, batch_size=32, threads=1), budget=Budget(trials=1), **args)
    # Another thread count is the same experiment: it resumes.
    search(space, proxy=ProxyConfig(steps=2, batch_size=32, threads=2), budget=Budget(trials=2), **args)
    with pytest.raises(ValueError, match="different evaluator"):
        search(space, proxy=ProxyConfig(steps=5, batch_size=32, threads=1), budget=Budget(trials=3), **args)
