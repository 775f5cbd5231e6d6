"""The shared storage test suite: subclass `StorageTestSuite` and provide a `storage` fixture.

    class TestMyStorage(StorageTestSuite):
        @pytest.fixture
        def storage(self, tmp_path):
            yield MyStorage(tmp_path / "study")

Every Storage implementation must pass it; it checks the contract in `Storage`'s docstring.
Imports pytest, so import this module from tests only.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from mnas.study.storage import Storage, StudyBusyError
from mnas.study.study import Study
from mnas.study.trial import Trial, TrialState

__all__ = ["StorageTestSuite"]


class _FakeArch:
    """Stands in for `mnas.space.Arch`: storages only need its canonical text, via str()."""

    def __str__(self) -> str:
        return "r1_k3_s11_e1_i32_o16 | s2_h1280_d0.2_relu"


class StorageTestSuite:
    """Contract tests for a `Storage`; the subclass supplies the `storage` fixture."""

    def test_create_numbers_in_order_and_running(self, storage: Storage) -> None:
        numbers = [storage.create_trial([i, 1], f"a{i}") for i in range(3)]
        assert numbers == [0, 1, 2]
        t = storage.get_trial(1)
        assert isinstance(t, Trial)
        assert (t.number, t.state, t.tokens, t.arch) == (1, TrialState.RUNNING, (1, 1), "a1")
        assert t.started_at is not None and t.finished_at is None and t.accuracy is None

    def test_arch_object_stored_as_its_text(self, storage: Storage) -> None:
        n = storage.create_trial([0], _FakeArch())
        assert storage.get_trial(n).arch == str(_FakeArch())

    def test_complete_stores_results_and_merges_extra(self, storage: Storage) -> None:
        n = storage.create_trial((2, 0), "a", params=1000, extra={"seed": 1, "note": "x"})
        storage.update_trial(n, latency_ms=4.5, latency_seconds=2.0)
        storage.complete_trial(n, accuracy=0.75, latency_ms=5.0, reward=0.7, macs=123, train_seconds=9.5,
                               extra={"note": "y", "epochs": 2})
        t = storage.get_trial(n)
        assert t.state is TrialState.COMPLETE and t.is_finished
        assert (t.accuracy, t.latency_ms, t.reward, t.params, t.macs) == (0.75, 5.0, 0.7, 1000, 123)
        assert (t.train_seconds, t.latency_seconds) == (9.5, 2.0)
        assert t.extra == {"seed": 1, "note": "y", "epochs": 2}
        assert t.finished_at >= t.started_at and t.duration >= 0
        assert t.failure is None

    def test_fail_keeps_reason_and_partial_results(self, storage: Storage) -> None:
        n = storage.create_trial([1], "a")
        storage.fail_trial(n, "NaN loss at epoch 1", latency_ms=3.0, extra={"loss": math.nan})
        t = storage.get_trial(n)
        assert (t.state, t.failure, t.latency_ms, t.accuracy) == (TrialState.FAILED, "NaN loss at epoch 1", 3.0, None)
        assert math.isnan(t.extra["loss"])

    @pytest.mark.parametrize("finish", ["complete", "fail", "requeue"])
    def test_finished_trial_never_changes(self, storage: Storage, finish: str) -> None:
        n = storage.create_trial([1], "a")
        if finish == "complete":
            storage.complete_trial(n, 0.5, 2.0, 0.4)
        elif finish == "fail":
            storage.fail_trial(n, "boom")
        else:
            storage.requeue_running()
        before = storage.get_trial(n)
        for write in (lambda: storage.complete_trial(n, 0.9, 1.0, 0.9), lambda: storage.fail_trial(n, "again"),
                      lambda: storage.update_trial(n, params=5, extra={"x": 1})):
            with pytest.raises(ValueError, match="never changes"):
                write()
        assert storage.get_trial(n) == before

    def test_bad_input_is_a_value_error(self, storage: Storage) -> None:
        n = storage.create_trial([1], "a")
        bad = [
            (lambda: storage.get_trial(99), "no trial 99"),
            (lambda: storage.complete_trial(99, 0.1, 1.0, 0.1), "no trial 99"),
            (lambda: storage.update_trial(n, colour="red"), "unknown trial attribute 'colour'"),
            (lambda: storage.complete_trial(n, math.nan, 1.0, 0.1), "accuracy is NaN"),
            (lambda: storage.complete_trial(n, None, 1.0, 0.1), "needs accuracy"),
            (lambda: storage.update_trial(n, params=-1), "params"),
            (lambda: storage.update_trial(n, latency_ms="fast"), "latency_ms"),
            (lambda: storage.update_trial(n, extra=[1]), "extra must be a dict"),
            (lambda: storage.update_trial(n, extra={"f": object()}), "not JSON-serialisable"),
            (lambda: storage.create_trial("12", "a"), "tokens"),
            (lambda: storage.create_trial([1.5], "a"), "tokens"),
            (lambda: storage.create_trial([1], "  "), "architecture"),
            (lambda: storage.get_trials("done"), "unknown trial state 'done'"),
        ]
        for call, message in bad:
            with pytest.raises(ValueError, match=message):
                call()
        assert storage.get_trial(n).state is TrialState.RUNNING and storage.count_trials() == 1

    def test_get_trials_filters_by_state_in_number_order(self, storage: Storage) -> None:
        for i in range(6):
            storage.create_trial([i], f"a{i}")
        for i in (4, 0, 2):
            storage.complete_trial(i, 0.1 * i, 1.0, 0.1 * i)
        storage.fail_trial(3, "x")
        assert [t.number for t in storage.get_trials()] == list(range(6))
        assert [t.number for t in storage.get_trials("complete")] == [0, 2, 4]
        assert [t.number for t in storage.get_trials([TrialState.RUNNING, "failed"])] == [1, 3, 5]
        assert storage.count_trials("running") == 2 and storage.count_trials() == 6

    def test_find_complete_answers_an_evaluated_arch(self, storage: Storage) -> None:
        a, b, c = (storage.create_trial([i], arch) for i, arch in enumerate(["x", "x", "y"]))
        assert storage.find_complete("x") is None  # running is not evaluated
        storage.fail_trial(a, "oom")
        assert storage.find_complete("x") is None  # failed is not evaluated either
        storage.complete_trial(b, 0.6, 2.0, 0.5)
        storage.complete_trial(c, 0.7, 2.0, 0.6)
        d = storage.create_trial([3], "x")
        storage.complete_trial(d, 0.9, 2.0, 0.8)
        found = storage.find_complete("x")
        assert found is not None and found.number == b and found.accuracy == 0.6
        assert storage.find_complete("z") is None

    def test_requeue_running_returns_them_and_numbers_go_on(self, storage: Storage) -> None:
        for i in range(4):
            storage.create_trial([i, i], f"a{i}")
        storage.complete_trial(1, 0.5, 1.0, 0.5)
        requeued = storage.requeue_running()
        assert [(t.number, t.tokens, t.state) for t in requeued] == [
            (0, (0, 0), TrialState.REQUEUED), (2, (2, 2), TrialState.REQUEUED), (3, (3, 3), TrialState.REQUEUED)]
        assert storage.get_trials("running") == [] and storage.requeue_running() == []
        assert [t.number for t in storage.get_trials("requeued")] == [0, 2, 3]
        assert storage.get_trial(1).state is TrialState.COMPLETE
        assert storage.create_trial([0, 0], "a0") == 4

    def test_strategy_state_versions(self, storage: Storage) -> None:
        assert storage.load_strategy_state() is None
        storage.save_strategy_state({"step": 1, "w": [0.5, 1.5]}, n_told=2)
        storage.save_strategy_state({"step": 2}, n_told=5)
        assert storage.load_strategy_state() == ({"step": 2}, 5)
        storage.save_strategy_state({"step": 3}, n_told=5)  # same version: replaced
        assert storage.load_strategy_state() == ({"step": 3}, 5)
        with pytest.raises(ValueError, match="older"):
            storage.save_strategy_state({"step": 0}, n_told=4)
        for bad in ([1, 2], {"f": object()}):
            with pytest.raises(ValueError):
                storage.save_strategy_state(bad, n_told=6)
        with pytest.raises(ValueError, match="n_told"):
            storage.save_strategy_state({}, n_told=-1)
        for i in range(6, 6 + 2 * storage.strategy_history):
            storage.save_strategy_state({"step": i}, n_told=i)
        assert storage.load_strategy_state() == ({"step": i}, i)

    def test_result_and_strategy_state_in_one_write(self, storage: Storage) -> None:
        a, b = storage.create_trial([1], "a"), storage.create_trial([2], "b")
        storage.complete_trial(a, 0.5, 1.0, 0.5, strategy_state={"told": [a]}, n_told=1)
        assert storage.load_strategy_state() == ({"told": [0]}, 1)
        with pytest.raises(ValueError, match="older"):
            storage.fail_trial(b, "oom", strategy_state={}, n_told=0)
        with pytest.raises(ValueError, match="n_told"):
            storage.complete_trial(b, 0.5, 1.0, 0.5, strategy_state={"told": [a, b]})
        assert storage.get_trial(b).state is TrialState.RUNNING  # a refused write changes nothing
        storage.fail_trial(b, "oom", strategy_state={"told": [a, b]}, n_told=2)
        assert storage.get_trial(b).failure == "oom"
        assert storage.load_strategy_state() == ({"told": [0, 1]}, 2)
        with pytest.raises(ValueError, match="never changes"):
            storage.complete_trial(b, 0.5, 1.0, 0.5, strategy_state={"told": []}, n_told=3)
        assert storage.load_strategy_state() == ({"told": [0, 1]}, 2)  # nor does it save the state

    def test_numpy_values_are_stored_as_numbers_and_lists(self, storage: Storage) -> None:
        np = pytest.importorskip("numpy")
        n = storage.create_trial(np.array([1, 2]), "a", params=np.int64(7))
        storage.complete_trial(n, np.float32(0.5), np.float64(2.0), 0.25, extra={"h": np.arange(3)})
        storage.save_strategy_state({"theta": np.zeros((2, 2))}, n_told=np.int64(1).item())
        t = storage.get_trial(n)
        assert t.tokens == (1, 2) and t.params == 7 and t.accuracy == 0.5 and t.extra == {"h": [0, 1, 2]}
        assert storage.load_strategy_state() == ({"theta": [[0.0, 0.0], [0.0, 0.0]]}, 1)

    def test_meta(self, storage: Storage) -> None:
        assert storage.get_meta("config") is None and storage.get_meta("config", {}) == {}
        storage.set_meta("config", {"strategy": "ppo", "trials": 200})
        storage.set_meta("target_ms", 20.0)
        storage.set_meta("target_ms", 25.0)
        assert storage.get_meta("config") == {"strategy": "ppo", "trials": 200}
        assert storage.get_all_meta() == {"config": {"strategy": "ppo", "trials": 200}, "target_ms": 25.0}
        with pytest.raises(ValueError):
            storage.set_meta("", 1)
        with pytest.raises(ValueError, match="not JSON-serialisable"):
            storage.set_meta("device", object())

    def test_values_are_copied_in_and_out(self, storage: Storage) -> None:
        extra = {"list": [1, 2]}
        n = storage.create_trial([1], "a", extra=extra)
        extra["list"].append(3)
        got = storage.get_trial(n)
        got.extra["list"].append(4)
        assert storage.get_trial(n).extra == {"list": [1, 2]}
        state = {"w": [1.0]}
        storage.save_strategy_state(state, 1)
        state["w"].append(2.0)
        loaded, _ = storage.load_strategy_state()
        loaded["w"].append(3.0)
        assert storage.load_strategy_state() == ({"w": [1.0]}, 1)

    def test_trial_to_dict_round_trips(self, storage: Storage) -> None:
        n = storage.create_trial([3, 1], "a", extra={"k": [1]})
        storage.complete_trial(n, 0.5, 2.0, 0.4, params=10)
        t = storage.get_trial(n)
        d = t.to_dict()
        assert d["state"] == "complete" and d["tokens"] == [3, 1] and d["params"] == 10
        assert Trial.from_dict(d) == t

    def test_threads_may_share_a_storage(self, storage: Storage) -> None:
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                for i in range(10):
                    n = storage.create_trial([k, i], f"t{k}-{i}")
                    storage.complete_trial(n, 0.5, 1.0, 0.5, extra={"k": k})
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        trials = storage.get_trials()
        assert [t.number for t in trials] == list(range(40))
        assert {t.arch for t in trials} == {f"t{k}-{i}" for k in range(4) for i in range(10)}
        assert all(t.state is TrialState.COMPLETE for t in trials)

    def test_study_best_and_pareto(self, storage: Storage) -> None:
        # (accuracy, latency_ms, reward); trial 4 fails, trial 5 stays running
        figures = [(0.70, 10.0, 0.60), (0.80, 30.0, 0.65), (0.75, 20.0, 0.70), (0.72, 25.0, 0.50)]
        for i, (acc, lat, rew) in enumerate(figures):
            storage.complete_trial(storage.create_trial([i], f"a{i}"), acc, lat, rew)
        storage.fail_trial(storage.create_trial([9], "f"), "oom")
        storage.create_trial([8], "r")
        study = Study(storage)
        assert study.best().number == 2
        assert study.best(target_ms=25.0).number == 2
        assert study.best(target_ms=12.0).number == 0
        assert study.best(target_ms=5.0) is None
        assert [t.number for t in study.pareto_front()] == [0, 2, 1]
        assert len(study) == 6 and len(study.trials) == 6 and len(study.complete_trials) == 4
        summary = study.summary(target_ms=12.0)
        assert summary["states"] == {"running": 1, "complete": 4, "failed": 1, "requeued": 0}
        assert summary["best"]["number"] == 2 and summary["best_under_target"]["number"] == 0
        assert summary["pareto_front"] == [0, 2, 1]
        with pytest.raises(ValueError, match="target_ms"):
            study.best(target_ms=0)

    # -- one writer per study ------------------------------------------------------------------
    def test_one_writer_at_a_time(self, storage: Storage) -> None:
        lease = storage.acquire_writer()
        holder = storage.get_writer()
        assert holder["id"] == lease and holder["pid"] == os.getpid()
        with pytest.raises(StudyBusyError, match=f"pid {os.getpid()}"):
            storage.acquire_writer()
        assert storage.heartbeat(lease)
        storage.release_writer(lease)
        assert storage.get_writer() is None
        storage.release_writer(storage.acquire_writer())

    def test_a_dead_or_silent_writer_is_replaced(self, storage: Storage) -> None:
        proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        dead_pid = int(proc.stdout)  # that process has exited (and was reaped)
        here = socket.gethostname()
        now = time.time()
        for record in ({"id": "x", "pid": dead_pid, "host": here, "since": now, "heartbeat": now, "ttl": 60.0},
                       {"id": "y", "pid": 1, "host": "elsewhere", "since": now - 99, "heartbeat": now - 90, "ttl": 60.0}):
            storage._swap_writer(lambda _, r=record: r)
            lease = storage.acquire_writer()
            assert storage.get_writer()["id"] == lease
            assert not storage.heartbeat(record["id"])  # the replaced writer learns it lost the study
            storage.release_writer(lease)
        fresh = {"id": "z", "pid": 1, "host": "elsewhere", "since": now, "heartbeat": now, "ttl": 60.0}
        storage._swap_writer(lambda _: fresh)
        with pytest.raises(StudyBusyError, match="on elsewhere"):
            storage.acquire_writer()
        storage.release_writer("z")
