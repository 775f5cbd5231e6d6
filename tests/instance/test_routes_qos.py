"""Routes as text, canonical policies and the QoS knobs (NumPy only)."""

from __future__ import annotations

import numpy as np
import pytest

from mnas.instance.qos import budget_policy, check_qos, policy_ms, threshold_policy
from mnas.instance.routes import (
    DEFAULT_MODULE,
    canonical_route,
    fixed_routes,
    parse_route,
    policy_bits,
    route_modules,
    route_string,
)

SKIP = [False, True, True, False, True]


def test_route_text_round_trips():
    route = (31, 0, 5, 16, 1)
    assert parse_route(route_string(route), 5) == route
    assert route_string((31, 0)) == "v0"


@pytest.mark.parametrize("text, match", [("vz", "found 'z'"), ("", "one character"), ("vvv", "has 3 layers")])
def test_bad_route_text_is_refused(text, match):
    with pytest.raises(ValueError, match=match):
        parse_route(text, 2)


def test_empty_shape_changing_layers_get_the_default_module():
    assert canonical_route((0, 0, 3, 0, 0), SKIP) == (1 << DEFAULT_MODULE, 0, 3, 1 << DEFAULT_MODULE, 0)
    policy = np.zeros((1, 5, 5))
    policy[0, 2, 1] = 1
    assert policy_bits(policy, SKIP).tolist() == [[16, 0, 2, 16, 0]]
    assert route_modules((16, 0, 2))[:3] == [["basic"], [], ["k3e3"]]


def test_fixed_routes_hold_every_module_type():
    routes = fixed_routes(SKIP)
    assert routes["all"] == (31,) * 5 and routes["k3e6"] == (1,) * 5
    assert routes["min"] == (16, 0, 0, 16, 0)


def test_threshold_policy_switches_modules_at_the_threshold():
    probs = np.array([[[0.2, 0.5, 0.7, 0.9, 0.1]]])
    assert threshold_policy(probs, 0.5).tolist() == [[[0, 1, 1, 1, 0]]]
    assert threshold_policy(probs, 0.8).tolist() == [[[0, 0, 0, 1, 0]]]


def test_budget_policy_keeps_within_budget():
    rng = np.random.default_rng(0)
    probs = rng.random((20, 5, 5))
    table = rng.uniform(0.1, 1.0, (5, 5))
    base = table[[0, 3], DEFAULT_MODULE].sum()
    for budget in (base + 0.2, base + 1.0, base + 3.0, 100.0):
        policy = budget_policy(probs, table, SKIP, budget)
        spent = policy_ms(policy, table, SKIP)
        assert np.all(spent <= budget + 1e-9)
        assert np.all(policy[probs < 0.5] == 0)  # only modules the controller favours
        assert np.all(spent >= base - 1e-9)  # the default modules always run
    np.testing.assert_array_equal(budget_policy(probs, table, SKIP, 100.0), threshold_policy(probs, 0.5))


def test_a_budget_below_the_smallest_route_gives_the_smallest_route():
    table = np.ones((5, 5))
    policy = budget_policy(np.full((2, 5, 5), 0.9), table, SKIP, 0.01)
    assert policy.sum() == 0 and policy_ms(policy, table, SKIP).tolist() == [2.0, 2.0]


@pytest.mark.parametrize("threshold, budget, match", [(0.5, 1.0, "not both"), (1.5, None, r"\(0, 1\]"),
                                                       (None, -1.0, "positive")])
def test_bad_qos_is_refused(threshold, budget, match):
    with pytest.raises(ValueError, match=match):
        check_qos(threshold, budget)
