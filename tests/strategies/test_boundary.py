"""Boundary search: proposals at the latency boundary, a learned latency, exact resume, and a pick
that beats evolution's on an additive landscape with noisy accuracy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas.objectives import Reward
from mnas.space import Decision, SearchSpace
from mnas.strategies.boundary import BoundarySearch, marginal_fit, ridge_fit


class Tokens(SearchSpace):
    def __init__(self, sizes):
        self.decisions = tuple(Decision(f"d{i}", tuple(range(k))) for i, k in enumerate(sizes))


class Additive:
    """Accuracy and latency both grow with each decision's choice (bigger is slower and better), plus
    noise on the accuracy a search sees; the true accuracy is noise-free."""

    def __init__(self, space, seed=0, noise=0.004):
        rng = np.random.default_rng(seed)
        self.gain = [np.sort(rng.uniform(0, 0.02, len(d.choices))) for d in space.decisions]
        self.cost = [np.sort(rng.uniform(0.1, 1.0, len(d.choices))) for d in space.decisions]
        self.noise, self.rng = noise, np.random.default_rng(seed + 1)

    def true(self, t):
        return 0.8 + sum(g[c] for g, c in zip(self.gain, t, strict=True))

    def lat(self, t):
        return float(sum(c[i] for c, i in zip(self.cost, t, strict=True)))

    def seen(self, t):
        return self.true(t) + float(self.rng.normal(0, self.noise))


def run(strategy, land, target, trials=60):
    reward, told = Reward.hard(target), []
    while len(told) < trials:
        tokens = strategy.ask(10)
        acc, lat = [land.seen(t) for t in tokens], [land.lat(t) for t in tokens]
        strategy.tell(tokens, [reward(a, la) for a, la in zip(acc, lat, strict=True)],
                      infos=[{"accuracy": a, "latency_ms": la, "violation": max(0.0, la / target - 1)}
                             for a, la in zip(acc, lat, strict=True)])
        told += [(t, a, la) for t, a, la in zip(tokens, acc, lat, strict=True)]
    ok = [(t, a, la) for t, a, la in told if la <= target]
    return max(ok, key=lambda x: x[1]), told


SPACE = Tokens((3,) * 8)


def _target(land):
    lats = sorted(land.lat(t) for t in [list(np.unravel_index(i, (3,) * 8)) for i in range(0, 3 ** 8, 7)])
    return lats[len(lats) // 2]


def test_ridge_fit_recovers_an_additive_function():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, (50, 6)).astype(float)
    y = x @ np.arange(6.0) + 3
    assert np.allclose(ridge_fit(x, y, 1e-9)(x), y, atol=1e-6)


def test_marginal_fit_is_the_additive_fit_on_a_balanced_design_and_shrinks_nothing_away():
    # every combination of three 3-way decisions once: the marginal effects are the least-squares ones,
    # so an additive y is reproduced exactly (in y's units, not shrunk)
    grid = np.array(np.meshgrid(*[range(3)] * 3, indexing="ij")).reshape(3, -1).T
    x = np.eye(3)[grid].reshape(len(grid), -1)
    effects = np.array([[0.0, 2.0, 3.0], [0.0, -1.0, 0.5], [0.0, 0.3, 0.1]])
    y = 5.0 + sum(effects[j][grid[:, j]] for j in range(3))
    assert np.allclose(marginal_fit(x, y)(x), y)
    # a constant y fits to the constant; a new network is predicted from its tokens' effects
    assert np.allclose(marginal_fit(x, np.full(len(x), 2.0))(x), 2.0)
    new = np.eye(3)[np.array([[2, 2, 2]])].reshape(1, -1)
    assert marginal_fit(x, y)(new)[0] == pytest.approx(5.0 + 3.0 + 0.5 + 0.1)
    # decisions with different numbers of choices (2 and 4) weigh alike when the widths are given; without
    # them the 4-way decision's tokens, each carried by half as many networks, count half (review)
    pairs = [(a, b) for a in range(2) for b in range(4)]
    x = np.array([np.concatenate([np.eye(2)[a], np.eye(4)[b]]) for a, b in pairs])
    y = np.array([a + (b == 1) for a, b in pairs], dtype=float)
    assert np.allclose(marginal_fit(x, y, [2, 4])(x), y)
    assert not np.allclose(marginal_fit(x, y)(x), y)
    with pytest.raises(ValueError, match="not the 6 one-hot columns"):
        marginal_fit(x, y, [3, 4])
    # one decision, tokens drawn 18 and 2 times: the least-squares scale makes the fit exact
    x2 = np.eye(2)[np.array([0] * 18 + [1] * 2)]
    y2 = np.array([0.0] * 18 + [1.0] * 2)
    fit = marginal_fit(x2, y2)(x2)
    assert fit[-1] - fit[0] == pytest.approx(1.0)


@pytest.mark.parametrize("latency_model", [True, False])
def test_proposals_sit_at_the_boundary_and_the_pick_beats_evolution(latency_model):
    from mnas.strategies import get_strategy

    wins, uses = 0, []
    for seed in range(4):
        land = Additive(SPACE, seed)
        target = _target(land)
        model = (lambda toks, land=land: [land.lat(t) for t in toks]) if latency_model else None
        (pick, _, lat), told = run(BoundarySearch(SPACE, seed, target_ms=target, latency_model=model), land, target)
        (evo_pick, _, _), _ = run(get_strategy("evolution", SPACE, seed), Additive(SPACE, seed), target)
        uses.append(lat / target)
        wins += land.true(pick) >= land.true(evo_pick)
        late = [la / target for _, _, la in told[30:]]
        assert np.mean([0.9 <= u <= 1.0 for u in late]) >= (0.75 if latency_model else 0.6)
    assert wins >= 3 and min(uses) >= 0.9


def test_without_a_target_it_is_a_greedy_surrogate_search():
    land = Additive(SPACE, 3, noise=0.0)
    s = BoundarySearch(SPACE, 0, initial=10)
    best = None
    for _ in range(6):
        tokens = s.ask(10)
        s.tell(tokens, [land.seen(t) for t in tokens])
        best = max([best or tokens[0]] + tokens, key=land.true)
    assert best == [2] * 8  # the additive optimum: every decision's largest choice


def test_resume_is_exact_and_bad_settings_are_refused():
    land = Additive(SPACE, 1)
    target = _target(land)
    a = BoundarySearch(SPACE, 5, target_ms=target, initial=5)
    for _ in range(3):
        t = a.ask(4)
        a.tell(t, [land.seen(x) for x in t], infos=[{"accuracy": 0.9, "latency_ms": land.lat(x)} for x in t])
    b = BoundarySearch(SPACE, 5, target_ms=target, initial=5)
    b.load_state_dict(json.loads(json.dumps(a.state_dict())))
    assert a.ask(6) == b.ask(6)
    for bad, msg in [({"target_ms": -1}, "target_ms"), ({"band": 1.5}, "band"), ({"initial": 1}, "initial"),
                     ({"alpha": 0}, "alpha"), ({"latency_model": 3}, "callable")]:
        with pytest.raises(ValueError, match=msg):
            BoundarySearch(SPACE, 0, **bad)


def test_the_loops_latency_limit_is_the_target_and_a_full_search_runs_through_the_loop(tmp_path):
    land = Additive(SPACE, 2)
    target = _target(land)
    by_hand = BoundarySearch(SPACE, 0, target_ms=target)
    by_loop = BoundarySearch(SPACE, 0)
    by_loop.set_latency_limit(target)
    for _ in range(4):
        a, b = by_hand.ask(5), by_loop.ask(5)
        assert a == b
        infos = [{"accuracy": land.seen(t), "latency_ms": land.lat(t)} for t in a]
        by_hand.tell(a, [i["accuracy"] for i in infos], infos=infos)
        by_loop.tell(b, [i["accuracy"] for i in infos], infos=infos)

    import mnas
    from mnas.space.presets import nas_bench_macro_space

    space = nas_bench_macro_space()  # the same decisions (8 x 3), with architectures to decode
    study = mnas.create_study(str(tmp_path / "b.db"), space=space, reward=Reward.hard(target), seed=0)
    evaluate = mnas.UserEvaluator(lambda arch: {"accuracy": land.true(space.encode(arch)),
                                                "latency_ms": land.lat(space.encode(arch))})
    study.optimize(evaluate, strategy="boundary", budget=mnas.Budget(trials=40))
    best = study.best()
    assert best.latency_ms <= target and best.latency_ms >= 0.9 * target


def test_the_default_strategy_is_boundary_under_a_hard_target_and_predictor_otherwise(tmp_path):
    import mnas
    from mnas.loop.api import auto_strategy
    from mnas.objectives import Constraints
    from mnas.space.presets import nas_bench_macro_space

    assert auto_strategy(Reward.hard(2.0)) == "boundary"
    assert auto_strategy(Reward.soft(2.0)) == "predictor" and auto_strategy(Reward.accuracy()) == "predictor"
    assert auto_strategy(Reward.accuracy(), Constraints(max_latency_ms=3.0)) == "boundary"
    space = nas_bench_macro_space()
    land = Additive(space, 0)
    evaluate = mnas.UserEvaluator(lambda arch: {"accuracy": land.true(space.encode(arch)),
                                                "latency_ms": land.lat(space.encode(arch))})
    for reward, expected in ((Reward.hard(4.0), "boundary"), (Reward.soft(4.0), "predictor")):
        study = mnas.create_study(str(tmp_path / f"{expected}.db"), space=space, reward=reward, seed=0)
        study.optimize(evaluate, budget=mnas.Budget(trials=4))
        assert study.storage.get_meta("config")["strategy"] == expected
    # a resumed study keeps the strategy it was made with, whatever "auto" would choose now
    study = mnas.create_study(str(tmp_path / "ppo.db"), space=space, reward=Reward.hard(4.0), seed=0)
    study.optimize(evaluate, strategy="ppo", budget=mnas.Budget(trials=2))
    again = mnas.load_study(str(tmp_path / "ppo.db"))
    again.optimize(evaluate, budget=mnas.Budget(trials=4))
    assert again.storage.get_meta("config")["strategy"] == "ppo"
