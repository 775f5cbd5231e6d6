"""FBNet-style search: the exact expected-latency term, target seeking from both sides, derivation,
the measured closed loop, exact resume, and one-line errors."""

from __future__ import annotations

import itertools
import json
import math
import zlib

import numpy as np
import pytest
import torch

from mnas.latency import LookupTable, enumerate_units
from mnas.oneshot import build_supernet
from mnas.oneshot.fbnet import FBNetConfig, search_fbnet
from mnas.oneshot.fbnet_latency import expected_latency_model
from mnas.space import LayerwiseSpace, MnasNetSpace
from mnas.train.datasets import NO_AUGMENT, from_arrays

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {
    "mnasnet": lambda: MnasNetSpace(4, 8, width_mult=0.25, stages=((16, 1, 1), (24, 2, 2), (32, 2, 2)), head_chs=32),
    "layerwise": lambda: LayerwiseSpace(4, 8, width_mult=0.5, stages=((16, 2, 1), (24, 2, 2)), head_chs=32,
                                        ops=("k3e3", "k3e6", "skip")),
}
TINY = {"epochs": 3, "batch_size": 8, "train_images": 48, "a_lr": 0.1}


def _table(space, scale: float = 1.0, overhead: float = 0.0) -> LookupTable:
    """A table with a deterministic pseudo-random entry per layer signature (no timing)."""
    entries = {u.key: 0.01 + (zlib.crc32(u.key.encode()) % 1000) / 1000 for u in enumerate_units(space)}
    return LookupTable(entries, space.input_size, space.num_classes, scale=scale, overhead_ms=overhead)


def _data(n: int = 48, size: int = 8):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % 4
    return from_arrays("rand", x, y, x[:4], y[:4], [str(i) for i in range(4)], val_fraction=0.0, augment=NO_AUGMENT)


def _uniform(space) -> list[torch.Tensor]:
    return [torch.full((len(d),), 1.0 / len(d), dtype=torch.float64) for d in space.decisions]


def _net(space):
    torch.manual_seed(0)
    return build_supernet(space)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_expected_latency_equals_the_table_on_one_hot_probabilities(name):
    space = MnasNetSpace(10, 32, width_mult=0.25) if name == "mnasnet" else LayerwiseSpace(10, 32, width_mult=0.25)
    table = _table(space, scale=1.1, overhead=0.3)
    model = expected_latency_model(space, table)
    rng = np.random.default_rng(0)
    for _ in range(10):
        tokens = space.sample_tokens(rng)
        one_hot = [torch.nn.functional.one_hot(torch.tensor(t), len(d)).double() for t, d in zip(tokens, space.decisions,
                                                                                                 strict=True)]
        want = table.predict(space.decode(tokens))
        assert float(model(one_hot)) == pytest.approx(want, rel=1e-9)
        assert model.predict(tokens) == pytest.approx(want, rel=1e-9)


def test_expected_latency_is_the_exact_expectation():
    """Brute force over a small space: sum over every architecture of P(arch) * table(arch)."""
    space = MnasNetSpace(4, 8, width_mult=0.25, stages=((16, 1, 1), (24, 1, 2)), head_chs=0, ops=("ds", "mbconv3"),
                         kernel_sizes=(3,), se_ratios=(0.0,), skips=("none", "identity"), filter_mults=(0.75, 1.25),
                         layer_deltas=(0, 1))
    table = _table(space)
    model = expected_latency_model(space, table)
    gen = torch.Generator().manual_seed(0)
    probs = [torch.softmax(torch.randn(len(d), generator=gen, dtype=torch.float64), -1) for d in space.decisions]
    want = 0.0
    for tokens in itertools.product(*(range(len(d)) for d in space.decisions)):
        p = math.prod(float(probs[i][t]) for i, t in enumerate(tokens))
        want += p * table.predict(space.decode(list(tokens)))
    assert float(model(probs)) == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_latency_term_pulls_the_expectation_toward_the_target_from_both_sides(name):
    space = SPACES[name]()
    table, data = _table(space), _data()
    start = float(expected_latency_model(space, table)(_uniform(space)))
    for factor in (0.7, 1.3):
        target = factor * start
        result = search_fbnet(_net(space), data, target, table, FBNetConfig(max_rounds=1, **TINY))
        moved = result.expected_ms - start
        assert moved < 0 if factor < 1 else moved > 0
        assert abs(result.expected_ms - target) < abs(start - target)


@pytest.mark.parametrize("name", sorted(SPACES))
def test_derived_arch_is_in_the_space_and_records_have_the_fields(name):
    space = SPACES[name]()
    table, net = _table(space), _net(space)
    target = float(expected_latency_model(space, table)(_uniform(space)))
    records = []
    result = search_fbnet(net, _data(), target, table, FBNetConfig(max_rounds=1, **TINY), progress=records.append)
    assert space.decode(space.encode(result.arch)) == result.arch
    assert net.active_arch == result.arch
    assert result.predicted_ms == pytest.approx(table.predict(result.arch))
    assert result.measured_ms == result.predicted_ms and result.rounds == 1  # no measure: the table stands in
    assert records == result.history and len(records) == TINY["epochs"]
    for key in ("epoch", "entropy", "arch", "softmax", "expected_ms", "target_ms", "lambda", "tau", "train_loss",
                "val_acc", "seconds", "measured_ms", "table_target_ms", "round"):
        assert key in records[-1], key
    assert set(records[-1]["softmax"]) == {d.name for d in space.decisions}
    assert records[0]["tau"] > records[-1]["tau"]
    assert 0 < records[-1]["entropy"] <= math.log(max(len(d) for d in space.decisions))
    json.dumps(result.history)


def test_closed_loop_rescales_the_table_target_by_target_over_measured():
    space = SPACES["mnasnet"]()
    table = _table(space)
    target = float(expected_latency_model(space, table)(_uniform(space)))
    calls = []

    def measure(arch):  # a device 30% slower than the table says
        calls.append(str(arch))
        return 1.3 * table.predict(arch)

    result = search_fbnet(_net(space), _data(), target, table, FBNetConfig(max_rounds=5, round_epochs=2, **TINY),
                          measure=measure)
    log = result.rounds_log
    assert len(log) == result.rounds == len(calls) >= 2
    assert log[0]["table_target_ms"] == pytest.approx(target)
    for before, after in itertools.pairwise(log):
        assert after["table_target_ms"] == pytest.approx(before["table_target_ms"] * target / before["measured_ms"])
    assert result.measured_ms == pytest.approx(1.3 * result.predicted_ms)
    if result.within_tolerance:
        assert abs(result.measured_ms / target - 1) <= 0.05
    else:
        assert result.rounds == 5
    assert result.table_target_ms == pytest.approx(log[-1]["table_target_ms"])


def test_resume_continues_exactly(tmp_path):
    space = SPACES["layerwise"]()
    table, data = _table(space), _data()
    target = 0.8 * float(expected_latency_model(space, table)(_uniform(space)))
    config = FBNetConfig(max_rounds=3, round_epochs=1, **TINY)
    measure = lambda arch: 1.2 * table.predict(arch)  # noqa: E731
    full_net = _net(space)
    full = search_fbnet(full_net, data, target, table, config, measure=measure, out=tmp_path / "a")

    class Stop(Exception):
        pass

    def stop_at_2(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        search_fbnet(_net(space), data, target, table, config, measure=measure, out=tmp_path / "b", progress=stop_at_2)
    resumed_net = build_supernet(space)  # other random weights: everything must come from the checkpoint
    resumed = search_fbnet(resumed_net, data, target, table, config, measure=measure, out=tmp_path / "b", resume=True)
    drop = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert drop(resumed.history) == drop(full.history)
    assert resumed.alphas == full.alphas and resumed.arch == full.arch and resumed.rounds_log == full.rounds_log
    for (k, a), b in zip(full_net.state_dict().items(), resumed_net.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    with pytest.raises(ValueError, match="another target_ms"):
        search_fbnet(_net(space), data, target * 2, table, config, out=tmp_path / "b", resume=True)


def test_bad_inputs_give_one_line_value_errors():
    space = SPACES["layerwise"]()
    table, data, net = _table(space), _data(), _net(space)
    for target in (0, -1.0, math.nan, math.inf, True, "1ms"):
        with pytest.raises(ValueError, match="target_ms"):
            search_fbnet(net, data, target, table)
    with pytest.raises(ValueError, match="unknown FBNetConfig field 'bogus'"):
        FBNetConfig.from_dict({"epochs": 2, "bogus": 1})
    assert FBNetConfig.from_dict(FBNetConfig(epochs=2).to_dict()) == FBNetConfig(epochs=2)
    for bad in ({"epochs": 0}, {"val_share": 1.0}, {"tau_min": 2.0, "tau_max": 1.0}, {"latency_weight": -1.0},
                {"warmup_epochs": None}, {"train_images": 2}):
        with pytest.raises(ValueError, match="FBNetConfig"):
            FBNetConfig(**bad)
    with pytest.raises(ValueError, match="LookupTable"):
        search_fbnet(net, data, 1.0, object())
    partial = LookupTable(dict(list(table.entries.items())[1:]), space.input_size, space.num_classes)
    with pytest.raises(ValueError, match="not in the lookup table"):
        search_fbnet(net, data, 1.0, partial)
    with pytest.raises(ValueError, match="input size"):
        search_fbnet(net, data, 1.0, LookupTable(table.entries, 16, space.num_classes))
    with pytest.raises(ValueError, match="classes"):
        search_fbnet(build_supernet(LayerwiseSpace(5, 8, width_mult=0.5, stages=((16, 2, 1),), head_chs=32)), data, 1.0,
                     table)
    with pytest.raises(ValueError, match="measure="):
        search_fbnet(net, data, 1.0, table, measure=3)
    with pytest.raises(ValueError, match="Supernet"):
        search_fbnet(42, data, 1.0, table)
    for exc in (pytest.raises(ValueError),):
        with exc as info:
            search_fbnet(net, data, -1, table)
        assert "\n" not in str(info.value)
