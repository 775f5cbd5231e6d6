"""Latency by op type across lookup tables (issue 20 item 5): `compare_tables` and
`mnas latency compare-luts`."""

from __future__ import annotations

import json

import pytest

from mnas.cli import main
from mnas.latency import LookupTable
from mnas.latency.lut_compare import compare_tables, op_type, plot_op_types

K3 = "mbconv_k3_s1_e3_i32_o32_se0_identity_relu@16"
K5 = "mbconv_k5_s2_e6_i32_o64_se0.25_none_relu@16"
K5B = "mbconv_k5_s1_e6_i64_o64_se0.25_identity_relu@8"
STEM = "stem_i3_o32_k3_s1_relu@32"
HEAD = "head_i64_h1280_c10_relu@8"


def _doc(runtime: str, precision: str, entries: dict[str, float], size: int = 32, space: str = "LayerwiseSpace"):
    return {"format": "mnas-latency-lut/1", "complete": True, "input_size": size, "num_classes": 10,
            "space_type": space, "runtime": runtime, "precision": precision,
            "entries": {k: {"ms": v} for k, v in entries.items()}}


def _table(*args, **kwargs) -> LookupTable:
    return LookupTable.from_dict(_doc(*args, **kwargs))


def test_op_type_names_block_layers_stem_head_and_cell_ops():
    assert op_type(K3) == "mbconv k3 e3"
    assert op_type(K5) == "mbconv k5 e6 +se"
    assert op_type("proj_k1_s2_e1_i32_o64_se0.0_none_relu@32") == "proj"
    assert op_type("ds_k3_s1_e1_i32_o16_se0.25_none_relu@112") == "ds k3 +se"
    assert op_type("conv_k3_s2_e1_i16_o24_se0_none_relu@56") == "conv k3"
    assert op_type(STEM) == "stem" and op_type(HEAD) == "head"
    assert op_type("nb201:cell_op:nor_conv_3x3_i16_o16_s1@32") == "nor_conv_3x3"
    assert op_type("darts:stem:conv_3x3_i3_o16_s1@32") == "stem" and op_type("nb201:head:pool_linear_i64_o10_s1@8") == "head"
    assert op_type("mbconv_k3_s1_e6_i32_o32_se1e-05_identity_relu@16") == "mbconv k3 e6 +se"  # an exponent


def test_compare_tables_sums_and_ratios_per_type():
    fp32 = _table("litert", "fp32", {K3: 1.0, K5: 2.0, K5B: 4.0, STEM: 0.5, HEAD: 0.2})
    int8 = _table("litert", "int8", {K3: 0.5, K5: 1.0, K5B: 1.0, STEM: 0.5, "only_here_k1@1": 9.0})
    data = compare_tables({"litert/fp32": fp32, "litert/int8": int8})
    rows = {row["type"]: row for row in data["types"]}
    assert data["shared_units"] == 4 and data["only_in"] == {"litert/fp32": 1, "litert/int8": 1}
    assert set(rows) == {"mbconv k3 e3", "mbconv k5 e6 +se", "stem"}  # the head is not in both
    k5 = rows["mbconv k5 e6 +se"]
    assert k5["units"] == 2 and k5["ms"] == {"litert/fp32": 6.0, "litert/int8": 2.0}
    assert k5["ratio"]["litert/int8"] == {"median": 0.375, "min": 0.25, "max": 0.5}
    assert k5["int8_over_fp32"]["litert"]["median"] == 0.375
    assert rows["stem"]["ratio"]["litert/int8"]["median"] == 1.0
    assert [row["type"] for row in data["types"]][0] == "mbconv k5 e6 +se"  # the base's costliest first
    assert data["total_ms"] == {"litert/fp32": 7.5, "litert/int8": 3.0}


def test_int8_over_fp32_is_within_a_runtime_not_against_the_first_table():
    ort = _table("onnxruntime", "fp32", {K3: 1.0})
    lit = _table("litert", "fp32", {K3: 2.0})
    lit8 = _table("litert", "int8", {K3: 0.5})
    data = compare_tables({"onnxruntime/fp32": ort, "litert/fp32": lit, "litert/int8": lit8})
    row = data["types"][0]
    assert row["ratio"]["litert/int8"]["median"] == 0.5  # against the first table
    assert row["int8_over_fp32"] == {"litert": {"median": 0.25, "min": 0.25, "max": 0.25}}


@pytest.mark.parametrize("other, message", [
    (_doc("litert", "int8", {K3: 1.0}, size=64), "another input size"),
    (_doc("litert", "int8", {K3: 1.0}, space="MnasNetSpace"), "another space"),
    (_doc("litert", "int8", {STEM: 1.0}), "share no unit"),
])
def test_tables_of_other_spaces_are_refused(other, message):
    with pytest.raises(ValueError, match=message):
        compare_tables({"a": _table("litert", "fp32", {K3: 1.0}), "b": LookupTable.from_dict(other)})
    with pytest.raises(ValueError, match="at least two"):
        compare_tables({"a": _table("litert", "fp32", {K3: 1.0})})


def test_old_tables_without_a_space_type_are_the_mnasnet_space_and_damaged_entries_are_refused():
    old = _doc("litert", "int8", {K3: 0.5})
    del old["space_type"]
    data = compare_tables({"a": _table("litert", "fp32", {K3: 1.0}, space="MnasNetSpace"),
                           "b": LookupTable.from_dict(old)})
    assert data["space_type"] == "MnasNetSpace" and data["shared_units"] == 1
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="damaged lookup table .*rebuild it"):
            compare_tables({"a": _table("litert", "fp32", {K3: 1.0}), "b": _table("litert", "int8", {K3: bad})})


def test_plot_is_written(tmp_path):
    data = compare_tables({"litert/fp32": _table("litert", "fp32", {K3: 1.0, K5: 2.0}),
                           "litert/int8": _table("litert", "int8", {K3: 0.5, K5: 1.0})})
    plot_op_types(data, tmp_path / "ops.png")
    assert (tmp_path / "ops.png").read_bytes()[:4] == b"\x89PNG"


def _write(path, doc):
    path.write_text(json.dumps(doc))
    return str(path)


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    a = _write(tmp_path / "fp32.json", _doc("executorch", "fp32", {K3: 1.0, K5: 2.0}))
    b = _write(tmp_path / "int8.json", _doc("executorch", "int8", {K3: 0.5, K5: 1.5}))
    assert main(["latency", "compare-luts", a, b, "--plot", str(tmp_path / "p.png")]) == 0
    out = capsys.readouterr().out
    assert "2 units shared by all 2 tables" in out and "executorch int8/fp32" in out
    assert "mbconv k5 e6 +se" in out and "0.75" in out and (tmp_path / "p.png").is_file()
    assert main(["latency", "compare-luts", a, b, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["labels"] == ["executorch/fp32", "executorch/int8"]


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys):
    a = _write(tmp_path / "fp32.json", _doc("executorch", "fp32", {K3: 1.0}))
    b = _write(tmp_path / "other.json", _doc("executorch", "int8", {K3: 1.0}, size=64))
    for argv, message in (([a], "at least two tables"), ([a, a], "given twice"), ([a, str(tmp_path)], "is a folder"),
                          ([a, str(tmp_path / "none.json")], "not found"), ([a, b], "another input size")):
        assert main(["latency", "compare-luts", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
