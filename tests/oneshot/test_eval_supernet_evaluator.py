"""`SupernetEvaluator`: the shared evaluator contract, the worker's supernet cache, and a search on it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mnas.evaluate import Evaluator
from mnas.evaluate import supernet as sn_eval
from mnas.evaluate.supernet import SupernetEvaluator, evaluate_inherited
from mnas.evaluate.testing import EvaluatorTestSuite
from mnas.latency.base import LatencyBackend, LatencyResult
from mnas.oneshot.train import SupernetTrainConfig, train_supernet
from mnas.train import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_supernet, tiny_data, tiny_space  # noqa: E402


class MacsLatency(LatencyBackend):
    """Deterministic and instant: 1 ms per million parameters of the built model, plus 0.1 ms."""

    name = "macs-fake"

    def _measure(self, arch, input_size, num_classes, batch_size, in_chans=3):
        from mnas.models import build_model, count_params

        ms = count_params(build_model(arch, num_classes, in_chans)) * 1e-6 + 0.1
        return LatencyResult(ms, 0.0, 0.0, 1, self.name, {}, input_size, 1, num_classes, {"cpu": "fake"}, {},
                             arch=str(arch))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("sn") / "sn.pt"
    cfg = SupernetTrainConfig(train=TrainConfig(epochs=1, batch_size=16, lr=0.05), warmup_epochs=0, eval_images=0)
    train_supernet(make_supernet(tiny_space()), tiny_data(), cfg, path)
    return path


class TestSupernetEvaluator(EvaluatorTestSuite):
    @pytest.fixture
    def evaluator(self, checkpoint):
        return SupernetEvaluator(checkpoint, tiny_data(), MacsLatency(), num_images=16)

    @pytest.fixture
    def space(self):
        return tiny_space()


def test_records_inherited_accuracy_and_refuses_another_space(checkpoint):
    ev = SupernetEvaluator(checkpoint, tiny_data(), MacsLatency(), num_images=16)
    assert isinstance(ev, Evaluator) and ev.accuracy_source == "supernet" and ev.latency_in_driver
    assert ev.identity()["kind"] == "supernet" and ev.identity()["num_images"] == 16
    with pytest.raises(ValueError, match="differs from the supernet"):
        from mnas.space import MnasNetSpace

        ev.check_space(MnasNetSpace(4, 8, width_mult=0.25))
    with pytest.raises(FileNotFoundError):
        SupernetEvaluator(checkpoint.parent / "missing.pt", tiny_data(), MacsLatency())


def test_the_worker_loads_a_checkpoint_once(checkpoint, monkeypatch):
    data, arch = tiny_data(), str(tiny_space().sample(0))
    sn_eval._NETS.clear()
    import mnas.oneshot.train as train_mod

    loads = []
    real_load = train_mod.load_supernet
    monkeypatch.setattr(train_mod, "load_supernet", lambda p: loads.append(p) or real_load(p))
    settings = {"num_images": 16, "seed": 0, "batch_size": 250, "threads": 1, "device": "cpu"}
    a = evaluate_inherited(str(checkpoint), data, arch, settings)
    b = evaluate_inherited(str(checkpoint), data, arch, settings)
    assert len(loads) == 1 and a["accuracy"] == b["accuracy"] and a["params"] > 0 and a["macs"] > 0


def test_a_wider_space_of_the_same_decisions_is_scored_by_token_in_the_narrower_supernet():
    from mnas.models import build_model, count_params
    from mnas.oneshot import build_supernet
    from mnas.oneshot.evaluate import evaluate_subnet
    from mnas.space import LayerwiseSpace
    from mnas.space.presets import nas_bench_macro_space

    net = build_supernet(nas_bench_macro_space(4, 8, width_mult=0.125))
    ev = SupernetEvaluator(net, tiny_data(), MacsLatency(), num_images=16)
    wide = nas_bench_macro_space(4, 8, width_mult=0.25)
    ev.check_space(wide)
    assert ev.identity()["width_proxy_for"]["width_mult"] == 0.25
    tokens = [2, 1, 0, 2, 1, 0, 1, 2]
    fn, args = ev.job(wide.decode(tokens))
    result = fn(*args)
    narrow = net.space.decode(tokens)
    assert result["proxy_arch"] == str(narrow)
    assert result["accuracy"] == evaluate_subnet(net, narrow, tiny_data(), num_images=16).accuracy
    assert result["params"] == count_params(build_model(wide.decode(tokens), 4)) > count_params(build_model(narrow, 4))
    with pytest.raises(ValueError, match="same decisions"):
        ev.check_space(LayerwiseSpace(4, 8, ops=("k3e3", "skip")))
    ev.check_space(net.space)  # back to the supernet's own space: no proxy
    assert ev.search_space is None and "width_proxy_for" not in ev.identity()


def test_the_likelihood_metric_hands_the_reward_exp_minus_the_loss_and_keeps_top1(checkpoint):
    import math

    from mnas.oneshot.evaluate import evaluate_subnet

    data, arch = tiny_data(), tiny_space().sample(3)
    top1 = SupernetEvaluator(checkpoint, data, MacsLatency(), num_images=16)
    lik = SupernetEvaluator(checkpoint, data, MacsLatency(), num_images=16, metric="likelihood")
    fn, args = lik.job(arch)
    result = fn(*args)
    direct = evaluate_subnet(sn_eval._load(str(checkpoint)), arch, data, num_images=16)
    assert result["accuracy"] == pytest.approx(math.exp(-direct.loss)) and result["score_metric"] == "likelihood"
    assert result["inherited_accuracy"] == direct.accuracy == top1.job(arch)[0](*top1.job(arch)[1])["accuracy"]
    # a study scored on top-1 keeps its identity; one scored on the likelihood cannot be resumed as one on top-1
    assert "metric" not in top1.identity() and lik.identity()["metric"] == "likelihood"
    assert lik.identity() != top1.identity() and lik.describe()["metric"] == "likelihood"
    with pytest.raises(ValueError, match="metric='top5'"):
        SupernetEvaluator(checkpoint, data, MacsLatency(), metric="top5")
    with pytest.raises(ValueError, match="int8 score is a top-1 accuracy"):
        SupernetEvaluator(checkpoint, data, MacsLatency(), metric="likelihood", score="int8")
