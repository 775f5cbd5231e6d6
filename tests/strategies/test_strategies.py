"""Behaviour specific to each strategy (the shared contract is in test_contract.py)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from mnas.strategies import SyntheticObjective, get_strategy


def test_importing_strategies_and_the_torch_free_ones_does_not_import_torch():
    code = ("import sys\n"
            "from mnas.space import MnasNetSpace\n"
            "from mnas.strategies import get_strategy, SyntheticObjective\n"
            "space = MnasNetSpace(num_classes=10, input_size=224)\n"
            "objective = SyntheticObjective(space, 0)\n"
            "for name in ('evolution', 'random'):\n"
            "    s = get_strategy(name, space, 0)\n"
            "    t = s.ask(30); s.tell(t, objective.rewards(t).tolist()); s.ask(5); s.state_dict()\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "get_strategy('ppo', space, 0)\n"
            "assert 'torch' in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# -- the controller ----------------------------------------------------------------------------
def test_controller_starts_uniform_and_learns_the_rewarded_sequence(tiny):
    s = get_strategy("reinforce", tiny, 0)
    target = [0] * len(tiny.decisions)
    assert s.probabilities([target])[0] == pytest.approx(1 / tiny.size, rel=1e-4)
    for _ in range(20):
        tokens = s.ask(10)
        s.tell(tokens, [float(np.mean(np.array(t) == 0)) for t in tokens])
    assert s.probabilities([target])[0] > 20 / tiny.size
    assert s.num_updates == 20


@pytest.mark.parametrize("name", ["ppo", "reinforce"])
def test_failed_trials_count_as_failed_reward(name, tiny):
    a, b, c = (get_strategy(name, tiny, 0, batch_size=4, failed_reward=f) for f in (0.0, 0.0, -1.0))
    tokens = a.ask(4)
    a.tell(tokens, [0.9, None, 0.5, None])
    b.tell(tokens, [0.9, 0.0, 0.5, 0.0])
    c.tell(tokens, [0.9, None, 0.5, None])
    assert a.probabilities(tokens) == b.probabilities(tokens) != c.probabilities(tokens)


def test_controller_updates_once_per_batch_and_keeps_the_remainder(tiny):
    s = get_strategy("ppo", tiny, 0, batch_size=4)
    tokens = s.ask(10)
    s.tell(tokens[:3], [0.1, 0.2, 0.3])
    assert s.num_updates == 0 and len(s.buffer) == 3
    s.tell(tokens[3:], [0.5] * 7)
    assert s.num_updates == 2 and len(s.buffer) == 2


def test_controller_leaves_global_torch_state_alone(tiny):
    import torch

    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    s = get_strategy("ppo", tiny, 3, batch_size=2)
    tokens = s.ask(4)
    s.tell(tokens, [0.1, 0.2, 0.3, 0.4])
    assert torch.equal(torch.random.get_rng_state(), state) and torch.get_num_threads() == threads


def test_controller_state_is_plain_json(mnasnet_space):
    s = get_strategy("ppo", mnasnet_space, 0, batch_size=2)
    tokens = s.ask(3)
    s.tell(tokens, [0.5, 0.6, 0.7])
    text = json.dumps(s.state_dict())
    state = json.loads(text)
    assert state["num_updates"] == 1 and state["num_results"] == 3 and len(s.buffer) == 1 and state["policy_digest"]


# -- evolution ---------------------------------------------------------------------------------
def test_evolution_ages_out_the_oldest_and_skips_failures(tiny):
    s = get_strategy("evolution", tiny, 0, population_size=3, sample_size=2)
    seqs = [tiny.sample_tokens(np.random.default_rng(i)) for i in range(5)]
    s.tell(seqs, [0.9, None, 0.1, 0.2, 0.3])
    assert [m[1] for m in s.population] == [0.1, 0.2, 0.3]  # the best (0.9) aged out: regularisation
    assert len(s.seen) == len({tuple(t) for t in seqs})


def test_evolution_mutates_the_tournament_winner(tiny):
    s = get_strategy("evolution", tiny, 0, population_size=4, sample_size=4)
    seqs = [[0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1], [2, 0, 2, 2, 0, 2], [0, 1, 3, 0, 1, 0]]
    s.tell(seqs, [0.1, 0.2, 0.9, 0.3])
    for child in s.ask(5):
        assert sum(a != b for a, b in zip(child, seqs[2], strict=True)) == 1


def test_evolution_does_not_repeat_itself_and_its_retries_are_bounded(tiny_space_cls):
    space = tiny_space_cls((2, 3))  # six members
    s = get_strategy("evolution", space, 0, population_size=2, sample_size=1, max_retries=50)
    first = s.ask(6)
    assert len({tuple(t) for t in first}) == 6
    assert len(s.ask(4)) == 4  # exhausted: returns repeats instead of looping forever


def test_random_search_is_uniform(tiny_space_cls):
    space = tiny_space_cls((2, 3))
    counts = {}
    for t in get_strategy("random", space, 0).ask(6000):
        counts[tuple(t)] = counts.get(tuple(t), 0) + 1
    assert len(counts) == 6 and all(850 < c < 1150 for c in counts.values())


# -- the synthetic objective -------------------------------------------------------------------
def test_synthetic_objective_shape_and_determinism(mnasnet_space):
    a, b, c = (SyntheticObjective(mnasnet_space, seed) for seed in (0, 0, 1))
    rng = np.random.default_rng(5)
    tokens = [mnasnet_space.sample_tokens(rng) for _ in range(3000)]
    acc, lat = a.accuracy_latency(tokens)
    assert np.array_equal(a.rewards(tokens), b.rewards(tokens))
    assert not np.array_equal(a.rewards(tokens), c.rewards(tokens))
    assert acc.min() >= 0.5 and acc.max() <= 0.95 and lat.min() > 0
    assert abs(np.median(lat) - 20.0) < 1.0 and 0.1 < lat.std() / np.median(lat) < 0.3
    assert np.corrcoef(acc, lat)[0, 1] > 0.1  # slower tends to be more accurate: a real trade-off
    one = a.evaluate(tokens[0])
    assert one["reward"] == pytest.approx(a.reward(one["accuracy"], one["latency_ms"]))
    assert a(tokens[0]) == pytest.approx(one["reward"]) and a.reward.kind == "soft" and a.target_ms == 20.0


def test_synthetic_optimum_and_errors(tiny, mnasnet_space):
    objective = SyntheticObjective(tiny, 2)
    best_tokens, best = objective.optimum()
    rng = np.random.default_rng(0)
    assert objective(best_tokens) == best >= max(objective(tiny.sample_tokens(rng)) for _ in range(200))
    with pytest.raises(ValueError, match="max_size"):
        SyntheticObjective(mnasnet_space, 0).optimum()
    with pytest.raises(ValueError, match="correlation"):
        SyntheticObjective(tiny, 0, correlation=2)
    with pytest.raises(ValueError, match="token 0"):
        objective([9] * len(tiny.decisions))
