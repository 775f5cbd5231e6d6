"""Resuming a study whose stored PPO state is in the old format: the strategy is rebuilt by replay."""

from __future__ import annotations

import logging

import pytest
from _search_helpers import TinySpace, tiny_eval

from mnas.loop import Budget, load_study, search
from mnas.objectives import Reward

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_old_format_controller_state_is_rebuilt_from_the_trials(tmp_path, caplog):
    space, db = TinySpace(), str(tmp_path / "old.db")
    options = {"batch_size": 2}
    search(space, evaluate=tiny_eval, reward=Reward.soft(2.0), strategy="ppo", strategy_options=options,
           budget=Budget(trials=3), storage=db, seed=1)
    study = load_study(db)
    state, n_told = study.storage.load_strategy_state()
    assert "tokens" in state  # the new format keeps the told results
    old = {k: v for k, v in state.items() if k not in ("tokens", "rewards", "token_dtype", "num_results",
                                                         "policy_digest")}
    old["policy"] = {"weights": "the LSTM's tensors, as the old format stored them"}
    study.storage.save_strategy_state(old, n_told)  # same n_told: replaces the stored state
    from mnas.strategies import get_strategy

    with pytest.raises(ValueError, match="older mnas"):  # what the loader does with it on its own
        get_strategy("ppo", space, 1, **options).load_state_dict(old)
    finished = len(study.get_trials(("complete", "failed")))
    study.close()
    with caplog.at_level(logging.WARNING, logger="mnas.search"):
        resumed = search(space, evaluate=tiny_eval, reward=Reward.soft(2.0), strategy="ppo", strategy_options=options,
                         budget=Budget(trials=5), storage=db, seed=1)
    lines = [r.getMessage() for r in caplog.records if "cannot be loaded" in r.getMessage()]
    assert len(lines) == 1 and f"telling it the study's {finished} finished trials" in lines[0]
    assert resumed.last_run.stop != "error" and len(resumed.get_trials(("complete", "failed"))) == 5
    state, _ = resumed.storage.load_strategy_state()
    assert "tokens" in state and state["num_told"] >= 5  # saved again in the new format, with the replayed results


def test_a_study_made_otherwise_is_refused_with_the_setting_that_differs_not_the_whole_config(tmp_path):
    """Issue 21: the refusal names where the stored and the given settings differ (no dict dump)."""
    from mnas.loop import create_study
    from mnas.space import MnasNetSpace

    db = str(tmp_path / "s.db")
    create_study(db, space=MnasNetSpace(10, 32, width_mult=0.25), reward=Reward.soft(2.0))
    with pytest.raises(ValueError) as info:
        create_study(db, space=MnasNetSpace(10, 32, width_mult=0.5), reward=Reward.soft(2.0), load_if_exists=True)
    message = str(info.value)
    assert "different space (settings.width_mult: 0.25, given 0.5)" in message and "{" not in message
    assert len(message) < 200
    with pytest.raises(ValueError) as info:
        create_study(db, space=MnasNetSpace(10, 32, width_mult=0.25), reward=Reward.soft(3.0), load_if_exists=True)
    assert "different reward (target_ms: 2.0, given 3.0)" in str(info.value) and "{" not in str(info.value)

    space, db = TinySpace(), str(tmp_path / "t.db")
    search(space, evaluate=tiny_eval, reward=Reward.soft(2.0), strategy="random", budget=Budget(trials=1), storage=db)

    def another_eval(arch):
        return tiny_eval(arch)

    with pytest.raises(ValueError) as info:
        search(space, evaluate=another_eval, reward=Reward.soft(2.0), strategy="random", budget=Budget(trials=2),
               storage=db)
    message = str(info.value)
    assert "different evaluator (callable: 'tiny_eval', given " in message and "{" not in message
