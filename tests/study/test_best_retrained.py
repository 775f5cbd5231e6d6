"""`Study.best()` and the front among trials retrained with different numbers of seeds.

Regression: after `mnas search --retrain-top 3` and then `--retrain-top 2 --retrain-seeds 3`, the third
network's stale 1-seed retraining stayed in the study and competed with the two 3-seed means in `best()`
(only a 1-seed result of the *same* network was superseded), so one lucky seed could name the pick."""

from __future__ import annotations

from mnas.study import Study


def _study() -> tuple[Study, dict[str, int]]:
    """Three search trials (inherited accuracy): c at 1 ms, a at 2 ms, b at 3 ms."""
    study = Study(None)
    search = {}
    for i, (arch, ms) in enumerate((("a", 2.0), ("b", 3.0), ("c", 1.0))):
        n = study.storage.create_trial([i], arch, extra={"accuracy_source": "supernet"}, latency_ms=ms)
        study.storage.complete_trial(n, 0.5, ms, 0.5)
        search[arch] = n
    return study, search


def _retrained(study: Study, source: int, accuracy: float, seeds: int) -> int:
    """A retrained trial as `mnas.loop.retrain` records it (with "seeds" when more than one)."""
    src = study.storage.get_trial(source)
    extra = {"accuracy_source": "standalone", "retrained_from": source}
    if seeds > 1:
        extra["seeds"] = list(range(seeds))
    n = study.storage.create_trial(src.tokens, src.arch, extra=extra, latency_ms=src.latency_ms)
    study.storage.complete_trial(n, accuracy, src.latency_ms, accuracy)
    return n


def test_a_stale_single_training_of_another_network_does_not_beat_the_means_over_more_seeds():
    study, s = _study()
    _retrained(study, s["a"], 0.64, 1), _retrained(study, s["b"], 0.62, 1)  # --retrain-top 3: one seed each,
    c1 = _retrained(study, s["c"], 0.70, 1)                                   # c's the luckiest
    assert study.best().number == c1
    a3, b3 = _retrained(study, s["a"], 0.63, 3), _retrained(study, s["b"], 0.65, 3)  # --retrain-top 2 --retrain-seeds 3
    assert study.best().number == b3
    assert study.best(target_ms=10.0).number == b3
    assert {t.number for t in study.pareto_front()} == {a3, b3}


def test_a_single_training_wins_only_where_no_trial_retrained_with_more_seeds_qualifies():
    study, s = _study()
    c1 = _retrained(study, s["c"], 0.70, 1)
    _retrained(study, s["a"], 0.60, 3)
    assert study.best(target_ms=1.5).number == c1  # only c is within 1.5 ms: its one training is the answer
    assert study.best(target_ms=1.5).extra.get("seeds") is None  # and the trial says it is one seed's


def test_the_report_names_the_trials_best_and_the_front_name():
    """Regression: `mnas report` kept "any retrained trial" after best() moved to the most seeds, so the
    report's best and front named the stale single training where best() and export --best did not."""
    from mnas.reports.data import best_under_target, pareto_data, report_summary

    study, s = _study()
    _retrained(study, s["a"], 0.64, 1), _retrained(study, s["b"], 0.62, 1)
    _retrained(study, s["c"], 0.70, 1)
    _retrained(study, s["a"], 0.63, 3), _retrained(study, s["b"], 0.65, 3)
    trials = study.trials
    summary = report_summary(trials, {}, target_ms=10.0)
    best = summary["best"]["number"]
    assert best == study.best().number
    assert best_under_target(trials, 10.0).number == study.best(target_ms=10.0).number
    assert {p.number for p in pareto_data(trials).points if p.on_front} == {t.number for t in study.pareto_front()}


def test_search_says_when_an_earlier_retraining_with_more_seeds_stays_the_best():
    """Regression: --retrain-top 2 --retrain-seeds 3, then --retrain-top 3 (one seed): the console printed
    this round's pick while best() (and so export --best and the report) kept an earlier 3-seed trial."""
    from mnas.cli.retrain_opts import earlier_best_note

    study, s = _study()
    _retrained(study, s["a"], 0.63, 3)
    b3 = _retrained(study, s["b"], 0.65, 3)
    _retrained(study, s["a"], 0.64, 1), _retrained(study, s["b"], 0.62, 1)
    c1 = _retrained(study, s["c"], 0.70, 1)  # this round's pick
    note = earlier_best_note(study, c1)
    assert note is not None and f"trial {b3}" in note and "3 seeds" in note and f"not trial {c1}" in note
    assert earlier_best_note(study, b3) is None  # the pick is the best: nothing to say
