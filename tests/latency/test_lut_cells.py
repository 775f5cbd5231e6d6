"""Lookup tables for cell spaces: units from `layer_signatures`, one module per op, build, predict, validate."""

import numpy as np
import pytest
import torch

from mnas.latency.base import LatencyBackend, LatencyResult
from mnas.latency.lut import LookupTable, arch_units
from mnas.latency.lut_build import build_lut, enumerate_units, table_space, unit_module, unit_shape, validate_lut
from mnas.space import DartsSpace, NB201Space


def _ms(module) -> float:
    return 1e-6 * sum(p.numel() for p in module.parameters()) + 0.01


class Fake(LatencyBackend):
    """Deterministic: a module costs its parameters (and 10 us); a network is its ops plus 50 us."""

    name = "fake"

    def settings(self):
        return {}

    def _result(self, ms, size, classes, arch=None):
        return LatencyResult(ms, 0.0, 0.0, 1, self.name, self.settings(), size, 1, classes, {"cpu": "fake"},
                             {"mnas": "x"}, arch=arch)

    def measure_model(self, model, input_shape):
        return self._result(_ms(model), input_shape[-1], 0)

    def _measure(self, arch, input_size, num_classes, batch_size, in_chans=3):
        total = sum(_ms(unit_module(u)) for u in arch_units(arch, input_size, num_classes, in_chans)) + 0.05
        return self._result(total, input_size, num_classes, str(arch))


def _tiny_nb201():
    return NB201Space(10, 8, channels=4, cells_per_stage=1)


def _tiny_darts():
    return DartsSpace(10, 8, channels=2, layers=3, steps=2)  # 12 decisions: the pairwise enumeration stays fast


@pytest.mark.parametrize("make_space", [_tiny_nb201, _tiny_darts])
def test_enumerated_units_cover_random_cells_and_each_builds_at_its_shape(make_space):
    torch.manual_seed(0)
    space = make_space()
    units = enumerate_units(space)
    keys = {u.key for u in units}
    assert len(keys) == len(units)
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = space.sample(rng)
        assert {u.key for u in arch_units(arch, space.input_size, space.num_classes)} <= keys
    for unit in units:
        module = unit_module(unit).eval()
        out = module(torch.zeros(unit_shape(unit)))
        if unit.kind == "head":
            assert out.shape == (1, unit.out_chs)
        else:
            assert out.shape == (1, unit.out_chs, unit.out_res, unit.out_res), unit.key
        # the op module holds exactly the parameters the family counts for it
        assert sum(p.numel() for p in module.parameters()) == unit.params, unit.key


def test_arch_units_leave_out_the_auxiliary_head():
    space = DartsSpace(10, 32, channels=2, layers=3, auxiliary=True)
    arch = space.sample(np.random.default_rng(0))
    units = arch_units(arch, 32, 10)
    assert units and not any(u.kind == "aux_head" for u in units)


def test_nb201_table_builds_predicts_validates_and_reopens(tmp_path):
    space = _tiny_nb201()
    backend = Fake()
    path = tmp_path / "nb201.json"
    table = build_lut(space, backend, path, fit_archs=4)
    assert table.meta["space_type"] == "NB201Space"
    arch = space.sample(np.random.default_rng(3))
    # the fake network is its ops plus a constant: the fit recovers it and predicts exactly
    measured = backend.measure(arch, space.input_size, space.num_classes).median_ms
    assert table.predict(arch) == pytest.approx(measured, rel=1e-6)
    assert table.predict(str(arch)) == table.predict(arch)
    assert table.missing(arch) == []
    reopened = LookupTable.load(path)
    assert isinstance(table_space(reopened), NB201Space)
    report = validate_lut(reopened, backend, n=5)
    assert report["n"] == 5 and report["mape"] < 1e-6


def test_a_cell_the_table_lacks_is_refused_by_name(tmp_path):
    space = NB201Space(10, 8, channels=4, cells_per_stage=1, ops=("none", "skip_connect"))
    table = build_lut(space, Fake(), tmp_path / "t.json", fit_archs=0)
    wider = NB201Space(10, 8, channels=4, cells_per_stage=1).decode([3] * 6)  # nor_conv_3x3 everywhere
    with pytest.raises(ValueError, match="nor_conv_3x3.*not in the lookup table"):
        table.predict(wider)
