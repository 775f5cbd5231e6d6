"""Issue 22, part 1: a soft latency reward is a reward, not a constraint.

Before the fix the loop told every strategy `violation = max(0, LAT/T - 1)` whenever the study had a
target, so evolution, replay, predictor, tpe, gp and nsga2 ranked candidates under the target first
even under `Reward.soft(T)` or `Reward(T, alpha=0, beta=0)` (accuracy alone, written with a target).
Now only a hard reward (`reward.is_hard`) and the study's limits are constraints.

The landscape: ten layers, each a 1x1 conv, a 3x3 conv or a 1x1 depthwise-separable conv. Accuracy
and latency both grow with the number of 3x3 convs; a target of 4 ms admits at most three of them.
The accuracy-only and soft optima (all 3x3) are far above the target.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mnas.loop import Budget, search
from mnas.objectives import Constraints, Reward
from mnas.space import Arch, BlockSpec, Decision, SearchSpace

LAYERS = 10
TARGET_MS = 4.0
_OPTUNA = importlib.util.find_spec("optuna") is not None
_needs_optuna = pytest.mark.skipif(not _OPTUNA, reason="needs the optional package optuna")
# Small settings that keep each search to a few seconds on a busy 2-core machine (the defect does not
# depend on them).
OPTIONS = {
    "evolution": {"population_size": 10, "sample_size": 3},
    "replay": {"batch_size": 5},
    "predictor": {"initial": 8, "candidates": 60, "epochs": 40, "ensemble": 3},
    "tpe": {"n_startup_trials": 8},
    "gp": {"n_startup_trials": 6},
    "nsga2": {"population_size": 8},
}
TRIALS = {"evolution": 60, "replay": 60, "predictor": 40, "tpe": 50, "gp": 18, "nsga2": 48}
NAMES = [pytest.param(n, marks=_needs_optuna) if n in ("tpe", "gp", "nsga2") else n for n in OPTIONS]


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """replay's controller and gp's Gaussian process are tiny: one torch thread is fastest."""


class ConvSpace(SearchSpace):
    decisions = tuple(Decision(f"layer{i}", ("conv1x1", "conv3x3", "ds1x1")) for i in range(LAYERS))

    def decode(self, tokens):
        blocks = []
        for t in self.check_tokens(tokens):
            op, kernel = (("conv", 1), ("conv", 3), ("ds", 1))[t]
            blocks.append(BlockSpec(op, 1, kernel, 1, 1, 8, 8))
        return Arch(tuple(blocks), stem_stride=1, head_chs=0, dropout=0.0)

    def settings(self):
        return {"issue-22": True}


def accuracy_latency(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, LAYERS) tokens -> accuracy and latency (ms): both grow with the number of 3x3 convs (a little
    with each depthwise one too; the position weights break ties)."""
    k3, ds = (tokens == 1).astype(float), (tokens == 2).astype(float)
    acc = 0.5 + (0.04 * k3 + 0.01 * ds + 0.0005 * np.arange(LAYERS) * (k3 - ds)).sum(1)
    return acc, 1.0 + k3.sum(1) + 0.25 * ds.sum(1)


def figures(arch: Arch) -> dict:
    tokens = [1 if b.kernel_size == 3 else 2 if b.op == "ds" else 0 for b in arch.blocks]
    acc, lat = accuracy_latency(np.array([tokens]))
    return {"accuracy": float(acc[0]), "latency_ms": float(lat[0])}


def run(name: str, reward: Reward, trials: int | None = None, **kw):
    study = search(ConvSpace(), evaluate=figures, reward=reward, strategy=name, strategy_options=OPTIONS[name],
                   budget=Budget(trials=trials or TRIALS[name]), seed=0, **kw)
    return sorted(study.trials, key=lambda t: t.number)


@pytest.fixture(scope="module")
def landscape():
    """The best soft reward within the target and the soft optimum, by enumeration (59,049 members)."""
    grids = np.meshgrid(*[np.arange(3)] * LAYERS, indexing="ij")
    acc, lat = accuracy_latency(np.stack([g.ravel() for g in grids], 1))
    soft = acc * (lat / TARGET_MS) ** -0.07  # Reward.soft(TARGET_MS), on every member at once
    return {"best_within": float(soft[lat <= TARGET_MS].max()), "optimum": float(soft.max())}


@pytest.mark.parametrize("name", NAMES)
def test_accuracy_written_with_a_target_is_searched_as_accuracy(name):
    """`Reward(T, 0, 0)` is accuracy alone: the search must be the one `Reward.accuracy()` makes."""
    with_target = run(name, Reward(TARGET_MS, 0.0, 0.0))
    plain = run(name, Reward.accuracy())
    assert [t.arch for t in with_target] == [t.arch for t in plain]
    assert [t.reward for t in with_target] == [t.reward for t in plain]
    assert max(t.accuracy for t in with_target) == max(t.accuracy for t in plain)


@pytest.mark.parametrize("name", NAMES)
def test_a_soft_reward_is_optimised_not_kept_under_its_target(name, landscape):
    """Under `Reward.soft(T)` the later proposals go where the reward is, far above T; before the fix
    they were drawn back under T, where no member scores above `best_within`."""
    trials = run(name, Reward.soft(TARGET_MS))
    later = trials[len(trials) // 2:]
    assert np.mean([t.latency_ms > TARGET_MS for t in later]) > 0.7
    assert np.mean([t.reward for t in later]) > landscape["best_within"] + 0.03
    if name != "nsga2":  # nsga2 searches the (accuracy, latency) front, not the reward
        assert max(t.reward for t in trials) > landscape["best_within"] + 0.1


@_needs_optuna
def test_nsga2_searches_the_whole_front_under_a_soft_reward():
    """nsga2 ignores the reward; a soft target is no constraint, so its search is the unconstrained one."""
    soft = run("nsga2", Reward.soft(TARGET_MS))
    plain = run("nsga2", Reward.accuracy())
    assert [t.arch for t in soft] == [t.arch for t in plain]


# -- hard rewards and limits stay constraints ---------------------------------------------------------------
@pytest.mark.parametrize("reward, limits", [
    (Reward.hard(TARGET_MS), None),
    (Reward.absolute(TARGET_MS, hard=True), None),
    (Reward(TARGET_MS, 0.0, 0.0, constrained=True), None),
    (Reward.soft(TARGET_MS), Constraints(max_latency_ms=TARGET_MS)),
    (Reward.accuracy(), Constraints(max_latency_ms=TARGET_MS)),
])
def test_hard_rewards_and_latency_limits_keep_evolution_under_the_target(reward, limits):
    trials = run("evolution", reward, constraints=limits)
    later = trials[len(trials) // 2:]
    assert np.mean([t.latency_ms <= TARGET_MS for t in later]) > 0.5  # random search: 23% of the space


# -- the predictor takes the study's latency limit ---------------------------------------------------------
@pytest.mark.parametrize("reward, limits", [
    (Reward.hard(TARGET_MS), None),
    (Reward.soft(TARGET_MS), Constraints(max_latency_ms=TARGET_MS)),
])
def test_predictor_takes_the_studys_latency_limit(reward, limits):
    """Under a hard reward (or a latency limit) the predictor models latency against the study's limit,
    as it did when `strategy_options={"target_ms": T}` was given by hand."""
    by_hand = search(ConvSpace(), evaluate=figures, reward=reward, strategy="predictor",
                     strategy_options={**OPTIONS["predictor"], "target_ms": TARGET_MS},
                     budget=Budget(trials=30), seed=0, constraints=limits)
    found = run("predictor", reward, trials=30, constraints=limits)
    assert [t.arch for t in found] == [t.arch for t in sorted(by_hand.trials, key=lambda t: t.number)]


def test_predictor_takes_no_limit_from_a_soft_reward():
    from mnas.strategies import get_strategy

    strategy = get_strategy("predictor", ConvSpace(), 0, **OPTIONS["predictor"])
    search(ConvSpace(), evaluate=figures, reward=Reward.soft(TARGET_MS), strategy=strategy, budget=Budget(trials=2))
    assert strategy.latency_limit_ms is None
    strategy = get_strategy("predictor", ConvSpace(), 0, **OPTIONS["predictor"])
    search(ConvSpace(), evaluate=figures, reward=Reward.hard(TARGET_MS), strategy=strategy, budget=Budget(trials=2),
           constraints=Constraints(max_latency_ms=3.0))
    assert strategy.latency_limit_ms == 3.0  # the tighter of the hard target and the limit
    assert "latency_limit_ms" not in strategy.hyperparameters()  # the study's, not the strategy's: not stored


# -- what the loop tells -------------------------------------------------------------------------------------
@pytest.mark.parametrize("reward, violation, limit", [
    (Reward.soft(4.0), 0.0, None), (Reward(4.0, 0.0, 0.0), 0.0, None), (Reward(4.0, -0.07, -5.0), 0.0, None),
    (Reward.absolute(4.0), 0.0, None), (Reward.accuracy(), 0.0, None),
    (Reward.hard(4.0), 0.5, 4.0), (Reward.absolute(4.0, hard=True), 0.5, 4.0),
    (Reward(4.0, -0.07, -0.07, constrained=True), 0.5, 4.0),
])
def test_only_a_hard_reward_makes_its_target_a_constraint(reward, violation, limit):
    from mnas.loop.runner import latency_limit_ms, strategy_infos  # here: the other tests run without them

    info = strategy_infos(reward, None, 0.8, 6.0)
    assert info["violation"] == pytest.approx(violation) and info["feasible"] is (violation == 0.0)
    assert latency_limit_ms(reward) == limit


def test_limits_are_constraints_under_any_reward():
    from mnas.loop.runner import latency_limit_ms, strategy_infos

    limits = Constraints(max_params=1000, max_latency_ms=5.0, max_peak_memory=100)
    info = strategy_infos(Reward.soft(4.0), limits, 0.8, 6.0, params=1500, peak_memory=50)
    assert info["violation"] == pytest.approx(0.2 + 0.5) and not info["feasible"]
    assert strategy_infos(Reward.hard(4.0), limits, 0.8, 6.0)["violation"] == pytest.approx(0.5 + 0.2)
    assert strategy_infos(Reward.soft(4.0), limits, None, None)["feasible"]  # a failed trial: nothing known
    assert latency_limit_ms(Reward.soft(4.0), limits) == 5.0 and latency_limit_ms(Reward.hard(4.0), limits) == 4.0
