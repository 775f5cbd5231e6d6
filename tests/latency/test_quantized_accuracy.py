"""Accuracy after int8 quantization in the loop (issue 20 item 3): `quantized_accuracy` and
`ProxyEvaluator(score="int8")` on the built-in digits (8x8, no download), a tiny network."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from latency_helpers import fast_protocol

from mnas.evaluate import ProxyEvaluator
from mnas.evaluate.quantized import quantized_accuracy, quantized_runtime
from mnas.latency import LookupTable, OnnxRuntime, Torch
from mnas.train import ProxyConfig, load, train_proxy

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")

ARCH = "r1_k3_s11_e1_i16_o16, r1_k3_s22_e3_i16_o24 | s1_h64_d0.0_relu"
CONFIG = ProxyConfig(steps=60, batch_size=64, threads=1)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


@pytest.fixture(scope="module")
def trained(digits):
    from mnas.models import build_model

    torch.manual_seed(0)
    model = build_model(ARCH, num_classes=digits.num_classes, in_chans=digits.channels)
    result = train_proxy(model, digits, CONFIG)
    assert result.ok and result.accuracy > 0.5, result
    return model, result.accuracy


def test_int8_accuracy_in_onnxruntime_is_close_to_float(digits, trained):
    model, fp32 = trained
    int8 = quantized_accuracy(model, digits, "onnxruntime", calibration=64)
    assert 0.0 <= int8 <= 1.0
    assert abs(int8 - fp32) <= 0.1, (fp32, int8)  # per-channel static PTQ of a small CNN loses little
    assert quantized_accuracy(model, digits, "onnxruntime", calibration=64) == int8, "seeded calibration"
    with pytest.raises(ValueError, match="int8 accuracy is measured in onnxruntime, litert, executorch"):
        quantized_accuracy(model, digits, "torch")


@pytest.mark.parametrize("runtime", ["litert", "executorch"])
def test_int8_accuracy_in_the_mobile_runtimes(digits, trained, runtime):
    pytest.importorskip("ai_edge_litert" if runtime == "litert" else "executorch.runtime")
    model, fp32 = trained
    int8 = quantized_accuracy(model, digits, runtime, calibration=32)
    assert abs(int8 - fp32) <= 0.1, (runtime, fp32, int8)


def test_proxy_evaluator_scores_int8_and_keeps_both(digits):
    latency = OnnxRuntime(protocol=fast_protocol(), precision="int8", calibration=2)
    evaluator = ProxyEvaluator(digits, latency, CONFIG, score="int8", calibration=64)
    fn, args = evaluator.job(ARCH, seed=0)
    out = fn(*args)
    assert out["ok"] and out["int8_runtime"] == "onnxruntime"
    assert out["accuracy"] == out["accuracy_int8"] and out["accuracy_fp32"] is not None
    assert abs(out["accuracy_int8"] - out["accuracy_fp32"]) <= 0.1
    float_only = ProxyEvaluator(digits, latency, CONFIG)
    assert "score" not in float_only.identity(), "float studies keep the identity they had"
    assert evaluator.identity()["score"] == {"runtime": "onnxruntime", "calibration": 64, "score": "int8"}
    json.dumps(evaluator.identity())
    fn, args = ProxyEvaluator(digits, latency, CONFIG, record_int8=True, calibration=64).job(ARCH, seed=0)
    both = fn(*args)
    assert both["accuracy"] == both["accuracy_fp32"] and both["accuracy_int8"] is not None


def test_runtime_follows_the_latency_backend():
    assert quantized_runtime(OnnxRuntime()) == "onnxruntime"
    assert quantized_runtime(Torch()) == "onnxruntime", "eager PyTorch has no int8 runtime of its own here"
    table = LookupTable({"x": 1.0}, 8, 10, meta={"runtime": "litert", "precision": "int8"})
    assert quantized_runtime(table) == "litert"


def test_bad_settings_are_one_line(digits):
    latency = OnnxRuntime(protocol=fast_protocol())
    with pytest.raises(ValueError, match="score='int4': expected one of fp32, int8"):
        ProxyEvaluator(digits, latency, score="int4")
    with pytest.raises(ValueError, match="int8_runtime='tensorrt'"):
        ProxyEvaluator(digits, latency, score="int8", int8_runtime="tensorrt")
    with pytest.raises(ValueError, match="calibration"):
        ProxyEvaluator(digits, latency, score="int8", calibration=0)


def test_supernet_evaluator_scores_the_recalibrated_subnet_in_int8():
    from mnas.evaluate import SupernetEvaluator
    from mnas.oneshot import build_supernet
    from mnas.oneshot.evaluate import evaluate_subnet
    from mnas.space.presets import nas_bench_macro_space
    from mnas.train import from_arrays

    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 160)
    x = (rng.integers(0, 60, (160, 8, 8, 3)) + y[:, None, None, None] * 45).astype(np.uint8)
    data = from_arrays("tiny", x[:128], y[:128], x[128:], y[128:], val_fraction=0.25, seed=0)
    torch.manual_seed(0)
    net = build_supernet(nas_bench_macro_space(4, 8, width_mult=0.125))
    latency = OnnxRuntime(protocol=fast_protocol())
    ev = SupernetEvaluator(net, data, latency, num_images=16, score="int8", calibration=16)
    arch = net.space.decode([2, 1, 0, 2, 1, 0, 1, 2])
    fn, args = ev.job(arch)
    out = fn(*args)
    assert out["ok"] and out["accuracy"] == out["accuracy_int8"] and out["int8_runtime"] == "onnxruntime"
    assert out["accuracy_fp32"] == evaluate_subnet(net, arch, data, num_images=16).accuracy
    assert abs(out["accuracy_int8"] - out["accuracy_fp32"]) <= 0.25
    assert ev.identity()["score"]["score"] == "int8"
    assert "score" not in SupernetEvaluator(net, data, latency, num_images=16).identity()
