"""Routed inference, the latency table, export and the torch-free runner."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mnas.instance.controller import Controller
from mnas.instance.latency import LatencyTable, build_table
from mnas.instance.metagraph import MetaGraph, MetaGraphConfig
from mnas.instance.routes import fixed_routes, parse_route, route_string
from mnas.instance.runtime import RoutedRuntime, evaluate_instance, evaluate_route, route_policies
from mnas.latency.base import LatencyBackend, LatencyResult

CFG = MetaGraphConfig(width=0.25, input_size=16, num_classes=4, stem_stride=1)


@pytest.fixture
def model(one_torch_thread):
    torch.manual_seed(0)
    meta = MetaGraph(CFG).eval()
    controller = Controller(meta.num_layers, width=4)
    torch.nn.init.normal_(controller.logits.weight, std=2.0)  # varied routes from an untrained controller
    return meta, controller.eval(), LatencyTable.from_macs(meta, controller)


class CountingBackend(LatencyBackend):
    """Says 1 ms per million parameters + 0.01 ms; counts calls (no timing)."""

    name = "counting"

    def __init__(self):
        super().__init__()
        self.shapes = []

    def measure_model(self, model, input_shape):
        self.shapes.append(tuple(input_shape))
        ms = 0.01 + sum(p.numel() for p in model.parameters()) / 1e6
        return LatencyResult(median_ms=ms, iqr_ms=0.0, cv=0.0, n=1, backend=self.name, settings={},
                             input_size=input_shape[-1])


def test_routed_runtime_runs_each_image_through_its_route_only(model):
    meta, controller, table = model
    x = torch.randn(8, 3, 16, 16)
    runtime = RoutedRuntime(meta, controller, table)
    logits, routes = runtime(x)
    assert len(set(routes)) > 1  # the images really take different routes
    with torch.no_grad():
        bits = route_policies(controller(x).numpy(), table)
        policy = torch.from_numpy(((bits[:, :, None] >> np.arange(5)) & 1).astype(bool))
        torch.testing.assert_close(logits, meta(x, policy), rtol=1e-4, atol=1e-5)
    assert sum(runtime.route_counts.values()) == 8


def test_a_tighter_budget_gives_cheaper_routes(model, tiny_data):
    meta, controller, table = model
    loose = evaluate_instance(meta, controller, tiny_data, "test", table, threshold=0.5)
    full = table.route_ms(fixed_routes(meta.skippable)["all"])
    tight = evaluate_instance(meta, controller, tiny_data, "test", table, budget_ms=0.5 * loose["mean_latency_ms"])
    assert tight["mean_latency_ms"] < loose["mean_latency_ms"] < full
    assert np.all(tight["latency_ms"] <= max(0.5 * loose["mean_latency_ms"], table.route_ms(fixed_routes(
        meta.skippable)["min"])) + 1e-9)


def test_table_times_every_module_at_its_input_shape(model):
    meta, controller, _ = model
    backend = CountingBackend()
    table = build_table(meta, controller, backend)
    assert len(backend.shapes) == 17 * 5 + 3  # modules, stem, head, controller
    assert backend.shapes[:5] == [(1, meta.shapes[0].in_chs, 16, 16)] * 5
    bounds = table.bounds()
    assert bounds["min"] < bounds["all"] and bounds["k3e6"] < bounds["all"]
    assert LatencyTable.from_dict(json.loads(json.dumps(table.to_dict()))).modules_ms == table.modules_ms
    with pytest.raises(ValueError, match="latency table of shape"):
        LatencyTable([[1.0] * 5], 0.0, 0.0, [True, False])


def test_fixed_route_evaluation_recalibrates_batch_norm(model, tiny_data):
    meta, _, _ = model
    route = fixed_routes(meta.skippable)["k3e3"]
    res = evaluate_route(meta, route, tiny_data, "test", recalibrate=32)
    assert res["route"] == route_string(route) and 0 <= res["accuracy"] <= 1 and res["n"] == 32
    before = meta.layers[3].ops["1"].conv_pw[1].running_var.clone()
    evaluate_route(meta, route, tiny_data, "test", recalibrate=32)
    assert torch.equal(before, meta.layers[3].ops["1"].conv_pw[1].running_var)  # the meta-graph is untouched


@pytest.mark.slow  # about 100 s on a loaded 2-core machine (exports and times every route)
def test_export_runs_without_torch_and_agrees_with_pytorch(model, tiny_data, tmp_path):
    pytest.importorskip("onnxruntime")
    from mnas.instance.export import export_instance

    meta, controller, table = model
    ev = evaluate_instance(meta, controller, tiny_data, "test", table)
    keep = sorted(set(ev["routes"]))[:-1]  # leave one route out: the runner must fall back to a neighbour
    manifest = export_instance(meta, controller, keep, tmp_path, table=table, mean=list(tiny_data.mean),
                               std=list(tiny_data.std), class_names=list(tiny_data.class_names))
    assert len(manifest["routes"]) == len(keep) and (tmp_path / "controller.onnx").is_file()
    np.save(tmp_path / "images.npy", tiny_data.x_test)
    code = ("import sys, json, numpy as np; sys.modules['torch'] = None\n"
            "from mnas.instance.runner import InstanceRunner\n"
            f"r = InstanceRunner({str(tmp_path)!r}); out = r.predict(np.load({str(tmp_path / 'images.npy')!r}))\n"
            "print(json.dumps({'labels': out['labels'].tolist(), 'routes': out['routes'], 'ran': out['ran'],"
            " 'fallbacks': out['fallbacks']}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["routes"] == ev["routes"]  # same controller decisions as PyTorch
    direct = [i for i, r in enumerate(out["routes"]) if r in manifest["routes"]]
    expected = evaluate_instance(meta, controller, tiny_data, "test", table)["correct"]
    pred = np.array(out["labels"])
    assert np.array_equal(pred[direct] == tiny_data.y_test[direct], expected[direct])
    assert out["fallbacks"] == sum(r not in manifest["routes"] for r in out["routes"]) > 0
    assert all(r in manifest["routes"] for r in out["ran"])


def test_runner_refuses_what_it_cannot_run(tmp_path):
    from mnas.instance.runner import InstanceRunner

    with pytest.raises(FileNotFoundError, match="not an instance export"):
        InstanceRunner(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="expected 'mnas.instance.export/1'"):
        InstanceRunner(tmp_path)


def test_route_text_survives_parse_for_every_fixed_route():
    skippable = [s.skippable for s in CFG.layers()]
    for route in fixed_routes(skippable).values():
        assert parse_route(route_string(route), 17) == route
