"""Lookup tables: signatures, enumeration, prediction, refusal, resumable build, validation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from latency_helpers import tiny_space

from mnas.latency import LatencyBackend, LatencyResult, LookupTable, arch_units
from mnas.latency.lut import block_units
from mnas.latency.lut_build import build_lut, enumerate_units, fit_overhead, unit_module, validate_lut
from mnas.space import BlockSpec, MnasNetSpace, get_arch


def _ms(module) -> float:
    return 1e-6 * sum(p.numel() for p in module.parameters()) + 0.01


class Fake(LatencyBackend):
    """Deterministic: a module costs its parameters (and 10 us); a network is its layers plus 50 us."""

    name = "fake"

    def __init__(self, tag: str = "a"):
        super().__init__()
        self.tag, self.model_calls = tag, 0

    def settings(self):
        return {"tag": self.tag}

    def _result(self, ms, size, classes, arch=None):
        return LatencyResult(ms, 0.0, 0.0, 1, self.name, self.settings(), size, 1, classes, {"cpu": "fake"},
                             {"mnas": "x"}, arch=arch)

    def measure_model(self, model, input_shape):
        self.model_calls += 1
        return self._result(_ms(model), input_shape[-1], 0)

    def _measure(self, arch, input_size, num_classes, batch_size, in_chans=3):
        total = sum(_ms(unit_module(u)) for u in arch_units(arch, input_size, num_classes)) + 0.05
        return self._result(total, input_size, num_classes, str(arch))


def test_inapplicable_identity_skip_is_the_same_signature_as_no_skip():
    down = BlockSpec("mbconv", 2, 3, 2, 6, 16, 24, 0.0, "identity")
    first, _ = block_units(down, 56, "relu")
    same, _ = block_units(replace(down, skip="none"), 56, "relu")
    assert first[0].key == same[0].key and "_none_" in first[0].key
    assert first[1].key != same[1].key  # the repeated layer (stride 1, 24 -> 24) keeps its residual
    widen = BlockSpec("ds", 1, 3, 1, 1, 16, 24, 0.0, "identity")  # stride 1 but the filters change
    assert "_none_" in block_units(widen, 28, "relu")[0][0].key


def test_arch_units_follow_the_network():
    arch = get_arch("mnasnet_a1")
    units = arch_units(arch, 224, 1000)
    assert len(units) == arch.num_layers + 2
    assert units[0].kind == "stem" and units[0].res == 224
    assert units[1].res == 112 and units[-1].kind == "head" and units[-1].res == 7
    assert units[-1].key == "head_i320_h1280_c1000_relu@7"


@pytest.mark.parametrize("space", [tiny_space(16), MnasNetSpace(1000, 224)], ids=["tiny", "mnasnet224"])
def test_enumeration_covers_every_architecture_of_the_space(space):
    units = enumerate_units(space)
    keys = [u.key for u in units]
    assert len(keys) == len(set(keys)), "each signature is measured once"
    assert not [k for k in keys if "_s2_" in k and "_identity_" in k]
    table = LookupTable(dict.fromkeys(keys, 1.0), space.input_size, space.num_classes)
    rng = np.random.default_rng(0)
    for _ in range(300):
        arch = space.sample(rng)
        assert table.missing(arch) == [], arch
        assert table.predict(arch) == pytest.approx(arch.num_layers + 2)


def test_predict_sums_scales_caches_and_refuses_what_it_lacks():
    space = tiny_space(16)
    units = enumerate_units(space)
    entries = {u.key: 0.1 * (i + 1) for i, u in enumerate(units)}
    table = LookupTable(entries, 16, 10, scale=1.5, overhead_ms=0.25)
    arch = space.sample(3)
    expected = 1.5 * sum(entries[u.key] for u in arch_units(arch, 16, 10)) + 0.25
    assert table.predict(arch) == pytest.approx(expected)
    assert table.predict(str(arch)) == pytest.approx(expected)
    assert table.measure(arch, 16, 10).median_ms == pytest.approx(expected)
    missing_key = arch_units(arch, 16, 10)[2].key
    partial = LookupTable({k: v for k, v in entries.items() if k != missing_key}, 16, 10)
    with pytest.raises(ValueError, match=f"layer '{missing_key}' is not in the lookup table.*build-lut"):
        partial.predict(arch)
    assert partial.missing(arch) == [missing_key]
    with pytest.raises(ValueError, match="built for input size 16, not 32"):
        table.measure(arch, 32, 10)
    with pytest.raises(ValueError, match="not in the lookup table"):
        table.predict(get_arch("mnasnet_a1"))


def test_fit_overhead_recovers_scale_and_constant():
    sums = [1.0, 2.0, 3.5, 5.0]
    scale, overhead = fit_overhead(sums, [1.1 * s + 0.3 for s in sums])
    assert scale == pytest.approx(1.1) and overhead == pytest.approx(0.3)
    assert fit_overhead([2.0], [2.5]) == (1.0, pytest.approx(0.5))
    assert fit_overhead([], []) == (1.0, 0.0)


def test_build_is_exact_for_an_additive_device_and_validates(tmp_path):
    space = tiny_space(16)
    backend = Fake()
    seen = []
    table = build_lut(space, backend, tmp_path / "t.json", fit_archs=4, progress=lambda d, t, w: seen.append((d, t)))
    units = enumerate_units(space)
    assert backend.model_calls == len(units) + 1  # each signature once, plus the empty graph
    assert seen[-1][0] == seen[-1][1] == len(units) + 4 + 1
    assert LookupTable.load(tmp_path / "t.json").entries == table.entries
    data = json.loads((tmp_path / "t.json").read_text())
    assert data["complete"] and data["backend"]["backend"] == "fake" and data["space"] == space.settings()
    report = validate_lut(table, backend, n=12, seed=5)
    assert report["n"] == 12 and report["within_10pct"] == 1.0 and report["mape"] < 1e-6
    assert report["spearman"] == pytest.approx(1.0)
    fitted = {p["arch"] for p in data["fit_points"]}
    assert not fitted & {r["arch"] for r in report["rows"]}, "validation never reuses the fitting networks"


def test_interrupted_build_resumes_from_its_file(tmp_path):
    space = tiny_space(16)
    out = tmp_path / "t.json"

    def stop_at_30(done, total, what):
        if done == 30:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_lut(space, Fake(), out, fit_archs=3, save_every=5, progress=stop_at_30)
    saved = json.loads(out.read_text())
    assert not saved["complete"] and 20 <= len(saved["entries"]) < 30
    with pytest.raises(ValueError, match="unfinished build"):
        LookupTable.load(out)
    with pytest.raises(ValueError, match="different backend key"):
        build_lut(space, Fake(tag="other"), out)
    backend = Fake()
    table = build_lut(space, backend, out, fit_archs=3, save_every=5)
    assert backend.model_calls == len(enumerate_units(space)) - len(saved["entries"])
    assert len(table.entries) == len(enumerate_units(space))


def test_load_refuses_what_is_not_a_table(tmp_path):
    with pytest.raises(FileNotFoundError):
        LookupTable.load(tmp_path / "absent.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a latency lookup table"):
        LookupTable.load(tmp_path / "x.json")
    (tmp_path / "y.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a latency lookup table"):
        LookupTable.load(tmp_path / "y.json")
    (tmp_path / "z.json").write_text(json.dumps({"format": "mnas-latency-lut/1", "complete": True}))
    with pytest.raises(ValueError, match="damaged"):
        LookupTable.load(tmp_path / "z.json")


def test_recalibration_refits_on_other_networks(tmp_path):
    space = tiny_space(16)
    backend = Fake()
    table = build_lut(space, backend, tmp_path / "t.json", fit_archs=3)
    drifted = Fake(tag="slower")
    drifted._measure = lambda arch, *args, **kw: backend._result(1.3 * backend._measure(arch, *args).median_ms, 16, 10)
    report = validate_lut(table, drifted, n=8, seed=9, recalibrate_with=4)
    assert report["fit"]["recalibrated_with"] == 4 and report["fit"]["scale"] == pytest.approx(1.3)
    assert report["within_10pct"] == 1.0 and report["mape"] < 1e-6
    assert validate_lut(table, drifted, n=8, seed=9)["mape"] > 20  # as built, the table is 30% off


def test_references_make_relative_targets_predictable(tmp_path):
    """Issue 13 item 20: a search's target "0.8x mnasnet_b1" is predicted by the table of its space."""
    from mnas.space import adapt_strides

    space = tiny_space(8)
    b1 = adapt_strides(get_arch("mnasnet_b1"), 8)
    plain = build_lut(space, Fake(), tmp_path / "plain.json", fit_archs=2)
    with pytest.raises(ValueError, match="not in the lookup table"):
        plain.predict(b1)
    table = build_lut(space, Fake(), tmp_path / "plain.json", fit_archs=2, references=["mnasnet_b1"])  # adds to it
    assert table.predict(b1) > 0 and table.meta["references"] == ["mnasnet_b1"]
    assert table.measure(b1, 8, 10).median_ms == table.predict(b1)


@pytest.mark.parametrize("damage", ["nested", "space_str", "space_keys", "fit_points", "backend", "entries"])
def test_validate_refuses_damaged_tables_with_exit_2(tmp_path, capsys, damage):
    """Issue 13 item 16: deeply nested or wrong-typed table JSON is bad input (exit 2), not an internal error."""
    from mnas.cli import main

    good = build_lut(tiny_space(8), Fake(), tmp_path / "t.json", fit_archs=2).meta
    data = {k: v for k, v in good.items()}
    if damage == "nested":
        text = "[" * 100_000 + "]" * 100_000
    else:
        data.update({"space_str": {"space": "abc"}, "space_keys": {"space": {"foo": 1}}, "fit_points": {"fit_points": 5},
                     "backend": {"backend": 3}, "entries": {"entries": [1, 2]}}[damage])
        text = json.dumps(data)
    bad = tmp_path / "bad.json"
    bad.write_text(text)
    rc = main(["latency", "validate", "--lut", str(bad), "--n", "1", "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 2 and "internal error" not in err and err.strip().splitlines()[-1].startswith("mnas: error:"), err
