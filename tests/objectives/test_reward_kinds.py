"""The absolute and accuracy rewards, hardness, feasibility, numerics (issue 13 item 10) and stored dicts."""

import json
import math

import numpy as np
import pytest

from mnas.objectives import MAX_EXPONENT, Reward, Target


def test_absolute_reward_is_tunas():
    r = Reward.absolute(20)
    assert r.kind == "absolute" and r.beta == -0.07 and not r.is_hard
    assert r(0.8, 20) == pytest.approx(0.8)
    assert r(0.8, 30) == pytest.approx(0.8 - 0.07 * 0.5)
    assert r(0.8, 10) == pytest.approx(0.8 - 0.07 * 0.5)  # symmetric: pulls towards the target
    assert Reward.absolute(20, beta=-0.5, hard=True).is_hard
    with pytest.raises(ValueError, match="negative"):
        Reward.absolute(20, beta=0.1)


def test_accuracy_reward_has_no_target():
    r = Reward.accuracy()
    assert r.kind == "accuracy" and r.target_ms is None and not r.is_hard
    assert r(0.42) == 0.42 and r(0.42, 1e6) == 0.42
    assert r.feasible(None) and r.feasible(1e9)
    with pytest.raises(ValueError, match="no latency target"):
        Reward(20, form="accuracy")


def test_hardness_and_feasibility():
    assert Reward.hard(20).is_hard and not Reward.soft(20).is_hard
    soft_as_constraint = Reward(20, -0.07, -0.07, constrained=True)
    assert soft_as_constraint.kind == "soft" and soft_as_constraint.is_hard
    assert Reward.hard(20).feasible(20) and not Reward.hard(20).feasible(20.001)
    assert Reward.soft(20).feasible(np.float32(3.0))


@pytest.mark.parametrize("reward", [Reward.accuracy(), Reward.absolute(12), Reward.absolute(12, -1.0, hard=True),
                                    Reward(20, -0.07, -0.07, constrained=True), Reward.hard(0.5)])
def test_every_kind_round_trips(reward):
    assert Reward.from_dict(json.loads(json.dumps(reward.to_dict()))) == reward


def test_dicts_written_before_still_load():
    """Studies stored by earlier versions hold these exact dicts."""
    assert Reward.from_dict({"kind": "soft", "target_ms": 20.0, "alpha": -0.07, "beta": -0.07}) == Reward.soft(20)
    assert Reward.from_dict({"kind": "hard", "target_ms": 7.5, "alpha": 0.0, "beta": -1.0}) == Reward.hard(7.5)
    assert Reward.from_dict({"kind": "custom", "target_ms": 3.0, "alpha": -0.1, "beta": -0.3}) == Reward(3, -0.1, -0.3)


@pytest.mark.parametrize("lat", [5e-324, 1e-300, 1e300, 1.7e308])
@pytest.mark.parametrize("reward", [Reward.soft(20), Reward.hard(20), Reward(20, -MAX_EXPONENT, -MAX_EXPONENT),
                                    Reward(20, MAX_EXPONENT, MAX_EXPONENT), Reward.absolute(1e-3), Reward.accuracy()])
def test_extreme_latencies_give_finite_rewards(reward, lat):
    """Issue 13 item 10: these raised ZeroDivisionError / OverflowError and stranded a trial."""
    assert math.isfinite(reward(0.9, lat)) and reward(0.0, lat) <= reward(0.9, lat)


@pytest.mark.parametrize("alpha, beta", [(-1000, -1), (0, 1000), (-10.5, 0)])
def test_exponents_beyond_the_bound_are_refused(alpha, beta):
    with pytest.raises(ValueError, match="exponent"):
        Reward(20, alpha, beta)
    with pytest.raises(ValueError, match="exponent"):
        Reward.from_dict({"kind": "custom", "target_ms": 20, "alpha": alpha, "beta": beta})


def test_float32_inputs_are_valid():
    out = Reward.hard(np.float32(20))(np.float32(0.75), np.float32(25))
    assert type(out) is float and out == pytest.approx(0.75 * 20 / 25, rel=1e-6)
    assert Reward.absolute(np.float32(20))(np.float32(0.5), np.float64(20)) == pytest.approx(0.5)


@pytest.mark.parametrize("text", ["1e-320ms", "1e-320", "0.0001ms", "2e6ms", "5000s", "1e-10s"])
def test_targets_outside_the_sensible_range_are_refused(text):
    """Issue 13 item 16: `--target 1e-320ms` was accepted and every reward was 0."""
    with pytest.raises(ValueError, match="between 0.001 and 1e\\+06 milliseconds"):
        Target.parse(text)


def test_reward_targets_are_bounded_and_factors_too():
    with pytest.raises(ValueError, match="target_ms"):
        Reward.soft(1e-320)
    with pytest.raises(ValueError, match="factor"):
        Target.parse("5000x mobilenetv2")
    with pytest.raises(ValueError, match="between"):
        Target.parse("2x mobilenetv2").resolve(lambda name: 1e-300)
    assert Target.parse("1ms").ms == 1.0 and Target.parse("0.001ms").ms == 0.001


def test_bad_stored_dicts():
    with pytest.raises(ValueError, match="no target"):
        Reward.from_dict({"kind": "accuracy", "target_ms": 20})
    with pytest.raises(ValueError, match="beta only"):
        Reward.from_dict({"kind": "absolute", "target_ms": 20, "alpha": -0.07, "beta": -0.07})
    with pytest.raises(ValueError, match="True or False"):
        Reward.from_dict({"kind": "soft", "target_ms": 20, "hard": "yes"})
