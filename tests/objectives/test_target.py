import ast
import pathlib
import subprocess
import sys

import pytest

import mnas.objectives
from mnas.objectives import Target


@pytest.mark.parametrize("text, ms", [("20ms", 20.0), ("20", 20.0), (" 20 MS ", 20.0), ("12.5 ms", 12.5),
                                      ("0.02s", 20.0), ("500us", 0.5), (".5", 0.5), ("1e1ms", 10.0)])
def test_absolute(text, ms):
    t = Target.parse(text)
    assert t.ms == pytest.approx(ms) and not t.is_relative
    assert t.resolve() == pytest.approx(ms)


@pytest.mark.parametrize("text, ref, factor", [
    ("mobilenetv2", "mobilenetv2", 1.0), ("MobileNetV2", "mobilenetv2", 1.0),
    ("1.5x mnasnet_b1", "mnasnet_b1", 1.5), ("1.5 x mnasnet_b1", "mnasnet_b1", 1.5),
    ("1.5*mnasnet_b1", "mnasnet_b1", 1.5), ("mobilenetv2*0.8", "mobilenetv2", 0.8),
    ("mobilenetv2 * 0.8", "mobilenetv2", 0.8), ("0.8x mnasnet_b1_x0.5", "mnasnet_b1_x0.5", 0.8),
])
def test_relative(text, ref, factor):
    t = Target.parse(text)
    assert (t.reference, t.factor) == (ref, factor) and t.is_relative
    calls = []
    assert t.resolve(lambda name: calls.append(name) or 10.0) == pytest.approx(10 * factor)
    assert calls == [ref]


@pytest.mark.parametrize("text", ["20ms", "mobilenetv2", "1.5x mnasnet_b1", "0.8x mnasnet_b1_x0.5"])
def test_str_round_trip(text):
    t = Target.parse(text)
    assert Target.parse(str(t)) == t


@pytest.mark.parametrize("text", ["", "1.5x", "x mobilenetv2", "mobilenetv2 x0.8", "-5ms", "0", "0ms",
                                  "abc def", "2*a*3", "20 parsecs", "1.5xmnasnet", None, [20]])
def test_bad_text(text):
    with pytest.raises(ValueError, match="target"):
        Target.parse(text)


def test_numbers_and_targets_pass_through():
    assert Target.parse(20) == Target(ms=20)
    t = Target(reference="mobilenetv2", factor=2)
    assert Target.parse(t) is t


def test_constructor_validation():
    with pytest.raises(ValueError, match="either ms or a reference"):
        Target()
    with pytest.raises(ValueError, match="either ms or a reference"):
        Target(ms=3, reference="mobilenetv2")
    with pytest.raises(ValueError, match="factor applies only"):
        Target(ms=3, factor=2)
    with pytest.raises(ValueError, match="factor"):
        Target(reference="mobilenetv2", factor=0)


def test_resolve_errors():
    t = Target.parse("1.5x mobilenetv2")
    with pytest.raises(ValueError, match="pass measure"):
        t.resolve()
    for bad in (0.0, -1.0, float("nan"), None, "3"):
        with pytest.raises(ValueError, match="measured latency of 'mobilenetv2'"):
            t.resolve(lambda name, bad=bad: bad)


def test_objectives_import_nothing_from_mnas_and_not_torch():
    root = pathlib.Path(mnas.objectives.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("mnas") or name.startswith("mnas.objectives"), (path.name, name)
                assert not name.startswith("torch"), (path.name, name)
    code = "import sys, mnas.objectives; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
