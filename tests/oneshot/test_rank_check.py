"""Rank check: statistics, latency bands, arch choice, cached standalone training, the whole check."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from mnas.oneshot import rank
from mnas.oneshot.rank import (
    band_groups,
    band_stats,
    choose_archs,
    rank_check,
    rank_stats,
    reference_archs,
    standalone_accuracy,
    top_k_overlap,
)
from mnas.oneshot.sampling import make_predictor
from mnas.space import MnasNetSpace
from mnas.train import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_supernet, tiny_data, tiny_space  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_rank_stats_of_perfect_reversed_and_noisy_rankings():
    truth = np.arange(20.0)
    perfect = rank_stats(truth * 2, truth, n_resamples=200)
    assert perfect["tau"] == pytest.approx(1.0) and perfect["rho"] == pytest.approx(1.0)
    assert perfect["top5_overlap"] == 1.0
    assert rank_stats(-truth, truth, n_resamples=200)["tau"] == pytest.approx(-1.0)
    noisy = rank_stats(truth + np.random.default_rng(0).normal(0, 4, 20), truth, n_resamples=200)
    lo, hi = noisy["tau_ci"]
    assert 0 < lo < noisy["tau"] < hi < 1


def test_top_k_overlap_counts_shared_members():
    assert top_k_overlap(np.array([5, 4, 3, 2, 1.0]), np.array([1, 2, 3, 4, 5.0]), 2) == 0.0
    assert top_k_overlap(np.array([5, 4, 3, 2, 1.0]), np.array([4, 5, 1, 2, 3.0]), 2) == 1.0


def test_bands_are_plus_minus_ten_percent():
    lat = [1.0, 1.05, 1.2, 1.21, 2.0, 2.1, 2.2, 2.3, 5.0]
    groups = band_groups(lat, 0.10, min_size=1)
    for g in groups:
        vals = [lat[i] for i in g]
        assert max(vals) <= min(vals) * 1.1 / 0.9 + 1e-12
    assert sorted(i for g in groups for i in g) == list(range(len(lat)))
    assert band_groups(lat, 0.10, min_size=4) == [[0, 1, 2, 3], [4, 5, 6, 7]]
    stats = band_stats([1, 2, 3, 4], [1, 2, 4, 3], [[0, 1, 2, 3]])
    assert stats["bands"][0]["n"] == 4 and stats["mean_tau"] == pytest.approx(2 / 3)


def test_chosen_archs_are_distinct_and_cover_the_latency_range():
    space = tiny_space()
    predictor = make_predictor(space)
    archs = choose_archs(space, 10, predictor, seed=0, pool=300)
    assert len({str(a) for a in archs}) == 10
    values = sorted(predictor(a) for a in archs)
    pool = [predictor(space.sample(np.random.default_rng(i))) for i in range(300)]
    span = max(pool) - min(pool)
    assert values[0] < min(pool) + 0.25 * span and values[-1] > max(pool) - 0.25 * span
    assert [str(a) for a in choose_archs(space, 10, predictor, seed=0, pool=300)] == [str(a) for a in archs]


def test_reference_models_in_the_space_are_found():
    space = MnasNetSpace(10, 32, width_mult=0.5, act="relu6")
    refs = reference_archs(space)
    assert "mobilenetv2_x0.5" in refs  # exactly MobileNetV2 x0.5 with the 32x32 stride rule
    relu = reference_archs(MnasNetSpace(10, 32, width_mult=0.5))
    assert "mobilenetv2_x0.5@relu" in relu  # the same network with the space's activation


def test_standalone_results_are_cached_per_arch_recipe_and_seed(tmp_path, monkeypatch):
    data = tiny_data()
    space = tiny_space()
    recipe = TrainConfig(steps=2, batch_size=16)
    jobs = [(str(space.sample(0)), 0), (str(space.sample(0)), 1)]
    first = standalone_accuracy(jobs, data, recipe, tmp_path)
    assert len(list(tmp_path.glob("standalone-*.json"))) == 2 and all(r["ok"] for r in first)

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(rank, "_train_and_cache", fail)
    assert standalone_accuracy(jobs, data, recipe, tmp_path) == first
    with pytest.raises(AssertionError, match="trained again"):  # another recipe is another cache entry
        standalone_accuracy(jobs, data, recipe.replace(steps=3), tmp_path)


def test_rank_check_end_to_end_and_resumes_from_its_cache(tmp_path, monkeypatch):
    space, data = tiny_space(), tiny_data()
    net = make_supernet(space)
    recipe = TrainConfig(steps=2, batch_size=16)
    report = rank_check(net, data, n=5, recipe=recipe, out=tmp_path, noise_subset=3, num_images=16,
                        n_resamples=50)
    assert report["n"] == 5 and len(report["archs"]) == 5
    assert -1 <= report["inherited"]["tau"] <= 1 and set(report["predictors"]) == {"macs", "params"}
    assert -1 <= report["inherited_loss"]["tau"] <= 1 and all(a["inherited_loss"] > 0 for a in report["archs"])
    assert report["noise_ceiling"]["n"] == 3 and report["bands_by"] == "macs"
    assert {"icc", "max_tau", "seed_sd", "arch_sd"} <= set(report["noise_ceiling"])
    assert json.loads((tmp_path / "rank-check.json").read_text())["n"] == 5
    monkeypatch.setattr(rank, "_train_and_cache", lambda *a, **k: (_ for _ in ()).throw(AssertionError("retrained")))
    again = rank_check(net, data, n=5, recipe=recipe, out=tmp_path, noise_subset=3, num_images=16, n_resamples=50)
    assert again["inherited"]["tau"] == report["inherited"]["tau"]
    with pytest.raises(ValueError, match="at least 2"):
        rank_check(net, data, n=1, out=tmp_path)


def test_the_cache_is_keyed_by_the_data_not_the_path_it_was_loaded_from(tmp_path, monkeypatch):
    """Regression: the cache key held the data's source path as typed, so the same file loaded as
    `../shared/x.npz` from another folder (or `a/../x.npz`) missed every cached training and
    rank-check trained them all again (hours on CPU)."""
    from mnas.data import load

    x, y = tiny_data().x_train, tiny_data().y_train
    (tmp_path / "d").mkdir()
    np.savez(tmp_path / "d" / "set.npz", x_train=x, y_train=y, x_test=x[:8], y_test=y[:8])
    plain = load(str(tmp_path / "d" / "set.npz"), val_fraction=0.25, seed=0)
    detour = load(str(tmp_path / "d" / ".." / "d" / "set.npz"), val_fraction=0.25, seed=0)
    assert plain.source != detour.source
    recipe = TrainConfig(steps=2, batch_size=16)
    jobs = [(str(tiny_space().sample(0)), 0)]
    first = standalone_accuracy(jobs, plain, recipe, tmp_path / "cache")

    def fail(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(rank, "_train_and_cache", fail)
    assert standalone_accuracy(jobs, detour, recipe, tmp_path / "cache") == first
    other = load(str(tmp_path / "d" / "set.npz"), val_fraction=0.5, seed=0)  # other split: other entries
    with pytest.raises(AssertionError, match="trained again"):
        standalone_accuracy(jobs, other, recipe, tmp_path / "cache")


def test_reliability_bounds_what_any_predictor_can_reach():
    from scipy.stats import kendalltau

    from mnas.oneshot.rank import reliability

    same = reliability([0.3, 0.4, 0.5], [0.3, 0.4, 0.5])
    assert same["icc"] == pytest.approx(1.0) and same["max_tau"] == pytest.approx(1.0) and same["seed_sd"] == 0
    swapped = reliability([0.3, 0.4, 0.3, 0.4], [0.4, 0.3, 0.4, 0.3])  # every difference is the seed's
    assert swapped["icc"] < 0 and swapped["max_tau"] == 0.0 and swapped["arch_sd"] == pytest.approx(0.0)
    # Simulated: architecture spread = seed noise, so ICC = 0.5 and the perfect predictor's tau is 0.5.
    rng = np.random.default_rng(0)
    truth = rng.normal(0.4, 0.03, 4000)
    a, b = truth + rng.normal(0, 0.03, 4000), truth + rng.normal(0, 0.03, 4000)
    r = reliability(a, b)
    assert r["icc"] == pytest.approx(0.5, abs=0.03) and r["seed_sd"] == pytest.approx(0.03, rel=0.05)
    assert kendalltau(truth, a).statistic == pytest.approx(r["max_tau"], abs=0.03)
    with pytest.raises(ValueError, match="at least 2"):
        reliability([0.5], [0.4])


def test_reliability_over_more_seeds_is_the_one_way_icc():
    from mnas.oneshot.rank import reliability, reliability_seeds

    # by hand: means 2 and 5, MSB = 3 * (1.5^2 + 1.5^2) = 13.5, MSW = 4 / 4 = 1, ICC = 12.5 / (13.5 + 2)
    r = reliability_seeds([[1, 2, 3], [4, 5, 6]])
    assert r["k"] == 3 and r["icc"] == pytest.approx(12.5 / 15.5) and r["seed_sd"] == pytest.approx(1.0)
    # two seeds: the same as `reliability`; a model with more seeds contributes only the common ones
    a, b = [0.5, 0.6, 0.55, 0.7], [0.52, 0.58, 0.6, 0.69]
    two = reliability_seeds([[x, y] for x, y in zip(a, b, strict=True)])
    assert {k: two[k] for k in reliability(a, b)} == pytest.approx(reliability(a, b))
    assert reliability_seeds([[0.5, 0.52, 0.9], [0.6, 0.58], [0.55, 0.6], [0.7, 0.69]])["icc"] == pytest.approx(two["icc"])
    with pytest.raises(ValueError, match="two seeds"):
        reliability_seeds([[0.5, 0.6], [0.4]])
