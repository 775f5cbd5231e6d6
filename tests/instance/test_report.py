"""Report data: the single-architecture front, best single at a latency, routes per class, plots."""

from __future__ import annotations

import pytest

from mnas.instance.report import (
    best_single_at,
    plot_route_distribution,
    plot_tradeoff,
    route_distribution,
    single_front,
    tradeoff_data,
)

SINGLES = [{"label": "a", "accuracy": 0.6, "latency_ms": 1.0}, {"label": "b", "accuracy": 0.55, "latency_ms": 2.0},
           {"label": "c", "accuracy": 0.7, "latency_ms": 3.0}]


def test_front_drops_dominated_architectures():
    assert [p["label"] for p in single_front(SINGLES)] == ["a", "c"]


def test_best_single_at_a_latency():
    assert best_single_at(SINGLES, 2.5)["label"] == "a"
    assert best_single_at(SINGLES, 3.0)["label"] == "c"
    assert best_single_at(SINGLES, 0.5) is None


def test_tradeoff_compares_each_instance_point_with_the_best_single():
    data = tradeoff_data([{"label": "t0.5", "accuracy": 0.65, "latency_ms": 2.0},
                          {"label": "fast", "accuracy": 0.5, "latency_ms": 0.5}], SINGLES)
    first, second = data["instance"]
    assert first["best_single"] == "a" and first["accuracy_gain"] == pytest.approx(0.05)
    assert second["best_single"] is None and second["accuracy_gain"] is None
    with pytest.raises(ValueError, match="lacks 'latency_ms'"):
        tradeoff_data([{"label": "x", "accuracy": 0.5}], SINGLES)


def test_route_distribution_counts_routes_per_class():
    d = route_distribution(["r1", "r1", "r2", "r3", "r1"], [0, 1, 1, 0, 0], ["x", "y"], top=2)
    assert d["routes"] == ["r1", "r2", "other"] and d["distinct"] == 3
    assert d["counts"] == [[2, 0, 1], [1, 1, 0]]
    with pytest.raises(ValueError, match="one route per image"):
        route_distribution(["r1"], [0, 1], ["x", "y"])


def test_renderers_write_png(tmp_path):
    pytest.importorskip("matplotlib")
    data = tradeoff_data([{"label": "t0.5", "accuracy": 0.65, "latency_ms": 2.0}], SINGLES,
                         [{"label": "MobileNetV2", "accuracy": 0.6, "latency_ms": 1.5}])
    for path in (plot_tradeoff(data, tmp_path / "t.png"),
                 plot_route_distribution(route_distribution(["r1", "r2"], [0, 1], ["x", "y"]), tmp_path / "r.png")):
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
