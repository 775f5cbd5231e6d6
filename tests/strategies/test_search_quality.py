"""Strategies must actually search: find an obvious optimum, and beat random search."""

import numpy as np
import pytest

from mnas.strategies import SyntheticObjective, get_strategy


def goal_objective(seed, sizes):
    """Weighted fraction of decisions that match a hidden goal: one optimum (reward 1), no traps."""
    rng = np.random.default_rng(seed + 1000)  # not the strategies' own stream
    goal = np.array([rng.integers(k) for k in sizes])
    w = rng.uniform(0.5, 1.5, len(sizes))
    return lambda tokens: [float((w * (np.asarray(t) == goal)).sum() / w.sum()) for t in tokens]


def search(name, space, objective, budget, seed, batch=10):
    strategy, best, trials_to_best = get_strategy(name, space, seed), -np.inf, None
    for n in range(0, budget, batch):
        tokens = strategy.ask(batch)
        rewards = objective(tokens)
        strategy.tell(tokens, rewards)
        if max(rewards) > best:
            best, trials_to_best = max(rewards), n + batch
    return best, trials_to_best


@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolution"])
def test_finds_the_optimum_of_a_65536_member_space(name, tiny_space_cls):
    space = tiny_space_cls((4,) * 8)
    best, _ = search(name, space, goal_objective(0, space.num_choices), budget=800, seed=0)
    # Random search finds it in 800 trials with probability 1 - (1 - 1/65536)**800 ~ 1.2%.
    assert best == 1.0


@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolution"])
def test_beats_random_on_average(name, tiny_space_cls):
    space = tiny_space_cls((3, 4, 2, 4, 3, 4, 2, 3, 4, 3))
    results = {}
    for strategy in (name, "random"):
        runs = [search(strategy, space, SyntheticObjective(space, seed=s + 7).rewards, 300, seed=s) for s in range(3)]
        results[strategy] = np.mean([best for best, _ in runs])
    assert results[name] > results["random"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppo", "reinforce", "evolution"])
def test_beats_random_on_the_mnasnet_space(name, mnasnet_space):
    objective = SyntheticObjective(mnasnet_space, seed=11)
    best = {s: np.mean([search(s, mnasnet_space, lambda t: objective.rewards(t).tolist(), 1000, seed)[0]
                        for seed in range(3)]) for s in (name, "random")}
    assert best[name] > best["random"] + 0.02
