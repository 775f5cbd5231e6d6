"""`compare_rankings`: the same sampled architectures in several backends, Kendall tau per pair,
int8/fp32 ratios, resumable (issue 20 item 5's data)."""

from __future__ import annotations

import json

import pytest
from latency_helpers import fast_protocol, micro_space

from mnas.latency import OnnxRuntime, Torch
from mnas.latency.ranking import compare_rankings, kendall_tau, label_of

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("scipy")


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert kendall_tau([1, 2], [1, 2]) is None


def test_compare_rankings_measures_each_arch_in_each_backend_and_resumes(tmp_path):
    space = micro_space(16)
    fp32 = OnnxRuntime(protocol=fast_protocol())
    int8 = OnnxRuntime(protocol=fast_protocol(), precision="int8", calibration=2)
    assert label_of(int8) == "onnxruntime/int8"
    out = tmp_path / "rank.json"
    summary = compare_rankings(space, [fp32, int8, Torch(protocol=fast_protocol())], n=4, out=out)
    assert summary["measured"] == 4 and len(set(summary["archs"])) == 4
    assert set(summary["latency_ms"]) == {"onnxruntime/fp32", "onnxruntime/int8", "torch/fp32"}
    assert set(summary["kendall"]) == {"onnxruntime/fp32 vs onnxruntime/int8", "onnxruntime/fp32 vs torch/fp32",
                                       "onnxruntime/int8 vs torch/fp32"}
    assert all(t is None or -1 <= t <= 1 for t in summary["kendall"].values())
    ratio = summary["int8_over_fp32"]["onnxruntime"]
    assert len(ratio["per_arch"]) == 4 and ratio["min"] <= ratio["median"] <= ratio["max"]
    json.loads(out.read_text())
    pytest.importorskip("matplotlib")
    from mnas.latency.ranking import plot_rankings

    png = plot_rankings(summary, tmp_path / "rank.png")
    assert (tmp_path / "rank.png").stat().st_size > 1000 and png.endswith("rank.png")
    with pytest.raises(ValueError, match="not one of the compared backends"):
        plot_rankings(summary, tmp_path / "x.png", reference="litert/int8")

    class Counting(OnnxRuntime):
        calls = 0

        def _measure(self, *args, **kwargs):
            Counting.calls += 1
            return super()._measure(*args, **kwargs)

    again = compare_rankings(space, {"onnxruntime/fp32": Counting(protocol=fast_protocol()),
                                     "onnxruntime/int8": int8, "torch/fp32": Torch(protocol=fast_protocol())},
                             n=4, out=out)
    assert Counting.calls == 0 and again["archs"] == summary["archs"], "a finished file is not measured again"
    with pytest.raises(ValueError, match="other settings"):
        compare_rankings(space, [fp32, int8], n=4, out=out)
    with pytest.raises(ValueError, match="at least two backends"):
        compare_rankings(space, [fp32], n=4)
    with pytest.raises(ValueError, match="at least 3"):
        compare_rankings(space, [fp32, int8], n=2)
