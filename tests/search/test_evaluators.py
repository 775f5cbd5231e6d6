"""Every evaluator passes the shared suite (mnas.evaluate.testing): a user's callable, the built-in
proxy training on digits, and the supernet evaluator where it has landed."""

import sys
from pathlib import Path

import pytest

from mnas.evaluate import ProxyEvaluator, UserEvaluator, as_evaluator
from mnas.evaluate.testing import EvaluatorTestSuite
from mnas.space import MnasNetSpace

sys.path.insert(0, str(Path(__file__).parent))
from _search_helpers import SPACE, synthetic  # noqa: E402


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (see tests/conftest.py)."""


class TestUserEvaluator(EvaluatorTestSuite):
    @pytest.fixture
    def evaluator(self):
        return UserEvaluator(synthetic, accuracy_source="synthetic")

    @pytest.fixture
    def space(self):
        return SPACE


@pytest.fixture(scope="module")
def proxy_evaluator():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    from mnas.latency import OnnxRuntime
    from mnas.train import ProxyConfig, load

    return ProxyEvaluator(load("digits", val_fraction=0.2, seed=0), OnnxRuntime(threads=1),
                          ProxyConfig(steps=3, batch_size=32, threads=1))


class TestProxyEvaluator(EvaluatorTestSuite):
    @pytest.fixture
    def evaluator(self, proxy_evaluator):
        return proxy_evaluator

    @pytest.fixture
    def space(self):
        return MnasNetSpace(10, 8, width_mult=0.25, head_chs=32)


def test_as_evaluator_and_bad_input():
    assert isinstance(as_evaluator(synthetic), UserEvaluator)
    evaluator = UserEvaluator(synthetic)
    assert as_evaluator(evaluator) is evaluator
    with pytest.raises(ValueError, match="expected an evaluator"):
        as_evaluator(42)
    with pytest.raises(ValueError, match="needs data="):
        ProxyEvaluator(None, None)
    with pytest.raises(ValueError, match="accuracy_source"):
        UserEvaluator(synthetic, accuracy_source="")


def test_user_seed_is_passed_on_request():
    seen = []

    def fn(arch, seed):
        seen.append(seed)
        return {"accuracy": 0.5, "latency_ms": 1.0}

    job, args = UserEvaluator(fn, seed=True).job(SPACE.sample(0), 11)
    job(*args)
    assert seen == [11]
