"""The report's data functions: Pareto points and front, history, top rows, summary (no matplotlib)."""

import math
import random

import pytest

from mnas.objectives import dominates
from mnas.reports import best_under_target, history_data, pareto_data, report_summary, study_target_ms, top_rows
from mnas.study import InMemoryStorage, Study

ARCH = "r1_k3_s11_e1_i8_o8 | s1_h0_d0.0_relu"


def make_study(n=40, seed=0, fail_every=7, target=20.0):
    """A study with random (accuracy, latency) trials, every `fail_every`-th failed, one left running."""
    rng = random.Random(seed)
    storage = InMemoryStorage()
    storage.set_meta("target_ms", target)
    for i in range(n):
        number = storage.create_trial([i], f"{ARCH} #{i}")
        if fail_every and i % fail_every == fail_every - 1:
            storage.fail_trial(number, f"NaN loss in trial {i}")
            continue
        acc = round(rng.uniform(0.5, 0.9), 2)  # rounded: ties in accuracy happen
        lat = round(rng.uniform(5, 40), 1)
        storage.complete_trial(number, acc, lat, acc * (lat / target) ** -0.07, params=1000 + i, macs=10_000 + i,
                               train_seconds=float(i))
    storage.create_trial([n], "running")
    return Study(storage)


def test_front_is_exactly_the_non_dominated_points():
    for seed in range(5):
        trials = make_study(seed=seed).trials
        data = pareto_data(trials, 20.0)
        pts = {p.number: (p.accuracy, p.latency_ms) for p in data.points}
        brute = {n for n, p in pts.items() if not any(dominates(q, p) for m, q in pts.items() if m != n)}
        assert {p.number for p in data.front} == brute
        assert {p.number for p in data.points if p.on_front} == brute
        lats = [p.latency_ms for p in data.front]
        accs = [p.accuracy for p in data.front]
        assert lats == sorted(lats) and accs == sorted(accs)  # the step line's order


def test_points_leave_out_failed_and_running_but_count_them():
    trials = make_study(n=40, fail_every=7).trials
    data = pareto_data(trials, 20.0)
    assert data.n_failed == 5 and data.n_running == 1
    assert len(data.points) == 35
    assert all(t.state.value == "complete" for t in trials if t.number in {p.number for p in data.points})


def test_best_under_target_is_the_most_accurate_within_it():
    trials = make_study().trials
    data = pareto_data(trials, 20.0)
    under = [p for p in data.points if p.latency_ms <= 20.0]
    assert data.best_under.accuracy == max(p.accuracy for p in under)
    assert data.best_under.on_front  # the best under a target is always on the front
    assert best_under_target(trials, 20.0).number == data.best_under.number
    assert best_under_target(trials, 1.0) is None and pareto_data(trials, 1.0).best_under is None
    assert best_under_target(trials, None) is None


def test_history_running_best_and_failed_marks():
    trials = make_study().trials
    h = history_data(trials)
    assert list(h.numbers) == sorted(h.numbers) and len(h.numbers) == len(h.rewards) == len(h.running_best)
    assert list(h.running_best) == [max(h.rewards[: i + 1]) for i in range(len(h.rewards))]
    assert h.failed == (6, 13, 20, 27, 34)
    assert h.best_number == h.numbers[h.rewards.index(max(h.rewards))]


def test_top_rows_are_ranked_by_reward_and_limited():
    trials = make_study().trials
    rows = top_rows(trials, 10, target_ms=20.0)
    assert len(rows) == 10
    rewards = [r["reward"] for r in rows]
    assert rewards == sorted(rewards, reverse=True)
    assert rewards[0] == max(t.reward for t in trials if t.reward is not None)
    r = rows[0]
    assert set(r) >= {"number", "arch", "accuracy", "latency_ms", "reward", "params", "macs", "train_seconds", "state"}
    assert r["under_target"] == (r["latency_ms"] <= 20.0)
    assert len(top_rows(trials, 1000)) == 35 and top_rows(trials, 0) == []
    with pytest.raises(ValueError, match="rows"):
        top_rows(trials, -1)


def test_summary_counts_best_and_target_from_meta():
    study = make_study()
    s = report_summary(study.trials, study.meta)
    assert (s["n_trials"], s["n_complete"], s["n_failed"], s["n_running"]) == (41, 35, 5, 1)
    assert s["target_ms"] == 20.0
    assert s["best"]["number"] == study.best().number
    assert s["best_under_target"]["number"] == study.best(20.0).number
    assert s["pareto_front"] == [t.number for t in study.pareto_front()]
    assert report_summary(study.trials, study.meta, target_ms=1.0)["best_under_target"] is None


def test_target_from_config_when_no_target_meta():
    assert study_target_ms({"config": {"target_ms": 12.5}}) == 12.5
    assert study_target_ms({"config": {"reward": {"target_ms": 8}}}) == 8.0
    assert study_target_ms({"target_ms": 3.0, "config": {"target_ms": 12.5}}) == 3.0
    assert study_target_ms({"target_ms": "fast"}) is None and study_target_ms({}) is None


def test_empty_and_non_finite_studies():
    empty = Study(InMemoryStorage())
    data = pareto_data(empty.trials, 20.0)
    assert data.points == () and data.front == () and data.best_under is None
    assert history_data(empty.trials).numbers == ()
    s = report_summary(empty.trials, {})
    assert s["n_complete"] == 0 and s["best"] is None and s["target_ms"] is None

    storage = InMemoryStorage()
    for lat in (5.0, math.inf):
        storage.complete_trial(storage.create_trial([0], ARCH), 0.5, lat, 0.5)
    data = pareto_data(Study(storage).trials)
    assert len(data.points) == 1 and data.n_skipped == 1


def test_a_retrained_trial_is_the_reports_best_as_it_is_study_best():
    study = make_study()
    storage = study.storage
    source = min(study.complete_trials, key=lambda t: t.accuracy)  # a weak search trial under the target
    number = storage.create_trial([999], source.arch)
    storage.complete_trial(number, 0.3, source.latency_ms, 0.3, extra={"accuracy_source": "standalone",
                                                                        "retrained_from": source.number})
    s = report_summary(study.trials, study.meta)
    assert study.best().number == number and study.best(40.0).number == number
    assert s["best"]["number"] == number  # real accuracy over inherited, even when lower
    assert best_under_target(study.trials, 40.0).number == number


def test_the_front_is_on_one_accuracy_scale_the_retrained_trials_when_there_are_any(tmp_path):
    # Stop 17's supernet search drew inherited scores (0.09-0.18) and retrained accuracies (0.3) on one
    # front: a fast trial with a 0.15 inherited score sat on the front beside the retrained ones.
    storage = InMemoryStorage()
    storage.set_meta("target_ms", 1.0)
    scores = [(0.15, 0.3), (0.18, 0.6), (0.12, 0.2), (0.17, 0.9)]  # inherited: (accuracy, latency)
    for i, (acc, lat) in enumerate(scores):
        storage.complete_trial(storage.create_trial([i], f"{ARCH} #{i}"), acc, lat, acc,
                               extra={"accuracy_source": "supernet"})
    retrained = []
    for i, (acc, lat) in enumerate([(0.34, 0.6), (0.31, 0.9)]):
        n = storage.create_trial([10 + i], f"{ARCH} #r{i}")
        storage.complete_trial(n, acc, lat, acc, extra={"accuracy_source": "standalone", "retrained_from": 1 + 2 * i})
        retrained.append(n)
    study = Study(storage)
    assert [t.number for t in study.pareto_front()] == retrained[:1]  # #r1 is slower and worse than #r0
    data = pareto_data(study.trials, 1.0)
    assert [p.number for p in data.front] == retrained[:1] and data.front_source == "standalone"
    assert {p.source for p in data.points} == {"supernet", "standalone"}
    s = report_summary(study.trials, study.meta)
    assert s["pareto_front"] == retrained[:1] and s["pareto_front_source"] == "standalone"
    assert [r["on_front"] for r in top_rows(study.trials) if r["number"] in retrained] == [True, False]
    from mnas.reports.plots import plot_pareto

    assert plot_pareto(data, tmp_path / "p.png").stat().st_size > 0
    # A search without retrained trials keeps one front over all of them, as before.
    plain = InMemoryStorage()
    for i, (acc, lat) in enumerate(scores):
        plain.complete_trial(plain.create_trial([i], f"{ARCH} #{i}"), acc, lat, acc, extra={"accuracy_source": "supernet"})
    assert pareto_data(Study(plain).trials).front_source is None
    assert [t.number for t in Study(plain).pareto_front()] == [2, 0, 1]


def test_a_front_of_likelihood_scores_is_labelled_so(tmp_path):
    # --inherited-score likelihood: the scores are exp(-cross-entropy), and the plot must not call them accuracy
    storage = InMemoryStorage()
    for i, (score, lat) in enumerate([(0.30, 5.0), (0.35, 7.0)]):
        n = storage.create_trial([i], f"{ARCH} #{i}")
        storage.complete_trial(n, score, lat, score, extra={"score_metric": "likelihood", "inherited_accuracy": 0.5})
    trials = Study(storage).trials
    assert pareto_data(trials).score == "likelihood"
    assert pareto_data(make_study().trials).score == "accuracy"
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot as plt

    from mnas.reports.plots import plot_pareto

    seen = []
    real = plt.Figure.savefig
    plt.Figure.savefig = lambda fig, *a, **k: seen.append(fig.axes[0].get_ylabel()) or real(fig, *a, **k)
    try:
        plot_pareto(pareto_data(trials), tmp_path / "p.png")
    finally:
        plt.Figure.savefig = real
    assert seen and "likelihood" in seen[0]
    # a retrained trial on top: the front is top-1, and the hollow search points say they are likelihoods
    n = storage.create_trial([9], f"{ARCH} #9")
    storage.complete_trial(n, 0.6, 6.0, 0.6, extra={"accuracy_source": "standalone", "retrained_from": 1})
    legends = []
    plt.Figure.savefig = lambda fig, *a, **k: legends.append(
        [t.get_text() for t in fig.axes[0].get_legend().get_texts()]) or real(fig, *a, **k)
    try:
        data = pareto_data(Study(storage).trials)
        assert data.score == "accuracy" and data.front_source == "standalone"
        plot_pareto(data, tmp_path / "q.png")
    finally:
        plt.Figure.savefig = real
    assert any("search score: inherited likelihood x 100, not retrained" in t for t in legends[0])
