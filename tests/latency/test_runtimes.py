"""LiteRT and ExecuTorch as latency backends (issue 20 item 1), fp32 and int8 (item 2).

Each test needs its runtime's extra (``pip install 'mnas[litert]'`` / ``'mnas[executorch]'`` with
torch==2.13.0 pinned) and skips cleanly without it. Conversions take seconds each, so the tests
share converted files and use tiny networks at 16x16."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from latency_helpers import LARGE, SMALL, fast_protocol

from mnas.latency import ExecuTorch, LatencyResult, LiteRT, get_backend

INPUT = 16
SHAPE = (1, 3, INPUT, INPUT)

RUNTIMES = {
    "litert": ("ai_edge_litert", "litert_torch", "mnas.latency.litert", "tflite_bytes", "measure_tflite", "run_tflite"),
    "executorch": ("executorch", "executorch", "mnas.latency.executorch_backend", "pte_bytes", "measure_pte", "run_pte"),
}


def _need(name: str):
    runtime, converter, module, convert, measure, run = RUNTIMES[name]
    pytest.importorskip(runtime)
    pytest.importorskip(converter)
    mod = pytest.importorskip(module)
    return getattr(mod, convert), getattr(mod, measure), getattr(mod, run)


@pytest.fixture(scope="module", params=sorted(RUNTIMES))
def runtime(request):
    """(name, convert, measure, run, {precision: file bytes of SMALL}) for each installed runtime."""
    import torch

    from mnas.latency.export import timing_model

    convert, measure, run = _need(request.param)
    torch.manual_seed(0)  # unseeded weights made the int8 error bound fail now and then (0.40 against 0.23)
    model = timing_model(SMALL, INPUT, 10)
    files = {p: convert(model, SHAPE, p, 4) for p in ("fp32", "int8")}
    return request.param, convert, measure, run, model, files


def test_converted_files_reproduce_pytorch(runtime):
    import torch

    name, _, _, run, model, files = runtime
    x = np.random.default_rng(3).standard_normal((2,) + SHAPE[1:]).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    fp32 = run(files["fp32"], x)
    assert fp32.shape == expected.shape
    assert np.allclose(fp32, expected, atol=1e-4, rtol=1e-3), np.abs(fp32 - expected).max()
    int8 = run(files["int8"], x)
    assert int8.shape == expected.shape
    scale = np.abs(expected).max()
    assert np.abs(int8 - expected).max() <= 0.25 * scale, "int8 logits far from float: quantization went wrong"
    assert not np.allclose(int8, expected, atol=1e-6, rtol=0), "int8 logits equal float ones: nothing was quantized"
    assert len(files["int8"]) < len(files["fp32"]) or name == "executorch"  # int8 weights (tiny nets: headers dominate)


def test_measure_follows_the_shared_protocol(runtime):
    _, _, measure, _, _, files = runtime
    for precision in ("fp32", "int8"):
        stats = measure(files[precision], SHAPE, 1, fast_protocol())
        assert stats["median_ms"] > 0 and math.isfinite(stats["median_ms"])
        assert stats["n"] >= fast_protocol().min_repeats and stats["cv"] >= 0
        assert stats["clock"] == "thread", "one thread runs on the calling thread: its CPU clock is used"
    with pytest.raises(ValueError, match="does not fit|does not run"):
        measure(files["fp32"], (1, 3, INPUT + 8, INPUT + 8), 1, fast_protocol())
    with pytest.raises(ValueError, match="not a valid"):
        measure(b"not a model at all", SHAPE, 1, fast_protocol())


def test_backend_contract(runtime):
    name = runtime[0]
    backend = get_backend(name, protocol=fast_protocol(), precision="int8", calibration=2)
    assert isinstance(backend, LiteRT if name == "litert" else ExecuTorch)
    assert backend.deployment == (name, "int8")
    key = json.loads(backend.key())
    assert key["backend"] == name and key["precision"] == "int8" and key["calibration"] == 2 and key["threads"] == 1
    assert get_backend(name, protocol=fast_protocol()).key() != backend.key()
    result = backend.measure(SMALL, INPUT, 10)
    assert isinstance(result, LatencyResult) and result.backend == name and result.median_ms > 0
    assert result.settings["precision"] == "int8" and result.clock == "thread"
    assert result.runtime.get("torch", "").startswith("2.13"), result.runtime
    assert backend.measure(str(SMALL), INPUT, 10) is result, "cached by the canonical string"
    assert backend.measure(LARGE, INPUT, 10).median_ms > result.median_ms
    json.dumps(backend.describe())
    with pytest.raises(ValueError, match="precision"):
        get_backend(name, precision="int4")
    with pytest.raises(ValueError, match="threads"):
        get_backend(name, threads=0)


def test_a_missing_runtime_is_one_line_naming_the_extra(monkeypatch):
    import sys

    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "litert_torch", "executorch", "executorch.runtime"):
        monkeypatch.setitem(sys.modules, name, None)  # an import of it now fails, installed or not
    with pytest.raises(ImportError, match=r"pip install 'mnas\[litert\]'"):
        LiteRT()
    with pytest.raises(ImportError, match=r"pip install 'mnas\[executorch\]'"):
        ExecuTorch()
