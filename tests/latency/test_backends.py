"""The shared suite: every latency backend honours the `LatencyBackend` contract."""

from __future__ import annotations

import json
import math

import pytest
from latency_helpers import LARGE, SMALL, TOKEN, fast_protocol, micro_space

from mnas.latency import LatencyBackend, LatencyResult, LookupTable, OnnxRuntime, Remote, Torch, get_backend

INPUT = 16
BACKENDS = ["onnxruntime", "torch", "remote", "lut"]


@pytest.fixture(scope="module")
def lut_table(tmp_path_factory):
    """A real table, built on ONNX Runtime for a tiny space that holds SMALL-like networks."""
    pytest.importorskip("onnxruntime")
    from mnas.latency.lut_build import build_lut

    space = micro_space(INPUT)
    return build_lut(space, OnnxRuntime(protocol=fast_protocol()), tmp_path_factory.mktemp("lut") / "t.json",
                     fit_archs=3)


@pytest.fixture(params=BACKENDS)
def case(request, device_server):
    """(backend, small arch, large arch, num_classes) for each backend."""
    if request.param == "onnxruntime":
        return OnnxRuntime(protocol=fast_protocol()), SMALL, LARGE, 1000
    if request.param == "torch":
        return Torch(protocol=fast_protocol()), SMALL, LARGE, 1000
    if request.param == "remote":
        return Remote(device_server.url, TOKEN, timeout=30), SMALL, LARGE, 1000
    table = request.getfixturevalue("lut_table")
    space = micro_space(INPUT)
    small = space.decode([0] * len(space.decisions))  # ds everywhere, no SE
    large = space.decode([len(d) - 1 for d in space.decisions])  # MBConv3 everywhere
    return table, small, large, 10


def test_result_carries_the_protocol_facts(case):
    backend, small, _, classes = case
    result = backend.measure(small, INPUT, classes)
    assert isinstance(backend, LatencyBackend) and isinstance(result, LatencyResult)
    assert result.median_ms > 0 and math.isfinite(result.median_ms)
    assert result.iqr_ms >= 0 and result.cv >= 0
    assert result.backend == backend.name
    assert result.input_size == INPUT and result.batch_size == 1 and result.num_classes == classes
    assert result.arch == str(small)
    assert result.device.get("cpu"), "the CPU model is recorded with every result"
    assert result.runtime, "runtime versions are recorded with every result"
    if backend.name != "lut":
        assert result.n >= fast_protocol().min_repeats
        assert result.clock in ("thread", "wall")
        assert result.min_ms <= result.median_ms
    data = json.loads(json.dumps(result.to_dict()))
    assert LatencyResult.from_dict(data).median_ms == result.median_ms


def test_measure_is_cached_by_arch_settings_and_shape(case):
    backend, small, _, classes = case
    first = backend.measure(small, INPUT, classes)
    assert backend.measure(str(small), INPUT, classes) is first  # same canonical string, same entry
    if backend.name != "lut":
        other = backend.measure(small, INPUT + 8, classes)
        assert other is not first and other.input_size == INPUT + 8
    backend.clear_cache()
    assert backend.measure(small, INPUT, classes) is not first


def test_larger_network_takes_longer(case):
    backend, small, large, classes = case
    small_ms = backend.measure(small, INPUT, classes).median_ms
    large_ms = backend.measure(large, INPUT, classes).median_ms
    assert large_ms > small_ms, (small_ms, large_ms)


def test_key_is_stable_and_names_the_settings(case):
    backend, *_ = case
    key = backend.key()
    assert key == backend.key()
    assert json.loads(key)["backend"] == backend.name
    json.dumps(backend.describe())  # JSON-friendly
    if backend.name == "onnxruntime":
        assert OnnxRuntime(threads=2, protocol=fast_protocol()).key() != key
        assert OnnxRuntime(protocol=fast_protocol()).key() == key
    if backend.name == "torch":
        assert Torch(threads=2, protocol=fast_protocol()).key() != key
    if backend.name == "remote":
        assert TOKEN not in key, "the token never appears in a cache key"


@pytest.mark.parametrize("bad", [{"input_size": 0}, {"input_size": 2.5}, {"num_classes": 0}, {"batch_size": -1}])
def test_bad_sizes_are_refused(case, bad):
    backend, small, _, classes = case
    kwargs = {"input_size": INPUT, "num_classes": classes, **bad}
    with pytest.raises(ValueError, match=next(iter(bad))):
        backend.measure(small, **kwargs)


def test_bad_arch_is_refused(case):
    backend, *_ = case
    with pytest.raises(ValueError):
        backend.measure("r1_k4_s11_e1_i8_o8", INPUT)


def test_get_backend_factory(tmp_path, lut_table):
    assert isinstance(get_backend("onnxruntime", threads=2), OnnxRuntime)
    assert isinstance(get_backend("ort"), OnnxRuntime)
    assert isinstance(get_backend("torch", threads=1), Torch)
    assert isinstance(get_backend("remote", url="http://127.0.0.1:1", token="x" * 8), Remote)
    assert isinstance(get_backend("lut", path=lut_table.path), LookupTable)
    with pytest.raises(ValueError, match="unknown latency backend 'tflite'"):
        get_backend("tflite")
    with pytest.raises(ValueError, match="onnxruntime"):
        get_backend("onnxruntime", device="cuda")
    with pytest.raises(ValueError, match="threads"):
        OnnxRuntime(threads=0)
    with pytest.raises(ValueError, match="no CUDA|cpu"):
        Torch(device="cuda" if not _cuda() else "tpu")
    with pytest.raises(ValueError, match="http://HOST:PORT"):
        Remote("ftp://x", "tokentoken")
    with pytest.raises(ValueError, match="token"):
        Remote("http://127.0.0.1:1", None)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def test_torch_backend_restores_the_thread_count():
    import torch

    before = torch.get_num_threads()
    Torch(threads=1, protocol=fast_protocol()).measure(SMALL, INPUT)
    assert torch.get_num_threads() == before


def test_onnx_bytes_runs_in_onnxruntime():
    ort = pytest.importorskip("onnxruntime")
    import numpy as np

    from mnas.latency import onnx_bytes
    from mnas.latency.export import timing_model

    model = timing_model(SMALL, INPUT, 10)
    data = onnx_bytes(model, INPUT)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    x = np.random.default_rng(0).standard_normal((1, 3, INPUT, INPUT), dtype=np.float32)
    import torch

    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    assert np.allclose(session.run(None, {"input": x})[0], expected, atol=1e-4)


def test_input_channels_are_part_of_the_shape_and_the_cache():
    backend = OnnxRuntime(protocol=fast_protocol())
    gray = backend.measure(SMALL, INPUT, 10, in_chans=1)
    assert gray.in_chans == 1 and gray.input_shape == (1, 1, INPUT, INPUT)
    assert backend.measure(SMALL, INPUT, 10) is not gray
    with pytest.raises(ValueError, match="in_chans"):
        backend.measure(SMALL, INPUT, 10, in_chans=0)
