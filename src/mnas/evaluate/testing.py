"""The shared evaluator test suite: subclass `EvaluatorTestSuite` and provide `evaluator` and `space`.

    class TestMyEvaluator(EvaluatorTestSuite):
        @pytest.fixture
        def evaluator(self):
            return MyEvaluator(...)

        @pytest.fixture
        def space(self):
            return MnasNetSpace(10, 8, width_mult=0.25, head_chs=32)

Every Evaluator must pass it; it checks the contract in `Evaluator`'s docstring. Set
`picklable = False` on an evaluator whose job must run in the driver's process (it then only works
with the local executor). Imports pytest, so import this module from tests only.
"""

from __future__ import annotations

import json
import math
import pickle

import pytest

from mnas.evaluate.base import Evaluator, check_result

__all__ = ["EvaluatorTestSuite"]


def _arch(space, i: int = 0):
    import numpy as np

    return space.decode(space.sample_tokens(np.random.default_rng(i)))


class EvaluatorTestSuite:
    """Contract tests for an `Evaluator`; the subclass supplies `evaluator` and `space` fixtures."""

    def test_declares_how_it_works(self, evaluator: Evaluator) -> None:
        assert isinstance(evaluator, Evaluator)
        assert isinstance(evaluator.accuracy_source, str) and evaluator.accuracy_source.strip()
        assert isinstance(evaluator.latency_in_driver, bool)

    def test_job_returns_valid_figures(self, evaluator: Evaluator, space) -> None:
        evaluator.check_space(space)
        arch = _arch(space)
        fn, args = evaluator.job(arch, 7)
        result = check_result(fn(*args), need_latency=not evaluator.latency_in_driver)
        assert result["ok"], result.get("failure")
        assert 0.0 <= result["accuracy"] <= 1.0
        extra = {k: v for k, v in result.items() if k not in ("ok",)}
        json.dumps(extra, default=lambda o: o.tolist())  # what the study stores must be JSON
        if evaluator.latency_in_driver:
            ms, seconds, details = evaluator.measure_latency(arch)
            assert math.isfinite(ms) and ms > 0 and seconds >= 0
            json.dumps(details)

    def test_job_pickles_for_other_processes(self, evaluator: Evaluator, space) -> None:
        if not getattr(evaluator, "picklable", True):
            pytest.skip("this evaluator runs its jobs in the driver")
        fn, args = evaluator.job(_arch(space), 0)
        fn2, args2 = pickle.loads(pickle.dumps((fn, args)))
        assert callable(fn2) and len(args2) == len(args)

    def test_same_seed_same_accuracy(self, evaluator: Evaluator, space) -> None:
        arch = _arch(space, 1)
        runs = []
        for _ in range(2):
            fn, args = evaluator.job(arch, 123)
            runs.append(check_result(fn(*args), need_latency=not evaluator.latency_in_driver)["accuracy"])
        assert runs[0] == pytest.approx(runs[1], abs=1e-9)

    def test_identity_is_json_and_stable(self, evaluator: Evaluator) -> None:
        identity = evaluator.identity()
        assert json.loads(json.dumps(identity)) == identity == evaluator.identity()
        described = evaluator.describe()
        json.dumps(described)
        assert described.get("accuracy_source") == evaluator.accuracy_source

    def test_a_search_records_the_accuracy_source(self, evaluator: Evaluator, space) -> None:
        from mnas.loop import Budget, create_study  # a test-only import from the layer above
        from mnas.objectives import Reward

        study = create_study(None, space=space, reward=Reward.accuracy(), seed=0)
        result = study.optimize(evaluator, strategy="random", budget=Budget(trials=2))
        assert result.trials == 2
        for trial in study.trials:
            assert trial.state.value == "complete", trial.failure
            assert trial.accuracy_source == evaluator.accuracy_source
            assert isinstance(trial.extra.get("seed"), int)
