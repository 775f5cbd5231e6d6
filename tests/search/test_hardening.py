"""Issue 13's study-and-search defects, each with the regression test that failed before its fix."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import mnas
from mnas.loop import Budget, create_study, load_study, search
from mnas.objectives import Reward
from mnas.space import SearchSpace
from mnas.strategies import Strategy

sys.path.insert(0, str(Path(__file__).parent))
from _search_helpers import SPACE, TinySpace, synthetic, tiny_eval  # noqa: E402


# -- item 8: a resumed search continues the stored budget ------------------------------------------
def test_resume_keeps_the_stored_budget_and_says_when_complete(tmp_path):
    db = str(tmp_path / "b.db")
    search(SPACE, evaluate=synthetic, target=20, strategy="random", budget=Budget(trials=5), storage=db)
    study = search(SPACE, evaluate=synthetic, target=20, strategy="random", storage=db)  # no budget: the stored one
    assert len(study.trials) == 5
    assert study.last_run.stop == "complete" and "the study is complete" in study.last_run.reason
    study = load_study(db)
    result = study.optimize(synthetic, strategy="random", budget=Budget(trials=7))
    assert len(study.trials) == 7 and result.stop == "trials" and not result.early
    assert study.optimize(synthetic, strategy="random").stop == "complete"  # the stored budget is now 7


# -- item 10: any failure while finishing a trial fails that trial ---------------------------------
def _tiny_latency(arch):
    return {"accuracy": 0.9, "latency_ms": 5e-324}


def _numpy_figures(arch):
    return {"accuracy": np.float32(0.75), "latency_ms": np.float32(3.5), "params": np.int64(10)}


def _unstorable(arch):
    return {"accuracy": 0.5, "latency_ms": 2.0, "blob": object()}


class _ExplodingReward(Reward):
    def __call__(self, accuracy, latency_ms=None):
        raise OverflowError("math range error")


@pytest.mark.parametrize("fn, reward, state, needle", [
    (_tiny_latency, Reward.soft(20), None, None),
    (_numpy_figures, Reward.soft(20), "complete", None),
    (_unstorable, Reward.soft(20), "failed", "not JSON-serialisable"),
    (synthetic, _ExplodingReward(20.0), "failed", "OverflowError"),
])
def test_a_result_that_cannot_be_scored_or_stored_fails_its_trial(tmp_path, fn, reward, state, needle):
    db = str(tmp_path / "f.db")
    study = search(SPACE, evaluate=fn, reward=reward, strategy="random", budget=Budget(trials=2), storage=db)
    trials = study.trials
    assert len(trials) == 2 and not study.get_trials("running")
    for t in trials:
        if state:
            assert t.state.value == state
        if needle:
            assert needle in t.failure
        if t.state.value == "complete":
            assert math.isfinite(t.reward)
    if fn is _numpy_figures:
        assert trials[0].accuracy == pytest.approx(0.75) and trials[0].params == 10
    # and the study resumes (it used to crash again on the stranded trial)
    again = search(SPACE, evaluate=fn, reward=reward, strategy="random", budget=Budget(trials=3), storage=db)
    assert len(again.trials) == 3


# -- item 11: an empty file is a new study; a search that cannot start leaves no file ---------------
def test_an_empty_storage_file_is_a_new_study(tmp_path):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    study = search(SPACE, evaluate=synthetic, target=20, strategy="random", budget=Budget(trials=2), storage=str(db))
    assert len(study.complete_trials) == 2


def test_a_search_that_cannot_start_leaves_no_file(tmp_path):
    db = tmp_path / "never.db"
    with pytest.raises(ValueError, match="unknown hyperparameter"):
        search(SPACE, evaluate=synthetic, target=20, strategy="evolution", strategy_options={"nope": 1},
               budget=Budget(trials=2), storage=str(db))
    with pytest.raises(ValueError, match="needs a latency target"):
        search(SPACE, evaluate=synthetic, budget=Budget(trials=2), storage=str(db))
    assert not list(tmp_path.iterdir())


# -- item 12: no silent early stop ------------------------------------------------------------------
class _Stuck(Strategy):
    """Proposes the same architecture for ever (a collapsed controller)."""

    name = "stuck"

    def _ask(self, n):
        return [[0] * len(self.space.decisions) for _ in range(n)]

    def _tell(self, tokens_list, rewards):
        pass


def test_a_stuck_strategy_still_reaches_the_budget_with_unseen_architectures():
    study = search(SPACE, evaluate=synthetic, target=20, strategy=_Stuck(SPACE, 0),
                   budget=Budget(trials=6, max_repeats=3), seed=0)
    result = study.last_run
    assert len(study.trials) == 6 and len({t.arch for t in study.trials}) == 6
    assert result.stop == "trials" and not result.early and result.explored == 5


def test_an_exhausted_space_stops_early_and_says_so():
    study = search(TinySpace(), evaluate=tiny_eval, target=2.0, strategy="random",
                   budget=Budget(trials=50, max_repeats=30), seed=0)
    result = study.last_run
    assert len(study.trials) == 6
    assert result.early and result.stop == "exhausted" and "exhausted" in str(result)
    assert str(result).startswith("stopped early")
    assert study.meta["last_run"]["stop"] == "exhausted"


# -- item 13: under a hard reward the best trial is feasible -----------------------------------------
def _fast_or_accurate(arch):
    # The deeper member is very accurate and 10% over the target: its hard reward (0.99 / 1.1 = 0.9)
    # beats every feasible member's (at most 0.6).
    b = arch.blocks[0]
    if b.repeats == 3 and b.out_chs == 16:
        return {"accuracy": 0.99, "latency_ms": 2.2}
    return {"accuracy": 0.5 + 0.01 * b.repeats, "latency_ms": 1.0}


def test_best_under_a_hard_reward_meets_the_target():
    study = search(TinySpace(), evaluate=_fast_or_accurate, reward=Reward.hard(2.0), strategy="random",
                   budget=Budget(trials=6), seed=0)
    top = max(study.complete_trials, key=lambda t: t.reward)
    assert top.latency_ms > 2.0  # the penalty did not keep it from the top of the rewards
    best = study.best()
    assert best.latency_ms <= 2.0 and best.extra["feasible"] is True
    assert study.summary()["best_is_feasible_only"] is True
    soft = search(TinySpace(), evaluate=_fast_or_accurate, reward=Reward.soft(2.0), strategy="random",
                  budget=Budget(trials=6), seed=0)
    assert soft.best().latency_ms > 2.0  # a soft reward is a trade-off, not a constraint


def test_accuracy_only_search_needs_no_target():
    study = search(TinySpace(), evaluate=tiny_eval, reward=Reward.accuracy(), strategy="random",
                   budget=Budget(trials=4), seed=0)
    assert study.meta["target_ms"] is None
    assert study.best().reward == max(t.accuracy for t in study.complete_trials)


# -- item 14: the public API does not depend on import order ----------------------------------------
@pytest.mark.parametrize("first", ["import mnas.loop", "import mnas; mnas.Budget", "from mnas.loop import search",
                                   "import mnas.study, mnas.evaluate"])
def test_mnas_search_is_a_function_whatever_was_imported_first(first):
    code = (f"{first}\nimport mnas, types\nassert callable(mnas.search) and not isinstance(mnas.search, types.ModuleType)"
            "\nimport importlib.util\nassert importlib.util.find_spec('mnas.search') is None\n"
            "import pkgutil\nmods = {m.name for m in pkgutil.iter_modules(mnas.__path__)}\n"
            "clash = sorted(set(mnas._LAZY) & mods)\nassert not clash, clash\nprint('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-1500:]


def test_two_searches_in_one_session():
    for _ in range(2):
        study = mnas.search(TinySpace(), evaluate=tiny_eval, target=2.0, strategy="random", budget=mnas.Budget(trials=2))
        assert len(study.trials) == 2


# -- item 17: a space must decode to a block chain ---------------------------------------------------
class _DictSpace(TinySpace):
    def decode(self, tokens):
        return {"tokens": list(tokens)}


def test_a_space_that_does_not_decode_to_an_arch_is_refused_before_any_trial(tmp_path):
    with pytest.raises(ValueError, match="must decode tokens to an architecture of a registered family"):
        search(_DictSpace(), evaluate=tiny_eval, target=2.0, strategy="random", budget=Budget(trials=3),
               storage=str(tmp_path / "d.db"))
    assert not (tmp_path / "d.db").exists()
    with pytest.raises(ValueError, match="must decode tokens to an architecture of a registered family"):
        create_study(None, space=_DictSpace(), reward=Reward.soft(2.0))


class _BrokenSpace(TinySpace):
    def decode(self, tokens):
        if tokens[0] == 2:
            raise KeyError("depth")
        return super().decode(tokens)


def test_a_space_whose_decode_raises_names_the_tokens():
    with pytest.raises(ValueError, match=r"_BrokenSpace.decode\(\[2, .\]\) failed: KeyError"):
        search(_BrokenSpace(), evaluate=tiny_eval, target=2.0, strategy="random", budget=Budget(trials=6), seed=0)


# -- item 16 (search part): a device that cannot be reached stops the search, resumably ---------------
class _Unreachable(ConnectionError):
    pass


class _DeadDevice:
    def measure(self, *a, **k):
        raise _Unreachable("device server http://127.0.0.1:9 did not answer after 3 tries")

    def key(self):
        return {"backend": "dead"}

    def describe(self):
        return self.key()


def test_an_unreachable_device_stops_the_search_and_resume_requeues(tmp_path):
    from mnas.evaluate import ProxyEvaluator

    class _Data:
        num_classes, input_size, channels, name = 10, 8, 1, "fake"

    class _Proxy:
        input_size = None

        def to_dict(self):
            return {"steps": 1}

    db = str(tmp_path / "u.db")
    space = SearchSpaceFor10()
    with pytest.raises(ConnectionError):
        search(space, evaluate=ProxyEvaluator(_Data(), _DeadDevice(), _Proxy()), target=1.0, strategy="random",
               budget=Budget(trials=3), storage=db)
    study = load_study(db, space=space)
    assert [t.state.value for t in study.trials] == ["running"]  # kept for resume to re-queue, not failed


class SearchSpaceFor10(TinySpace):
    num_classes = 10


def test_strategy_told_infos_when_it_takes_them():
    class Recording(_Stuck):
        name = "recording"
        infos: list = []

        def tell(self, tokens_list, rewards, *, infos=None):
            type(self).infos.extend(infos or [])
            super().tell(tokens_list, rewards)

        def _ask(self, n):
            return [self.space.sample_tokens(self.rng) for _ in range(n)]

    search(TinySpace(), evaluate=tiny_eval, reward=Reward.hard(2.0), strategy=Recording(TinySpace(), 0),
           budget=Budget(trials=3), seed=0)
    assert Recording.infos and {"accuracy", "latency_ms", "feasible", "violation"} <= set(Recording.infos[0])
    assert all(isinstance(i["feasible"], bool) for i in Recording.infos)


def test_space_base_class_is_unchanged_for_user_spaces():
    assert issubclass(TinySpace, SearchSpace)
