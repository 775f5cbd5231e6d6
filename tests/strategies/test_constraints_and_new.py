"""Infos and constraints in the strategies; the replay controller, the predictor, the Optuna strategies;
the controller's compact state (issue 14)."""

import json

import numpy as np
import pytest

from mnas.space import Decision, SearchSpace
from mnas.strategies import Strategy, SyntheticObjective, get_strategy


# -- infos ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("infos, match", [
    ([{}], "1 infos"), ([{"violation": -1}, None], "violation"), ([{"feasible": "yes"}, None], "feasible"),
    ([{"feasible": True, "violation": 0.5}, None], "contradicts"), ([{"latency_ms": "3"}, None], "latency_ms"),
    (["fast", None], "expected a dict"),
])
def test_tell_validates_infos(infos, match, tiny):
    s = get_strategy("evolution", tiny, 0)
    with pytest.raises(ValueError, match=match):
        s.tell(s.ask(2), [0.5, 0.6], infos=infos)


def test_a_subclass_written_before_infos_still_works(tiny):
    class Old(Strategy):
        name = "old"

        def _ask(self, n):
            return [self.space.sample_tokens(self.rng) for _ in range(n)]

        def _tell(self, tokens_list, rewards):
            self.got = rewards

    s = Old(tiny)
    s.tell(s.ask(2), [0.1, 0.2], infos=[{"violation": 0.3}, None])
    assert s.got == [0.1, 0.2]


# -- evolution: feasibility-first tournaments ------------------------------------------------------
def test_evolution_tournament_prefers_feasible_then_smaller_violation(tiny):
    s = get_strategy("evolution", tiny, 0, population_size=3, sample_size=3)
    a, b, c = [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [2, 0, 2, 2, 0, 2]
    s.tell([a, b, c], [0.9, 0.3, 0.8], infos=[{"violation": 0.5}, {"feasible": True}, {"violation": 0.1}])
    assert s.best() == (b, 0.3)  # the only feasible member wins despite the lowest reward
    for child in s.ask(4):
        assert sum(x != y for x, y in zip(child, b, strict=True)) == 1
    s2 = get_strategy("evolution", tiny, 0, population_size=2, sample_size=2)
    s2.tell([a, c], [0.9, 0.8], infos=[{"violation": 0.5}, {"violation": 0.1}])
    assert s2.best() == (c, 0.8)  # among infeasible ones the smaller violation wins


def test_evolution_loads_a_state_saved_before_constraints(tiny):
    s = get_strategy("evolution", tiny, 0, population_size=3, sample_size=2)
    state = s.state_dict()
    state["population"] = [[[0, 0, 0, 0, 0, 0], 0.5], [[1, 1, 1, 1, 1, 1], 0.7]]
    s.load_state_dict(state)
    assert s.best() == ([1, 1, 1, 1, 1, 1], 0.7)


# -- the replay controller ---------------------------------------------------------------------------
def test_replay_ranks_feasible_first_and_weights_by_rank(tiny):
    s = get_strategy("replay", tiny, 0, batch_size=100, elite_fraction=0.5)
    seqs = [tiny.sample_tokens(np.random.default_rng(i)) for i in range(4)]
    s.tell(seqs, [0.9, 0.5, 0.7, 0.6], infos=[{"violation": 0.2}, None, None, {"violation": 0.1}])
    index, weights = s.elite_weights(4)
    assert list(index) == [2, 1] and weights[0] > weights[1] > 0 and weights.sum() == pytest.approx(1)


def test_replay_learns_the_rewarded_sequence_and_avoids_repeats(tiny):
    s = get_strategy("replay", tiny, 0, batch_size=10)
    target = [0] * len(tiny.decisions)
    before, told, repeats = s.probabilities([target])[0], set(), 0
    for _ in range(8):
        tokens = s.ask(10)
        repeats += sum(tuple(t) in told for t in tokens)
        told |= {tuple(t) for t in tokens}
        s.tell(tokens, [float(np.mean(np.array(t) == 0)) for t in tokens])
    assert s.probabilities([target])[0] > 3 * before and s.num_updates == 8
    assert repeats <= 4  # 80 of 432 members: it redraws told sequences (8 bounded rounds) instead of repeating


# -- the controller's state: small and exact -----------------------------------------------------------
@pytest.mark.parametrize("name", ["ppo", "replay"])
def test_controller_state_is_small_and_replays_exactly(name, mnasnet_space):
    objective = SyntheticObjective(mnasnet_space, 0)
    s = get_strategy(name, mnasnet_space, 0, batch_size=5)
    for _ in range(6):
        t = s.ask(5)
        s.tell(t, objective.rewards(t).tolist())
    text = json.dumps(s.state_dict())
    assert len(text) < 10_000  # weights + Adam moments were ~780 kB; 30 results are ~2 kB
    b = get_strategy(name, mnasnet_space, 9, batch_size=5)
    b.load_state_dict(json.loads(text))
    assert b.num_updates == 6 and b._digest() == s._digest() and b.ask(4) == s.ask(4)


def test_controller_refuses_a_weights_state_from_before(tiny):
    s = get_strategy("ppo", tiny, 0)
    state = s.state_dict()
    for key in ("tokens", "rewards", "num_results", "token_dtype", "policy_digest"):
        state.pop(key)
    state.update(policy={}, optimizer=[], buffer=[], baseline=None, spread=None)
    with pytest.raises(ValueError, match="older mnas"):
        get_strategy("ppo", tiny, 0).load_state_dict(state)


# -- the predictor ---------------------------------------------------------------------------------
class Space(SearchSpace):
    def __init__(self, sizes):
        self.decisions = tuple(Decision(f"d{i}", tuple(range(k))) for i, k in enumerate(sizes))


def test_predictor_beats_random_on_a_small_space():
    space = Space((4, 3, 4, 3, 4, 3, 2))
    found = {}
    for name in ("predictor", "random"):
        best = []
        for seed in range(3):
            objective, s = SyntheticObjective(space, seed + 5), get_strategy(name, space, seed, epochs=60) \
                if name == "predictor" else get_strategy(name, space, seed)
            top = 0.0
            for _ in range(6):
                t = s.ask(10)
                r = objective.rewards(t).tolist()
                s.tell(t, r)
                top = max(top, *r)
            best.append(top)
        found[name] = np.mean(best)
    assert found["predictor"] > found["random"]


def test_predictor_uses_a_latency_model_as_the_constraint():
    space = Space((4, 3, 4, 3, 4, 3, 2))
    objective = SyntheticObjective(space, 1)
    target = float(np.quantile(objective.accuracy_latency([space.sample_tokens(np.random.default_rng(i))
                                                           for i in range(500)])[1], 0.3))
    model = lambda tokens: objective.accuracy_latency(tokens)[1]  # an exact "lookup table"
    s = get_strategy("predictor", space, 0, initial=10, epochs=30, target_ms=target, latency_model=model)
    t = s.ask(10)
    s.tell(t, objective.accuracy_latency(t)[0].tolist())
    proposed = s.ask(10)
    assert (model(proposed) <= target).all()
    assert "latency_model" not in s.hyperparameters()  # a callable is not stored: pass it again on resume


def test_predictor_learns_the_constraint_from_infos():
    space = Space((4, 3, 4, 3, 4, 3, 2))
    objective = SyntheticObjective(space, 2)
    target = 0.9 * objective.target_ms
    s = get_strategy("predictor", space, 0, initial=30, epochs=80)
    feasible = []
    for k in range(6):
        t = s.ask(10)
        acc, lat = objective.accuracy_latency(t)
        s.tell(t, acc.tolist(), infos=[{"violation": max(0.0, la / target - 1)} for la in lat])
        if k >= 3:
            feasible.append((lat <= target).mean())
    assert np.mean(feasible) > 0.6  # random: ~35% feasible under this target


# -- Optuna -----------------------------------------------------------------------------------------
def test_nsga2_searches_accuracy_and_latency_from_infos(tiny):
    pytest.importorskip("optuna")
    s = get_strategy("nsga2", tiny, 0, population_size=4)
    t = s.ask(2)
    with pytest.raises(ValueError, match="accuracy' and 'latency_ms"):
        s.tell(t, [0.5, 0.6])
    s.tell(t, [0.5, 0.6], infos=[{"accuracy": 0.5, "latency_ms": 3.0}, {"accuracy": 0.6, "latency_ms": 5.0}])
    assert [tr.values for tr in s.study.trials if tr.values] == [[0.5, 3.0], [0.6, 5.0]]


def test_tpe_records_the_violation_as_its_constraint(tiny):
    pytest.importorskip("optuna")
    s = get_strategy("tpe", tiny, 0, n_startup_trials=2)
    t = s.ask(2)
    s.tell(t, [0.5, 0.6], infos=[{"violation": 0.25}, None])
    s.tell([[0] * 6], [0.7], infos=[{"violation": 1.0}])  # foreign
    assert [tr.user_attrs["violation"] for tr in s.study.trials] == [0.25, 0.0, 1.0]
    assert len(s.ask(3)) == 3


def test_gp_round_trip_is_exact(tiny):
    pytest.importorskip("optuna")
    objective = SyntheticObjective(tiny, 0)
    a = get_strategy("gp", tiny, 3, n_startup_trials=3)
    for _ in range(3):
        t = a.ask(2)
        a.tell(t, objective.rewards(t).tolist())
    b = get_strategy("gp", tiny, 0, n_startup_trials=3)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert a.ask(2) == b.ask(2)


def test_optuna_missing_names_the_extra(tiny, monkeypatch):
    import builtins

    real = builtins.__import__

    def fake(name, *args, **kwargs):
        if name == "optuna":
            raise ImportError("no optuna")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImportError, match=r"pip install 'mnas\[optuna\]'"):
        get_strategy("tpe", tiny, 0)
