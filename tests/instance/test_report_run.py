"""`mnas report RUN_DIR`: the instance-aware report of a trained run (plots, JSON, HTML), and its errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TINY, tiny_arrays
from mnas.cli import main
from mnas.instance import summary as summary_mod
from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable
from mnas.instance.metagraph import MetaGraph, MetaGraphConfig
from mnas.train.datasets import from_arrays

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """One tiny run of `mnas instance train` (MACs latency table, one controller epoch)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("insta")
    x, y, xt, yt = tiny_arrays()
    np.savez(root / "tiny.npz", x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c", "d"]))
    try:
        assert main(["instance", "train", "--data", str(root / "tiny.npz"), "--out", str(root / "run"), "--latency",
                     "macs", "--width", "0.25", "--stem-stride", "1", "--pretrain-epochs", "0", "--search-epochs", "1",
                     "--finetune-epochs", "0", "--batch-size", str(TINY["batch_size"]), "--quiet"]) == 0
    finally:
        torch.set_num_threads(before)
    return root / "run"


def test_report_of_a_run_writes_both_plots_json_and_html(run_dir, tmp_path, capsys, monkeypatch, one_torch_thread):
    # only two fixed routes as single architectures: each costs a recalibration and an evaluation
    real = summary_mod.summarize_run
    monkeypatch.setattr(summary_mod, "summarize_run", lambda *a, **k: real(*a, **k, singles=["all", "min"]))
    (run_dir / "baselines.json").write_text(json.dumps([{"label": "MobileNetV2", "accuracy": 0.4, "latency_ms": 0.5}]))
    capsys.readouterr()
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep"), "--measure", "0", "--budget-ms", "0.05", "0.02",
                 "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    files = info["files"]
    for key in ("tradeoff", "routes"):
        assert open(files[key], "rb").read(8) == PNG
    assert json.loads(open(files["json"]).read())["n"] == 32
    page = open(files["html"]).read()
    assert "data:image/png;base64," in page and "Routes per class" in page
    t = info["tradeoff"]
    assert [p["label"] for p in t["instance"]] == ["threshold 0.5", "budget 0.05 ms", "budget 0.02 ms"]
    assert [p["label"] for p in t["singles"]] == ["all", "min"] and t["baselines"][0]["label"] == "MobileNetV2"
    # a tighter budget never raises the table's predicted latency
    assert t["instance"][1]["predicted_ms"] >= t["instance"][2]["predicted_ms"] - 1e-9
    assert t["singles"][0]["latency_ms"] > t["singles"][1]["latency_ms"]  # every module on costs more than the least
    dist = info["route_distribution"]
    assert sum(map(sum, dist["counts"])) == 32 and len(dist["counts"]) == 4
    assert info["latency_source"] == "table"


def test_measured_latency_is_controller_plus_route(monkeypatch, one_torch_thread):
    """With measurement, each image costs the controller plus its route's network, averaged over the sample."""
    torch.manual_seed(0)
    x, y, xt, yt = tiny_arrays()
    data = from_arrays("tiny", x, y, xt, yt, class_names=["a", "b", "c", "d"], val_fraction=0.25, seed=0)
    meta = MetaGraph(MetaGraphConfig(width=0.25, input_size=16, num_classes=4, stem_stride=1)).eval()
    controller = Controller(meta.num_layers, width=4).eval()
    table = LatencyTable.from_macs(meta, controller)
    calls = []

    def fake(meta_, controller_, routes, log=None):
        routes = list(routes)
        calls.append(routes)
        return {"controller_ms": 0.25, "routes": {r: {"median_ms": 1.0 + r.count("v") / 100} for r in routes}}

    monkeypatch.setattr(summary_mod, "measure_routes", fake)
    s = summary_mod.summarize_run(meta, controller, table, data, measure=5, recalibrate=16, singles=["all", "min"])
    first = s["tradeoff"]["instance"][0]
    assert first["latency_sample"] == 5 and first["controller_ms"] == 0.25
    assert 1.25 <= first["latency_ms"] <= 1.25 + 17 / 100
    assert first["controller_share"] == pytest.approx(0.25 / first["latency_ms"])
    assert s["latency_source"].startswith("onnxruntime")
    measured = [r for batch in calls for r in batch]
    assert len(measured) == len(set(measured))  # every route timed once


@pytest.mark.parametrize("content, message", [(None, "directory without instance.pt"),
                                              ("{not json", "baselines.json: not JSON")])
def test_bad_run_dir_exits_2_with_one_line(content, message, run_dir, tmp_path, capsys):
    target = tmp_path
    if content is not None:
        target = tmp_path / "copy"
        target.mkdir()
        (target / "instance.pt").write_bytes((run_dir / "instance.pt").read_bytes())
        (target / "baselines.json").write_text(content)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(["report", str(target), "--out", str(tmp_path / "rep"), "--measure", "0"]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_unknown_single_is_refused(one_torch_thread):
    meta = MetaGraph(MetaGraphConfig(width=0.25, input_size=16, num_classes=4, stem_stride=1)).eval()
    controller = Controller(meta.num_layers, width=4).eval()
    x, y, xt, yt = tiny_arrays()
    data = from_arrays("tiny", x, y, xt, yt, class_names=["a", "b", "c", "d"], val_fraction=0.25, seed=0)
    with pytest.raises(ValueError, match="unknown fixed route 'k7'"):
        summary_mod.summarize_run(meta, controller, LatencyTable.from_macs(meta, controller), data, singles=["k7"])
