import json
import math

import pytest

from mnas.objectives import Reward


def test_soft_reward_is_accuracy_at_target_and_flat_along_the_papers_tradeoff():
    r = Reward.soft(20)
    assert r(0.75, 20) == pytest.approx(0.75)
    # Doubling latency costs 2**-0.07 ~ 4.7% of the reward (MnasNet section 3).
    assert r(0.75, 40) == pytest.approx(0.75 * 2 ** -0.07)
    assert r(0.75, 10) == pytest.approx(0.75 * 0.5 ** -0.07)
    assert r(0.75, 10) > r(0.75, 20) > r(0.75, 40)
    assert r.kind == "soft" and (r.alpha, r.beta) == (-0.07, -0.07)


def test_hard_reward_ignores_speed_below_target_and_penalises_above():
    r = Reward.hard(20)
    assert r(0.7, 5) == r(0.7, 20) == pytest.approx(0.7)
    assert r(0.7, 40) == pytest.approx(0.35)
    assert r.kind == "hard"


def test_custom_exponents_and_boundary_uses_alpha():
    r = Reward(10, alpha=-0.5, beta=-2)
    assert r.kind == "custom"
    assert r(0.8, 10) == pytest.approx(0.8)
    assert r(0.8, 5) == pytest.approx(0.8 * 0.5 ** -0.5)
    assert r(0.8, 20) == pytest.approx(0.8 * 2 ** -2)


@pytest.mark.parametrize("reward", [Reward.soft(20), Reward.hard(7.5), Reward(3, -0.1, -0.3)])
def test_dict_round_trip_through_json(reward):
    assert Reward.from_dict(json.loads(json.dumps(reward.to_dict()))) == reward


def test_from_dict_short_forms_and_errors():
    assert Reward.from_dict({"kind": "hard", "target_ms": 5}) == Reward.hard(5)
    assert Reward.from_dict({"kind": "soft", "target_ms": 5}) == Reward.soft(5)
    with pytest.raises(ValueError, match="unknown key 'tagret_ms'"):
        Reward.from_dict({"kind": "soft", "tagret_ms": 5})
    with pytest.raises(ValueError, match="missing 'target_ms'"):
        Reward.from_dict({"kind": "soft"})
    with pytest.raises(ValueError, match="needs both 'alpha' and 'beta'"):
        Reward.from_dict({"target_ms": 5, "alpha": -1})
    with pytest.raises(ValueError, match="contradicts"):
        Reward.from_dict({"kind": "hard", "target_ms": 5, "alpha": -0.07, "beta": -0.07})
    with pytest.raises(ValueError, match="kind 'medium'"):
        Reward.from_dict({"kind": "medium", "target_ms": 5})
    with pytest.raises(ValueError, match="expected a dict"):
        Reward.from_dict([5])


@pytest.mark.parametrize("target", [0, -1, math.nan, math.inf, "20", None, True])
def test_bad_target(target):
    with pytest.raises(ValueError, match="target_ms"):
        Reward.soft(target)


@pytest.mark.parametrize("acc", [-0.01, 1.01, 75, math.nan, None, "0.7"])
def test_bad_accuracy(acc):
    with pytest.raises(ValueError, match="accuracy"):
        Reward.soft(20)(acc, 10)


@pytest.mark.parametrize("lat", [0, -3, math.inf, math.nan, None])
def test_bad_latency(lat):
    with pytest.raises(ValueError, match="latency_ms"):
        Reward.soft(20)(0.5, lat)


def test_bad_exponent():
    with pytest.raises(ValueError, match="alpha"):
        Reward(20, alpha=math.nan, beta=-1)


def test_numpy_scalars_accepted_and_reward_is_a_float():
    np = pytest.importorskip("numpy")
    out = Reward.soft(np.float32(20))(np.float64(0.5), np.int64(10))
    assert type(out) is float and out == pytest.approx(0.5 * 0.5 ** -0.07)
