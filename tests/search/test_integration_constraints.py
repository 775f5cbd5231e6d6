"""Hard limits on params/MACs/peak memory: infeasible candidates fail untrained, best/front respect them."""

from __future__ import annotations

import pytest
from _search_helpers import TinySpace

from mnas.loop import Budget, create_study, search
from mnas.models.profile import arch_profile
from mnas.objectives import Constraints, Reward

EVALUATED: list[str] = []


def counting_eval(arch):
    EVALUATED.append(str(arch))
    b = arch.blocks[0]
    return {"accuracy": 0.5 + 0.1 * b.repeats + 0.001 * b.out_chs, "latency_ms": 1.0 + b.repeats * b.out_chs / 16}


def _params(space, width_token):
    return arch_profile(space.decode([0, width_token]), 224, 1000).params


def test_infeasible_candidates_are_not_trained_and_best_respects_limits(tmp_path):
    space = TinySpace()
    narrow, wide = _params(space, 0), _params(space, 1)
    assert narrow < wide
    limit = Constraints(max_params=(narrow + wide) / 2)  # every width-16 candidate breaks it at any depth
    assert arch_profile(space.decode([2, 0]), 224, 1000).params < limit.max_params
    EVALUATED.clear()
    db = str(tmp_path / "c.db")
    study = search(space, evaluate=counting_eval, reward=Reward.accuracy(), strategy="random",
                   budget=Budget(trials=6), storage=db, seed=0, constraints=limit)
    failed, complete = study.get_trials("failed"), study.get_trials("complete")
    assert failed and complete
    assert all(t.failure.startswith("infeasible: params") for t in failed)
    assert all("o16" not in a for a in EVALUATED)  # the wide ones were never evaluated
    assert all(t.params <= limit.max_params for t in complete)
    assert study.best() is not None and study.best().params <= limit.max_params
    assert all(t.params <= limit.max_params for t in study.pareto_front())
    assert study.limits == limit and study.meta["config"]["constraints"] == limit.to_dict()
    # resuming: other limits are refused; no limits given keeps the stored ones
    with pytest.raises(ValueError, match="other constraints"):
        create_study(db, space=space, reward=Reward.accuracy(), load_if_exists=True, constraints=Constraints(max_macs=1e9))
    again = search(space, evaluate=counting_eval, reward=Reward.accuracy(), strategy="random", budget=Budget(trials=6),
                   storage=db, seed=0)
    assert again.last_run.stop == "complete" and again.limits == limit


def test_best_and_front_drop_trials_over_a_latency_limit(tmp_path):
    space = TinySpace()
    study = search(space, evaluate=counting_eval, reward=Reward.accuracy(), strategy="random",
                   budget=Budget(trials=6), seed=0, constraints=Constraints(max_latency_ms=1.6))
    complete = study.get_trials("complete")
    assert any(t.latency_ms > 1.6 for t in complete)  # a latency limit is checked on the measured figure
    assert study.best().latency_ms <= 1.6
    assert all(t.latency_ms <= 1.6 for t in study.pareto_front())
    with pytest.raises(ValueError, match="constraints"):
        create_study(space=space, reward=Reward.accuracy(), constraints={"max_params": 1})
