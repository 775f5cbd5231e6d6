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


class _RecordingLatency:
    """Records the architecture it is asked to measure; 1 ms per stride-1 stage, so the figure
    depends on where the model downsamples."""

    def __init__(self):
        self.archs = []

    def measure(self, arch, input_size, num_classes, batch_size=1, in_chans=3):
        from types import SimpleNamespace

        self.archs.append(arch)
        return SimpleNamespace(median_ms=float(sum(b.stride == 1 for b in arch.blocks) + (arch.stem_stride == 1)))


def test_a_zoo_target_downsamples_where_the_space_does():
    """Regression: "--target mobilenetv2" in a space built with strides= measured MobileNetV2 with the
    zoo's stride rule for the input size, not the space's strides, so the target was a different
    network's latency (MobileNetV2 x0.5 at 32x32: 2.41 ms with the zoo's stride-1 stem against 0.96 ms
    with the space's stride-2 stem, ONNX Runtime, one thread)."""
    from mnas.space import adapt_strides, get_arch
    from mnas.train import load

    data = load("digits", val_fraction=0.2, seed=0)
    latency = _RecordingLatency()
    evaluator = ProxyEvaluator(data, latency)
    strides = (2, 1, 1, 2, 1, 1, 1, 1)
    space = MnasNetSpace(10, 8, width_mult=0.25, head_chs=32, strides=strides)
    evaluator.reference_latency("mobilenetv2", space)
    measured = latency.archs[-1]
    assert (measured.stem_stride, *(b.stride for b in measured.blocks)) == strides
    # the space's default strides: the zoo's own rule, as before
    evaluator.reference_latency("mobilenetv2", MnasNetSpace(10, 8, width_mult=0.25, head_chs=32))
    assert latency.archs[-1] == adapt_strides(get_arch("mobilenetv2"), 8)
    # no space (a caller that has none): the input-size rule
    evaluator.reference_latency("mnasnet_b1")
    assert latency.archs[-1] == adapt_strides(get_arch("mnasnet_b1"), 8)
