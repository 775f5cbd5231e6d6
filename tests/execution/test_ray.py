"""The shared executor suite on Ray: one local Ray instance for the whole module (start-up is slow)."""

from __future__ import annotations

import pytest

from mnas.execution import get_executor
from mnas.execution.testing import ExecutorTestSuite

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def ray_session():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


class TestRayExecutor(ExecutorTestSuite):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls, ray_session):
        ex = get_executor("ray")
        yield ex
        ex.shutdown()
        assert ray.is_initialized()  # it did not start Ray, so it leaves it running

    @pytest.fixture
    def make_executor(self, ray_session):
        return lambda: get_executor("ray", num_cpus_per_task=1)

    def test_describe(self, executor):
        assert executor.describe() == {"executor": "ray", "max_workers": 2, "address": None, "num_cpus_per_task": 1}


def test_dying_ray_worker_fails_with_worker_died(ray_session):
    from mnas.execution import WorkerDiedError
    from mnas.execution.testing import add, die

    ex = get_executor("ray", max_retries=0)
    exc = ex.submit(die).exception(timeout=120)
    assert isinstance(exc, WorkerDiedError) and "died" in str(exc)
    assert ex.submit(add, 1, 2).result(timeout=120) == 3
    ex.shutdown()
