"""`mnas._util.check_keys`: the one unknown-key check of the `from_dict` methods, each keeping its own message."""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

import pytest

import mnas


def test_check_keys_names_the_first_unknown_key_in_sorted_order():
    from mnas._util import check_keys

    check_keys({"a": 1}, ("a", "b"), lambda key: f"never {key}")  # all known: nothing raised
    check_keys({}, (), lambda key: f"never {key}")
    with pytest.raises(ValueError) as exc:
        check_keys({"z": 1, "y": 2, "a": 3}, iter(["a"]), lambda key: f"unknown thing {key!r}: expected a")
    assert str(exc.value) == "unknown thing 'y': expected a"


def _message(from_dict, data) -> str:
    with pytest.raises(ValueError) as exc:
        from_dict(data)
    return str(exc.value)


def test_every_from_dict_keeps_its_unknown_key_message():
    from mnas.instance.train import InstanceConfig
    from mnas.objectives.constraints import Constraints
    from mnas.objectives.reward import Reward
    from mnas.oneshot.fbnet import FBNetConfig
    from mnas.oneshot.train import SupernetTrainConfig
    from mnas.space.arch import Arch
    from mnas.space.cells.darts import DARTS_V2, DartsFamily
    from mnas.study.trial import Trial
    from mnas.train.config import TrainConfig

    def names(cls) -> str:
        return ", ".join(sorted(f.name for f in fields(cls)))

    assert _message(Constraints.from_dict, {"zz": 1, "yy": 2}) == (
        "constraints: unknown limit 'yy': expected some of max_params, max_macs, max_peak_memory, max_latency_ms")
    assert _message(Reward.from_dict, {"zz": 1, "target_ms": 3}) == (
        "reward: unknown key 'zz': expected kind, target_ms, alpha, beta, hard")
    assert _message(InstanceConfig.from_dict, {"zz": 1}) == (
        f"unknown instance setting 'zz': expected one of {names(InstanceConfig)}")
    assert _message(TrainConfig.from_dict, {"zz": 1}) == f"unknown training setting 'zz': expected one of {names(TrainConfig)}"
    assert _message(FBNetConfig.from_dict, {"zz": 1}) == f"unknown FBNetConfig field 'zz': expected some of {names(FBNetConfig)}"
    assert _message(SupernetTrainConfig.from_dict, {"zz": 1}) == (
        f"unknown supernet training setting 'zz': expected one of {names(SupernetTrainConfig)}")
    assert _message(Arch.from_dict, {"zz": 1, "blocks": []}) == (
        "unknown key 'zz' in architecture JSON: expected blocks, stem_stride, head_chs, dropout, act")
    genotype = {"family": "darts", "normal": DARTS_V2.normal, "zz": 1}  # 'family' is known, not listed
    assert _message(DartsFamily().from_dict, genotype) == (
        "unknown key 'zz' in a DARTS genotype's JSON: expected normal, normal_concat, reduce, reduce_concat, channels,"
        " layers, auxiliary, drop_path")
    assert _message(Trial.from_dict, {"zz": 1}) == "unknown trial field 'zz'"


def test_no_from_dict_repeats_the_unknown_key_check():
    # before: five modules each computed sorted(set(data) - known) and raised on the first one
    src = Path(mnas.__file__).parent
    repeated = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text()
        if "def from_dict" not in text or path.parent.name == "objectives":  # imports nothing from mnas
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef) and node.name == "from_dict":
                body = "\n".join(text.splitlines()[node.lineno - 1:node.end_lineno])
                if "set(data) -" in body:
                    repeated.append(f"{path.relative_to(src)}:{node.lineno}")
    assert not repeated, f"use mnas._util.check_keys in {', '.join(repeated)}"
