import json

import numpy as np
import pytest

from mnas.objectives import Constraints, hypervolume, parse_bytes, parse_count


@pytest.mark.parametrize("text, value", [("1.5M", 1.5e6), ("300M", 3e8), ("2G", 2e9), ("800k", 8e5), ("12000", 12000.0),
                                         (" 1.5 m ", 1.5e6), (5e5, 5e5)])
def test_parse_count(text, value):
    assert parse_count(text) == value


@pytest.mark.parametrize("text, value", [("256KB", 262144), ("256kib", 262144), ("1.5MB", 1.5 * 2 ** 20), ("4096", 4096),
                                         ("512B", 512), ("2GiB", 2 * 2 ** 30)])
def test_parse_bytes(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "M", "-1M", "1.5X", "0", "inf", None, True, "1.5 M B"])
def test_parse_errors(text):
    with pytest.raises(ValueError, match="count"):
        parse_count(text)


def test_violations_are_relative_excess_per_limit():
    c = Constraints.parse(max_params="1M", max_peak_memory="256KB", max_latency_ms="20ms")
    metrics = {"params": 1.5e6, "peak_memory": 100_000, "latency_ms": np.float32(30.0), "macs": 9e9}
    assert c.violations(metrics) == pytest.approx({"params": 0.5, "peak_memory": 0.0, "latency_ms": 0.5})
    assert c.violation(metrics) == pytest.approx(1.0) and not c.feasible(metrics)
    assert c.feasible({"params": 1e6, "peak_memory": 262144, "latency_ms": 20})
    with pytest.raises(ValueError, match="no 'latency_ms'"):
        c.violation({"params": 1, "peak_memory": 1})
    assert c.feasible({"params": 1, "peak_memory": 1}, partial=True)  # before training: latency unknown
    assert Constraints().feasible({}) and not Constraints()


def test_round_trip_and_errors():
    c = Constraints(max_params=1.5e6, max_macs=3e8)
    assert Constraints.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert Constraints.from_dict(None) == Constraints() == Constraints.from_dict({})
    assert "params <= 1.5e+06" in str(c)
    with pytest.raises(ValueError, match="unknown limit 'max_flops'"):
        Constraints.from_dict({"max_flops": 3})
    with pytest.raises(ValueError, match="max_params"):
        Constraints(max_params=-1)
    with pytest.raises(ValueError, match="finite number"):
        c.violation({"params": float("nan"), "macs": 1})


def test_hypervolume():
    ref = (0.5, 40.0)
    assert hypervolume([], ref) == 0.0
    assert hypervolume([(0.9, 10.0)], ref) == pytest.approx(0.4 * 30)
    two = hypervolume([(0.7, 10.0), (0.9, 20.0)], ref)
    assert two == pytest.approx(0.2 * 10 + 0.4 * 20)
    # dominated and out-of-reference points add nothing
    assert hypervolume([(0.7, 10.0), (0.9, 20.0), (0.6, 25.0), (0.4, 1.0), (0.99, 50.0)], ref) == pytest.approx(two)
    rng = np.random.default_rng(0)
    pts = np.column_stack([rng.uniform(0.5, 1, 30), rng.uniform(1, 40, 30)])
    grid_a, grid_l = np.meshgrid(np.linspace(0.5, 1, 401)[:-1] + 0.5 / 800, np.linspace(0, 40, 401)[:-1] + 0.05)
    covered = ((pts[:, 0][None, None] >= grid_a[..., None]) & (pts[:, 1][None, None] <= grid_l[..., None])).any(-1)
    assert hypervolume(pts.tolist(), ref) == pytest.approx(covered.mean() * 0.5 * 40, rel=0.02)
    with pytest.raises(ValueError, match="reference"):
        hypervolume([(0.9, 1.0)], (0.5,))
