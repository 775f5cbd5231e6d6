"""Ground truth files: NAS-Bench-Macro as published, generic JSON and CSV, the preset's parity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnas.space import LayerwiseSpace
from mnas.space.ground_truth import load_ground_truth
from mnas.space.presets import NAS_BENCH_MACRO_OPS, nas_bench_macro_space

NBM = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "nas-bench-macro_cifar10.json"


def _nbm_like(keys: dict[str, list[float]]) -> dict:
    return {k: {"test_acc": v, "mean_acc": sum(v) / len(v), "std": 0.0, "params": 1, "flops": 2} for k, v in keys.items()}


def test_nas_bench_macro_keys_map_by_token_and_equivalent_keys_merge(tmp_path):
    path = tmp_path / "nbm.json"
    # 00000000 / 01000000 / 10000000 differ; stage 2's identity in position 2 or 3 is one network
    path.write_text(json.dumps(_nbm_like({"00000000": [80.0, 81.0, 82.0], "10000000": [85.0, 86.0, 87.0],
                                          "00010000": [88.0, 89.0, 90.0], "00001000": [88.0, 89.0, 90.0]})))
    truth = load_ground_truth(path)
    assert len(truth) == 3
    space = nas_bench_macro_space()
    assert truth.tokens_match(space) and truth.tokens_match(nas_bench_macro_space(width_mult=0.5))
    merged = next(e for e in truth.entries if len(e.keys) == 2)
    assert set(merged.keys) == {"00010000", "00001000"}
    assert merged.seeds == pytest.approx((0.88, 0.89, 0.90))  # one training under two keys: kept once
    assert merged.accuracy == pytest.approx(0.89)
    assert merged.arch == str(space.decode([0, 0, 0, 1, 0, 0, 0, 0]))
    # a half-width supernet of the same decisions takes the entry by token
    half = nas_bench_macro_space(width_mult=0.5)
    assert truth.arch_in(merged, half) == str(half.decode(list(merged.tokens)))
    assert truth.seed_pairs() == ([e.seeds[0] for e in truth.entries], [e.seeds[1] for e in truth.entries])


def test_generic_json_and_csv_and_their_errors(tmp_path):
    space = nas_bench_macro_space()
    a, b = str(space.decode([1] * 8)), str(space.decode([2] * 8))
    (tmp_path / "list.json").write_text(json.dumps([{"arch": a, "accuracy": 0.5}, {"arch": b, "seeds": [0.6, 0.7]}]))
    truth = load_ground_truth(tmp_path / "list.json", space=space)
    assert [e.accuracy for e in truth.entries] == pytest.approx([0.5, 0.65])
    assert truth.entries[1].tokens == (2,) * 8 and truth.tokens_match(space)
    (tmp_path / "map.json").write_text(json.dumps({a: 0.1, b: {"accuracy": 0.2}}))
    assert [e.accuracy for e in load_ground_truth(tmp_path / "map.json").entries] == pytest.approx([0.1, 0.2])
    (tmp_path / "t.csv").write_text(f'arch,seed0,seed1\n"{a}",0.3,0.5\n"{b}",0.6,0.8\n')
    csv_truth = load_ground_truth(tmp_path / "t.csv")
    assert [e.accuracy for e in csv_truth.entries] == pytest.approx([0.4, 0.7])
    assert not csv_truth.tokens_match(space)
    for name, text, message in [
        ("bad.json", "{not json", "not valid JSON"),
        ("one.json", json.dumps({a: 0.1}), "at least 2"),
        ("nan.json", json.dumps([{"arch": a, "accuracy": "nan"}, {"arch": b, "accuracy": 1}]), "finite"),
        ("arch.json", json.dumps({"r1_k9_bogus": 0.1, b: 0.2}), "r1_k9_bogus"),
        ("nocol.csv", "arch,loss\nx,1\n", "'accuracy' column"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message):
            load_ground_truth(tmp_path / name)
    with pytest.raises(ValueError, match="not found"):
        load_ground_truth(tmp_path / "missing.json")
    other = LayerwiseSpace(10, 32, ops=("k3e3", "skip"))
    with pytest.raises(ValueError, match="not in the supernet's space"):
        truth.arch_in(csv_truth.entries[0], other)


def test_preset_is_the_benchmarks_space():
    space = nas_bench_macro_space()
    assert space.size == 3 ** 8 and [d.choices for d in space.decisions] == [NAS_BENCH_MACRO_OPS] * 8
    arch = space.decode([0, 2, 0, 1, 2, 1, 0, 0])
    assert arch.blocks[0].op == "proj" and arch.blocks[0].stride == 2 and arch.stem_stride == 1
    assert arch.head_chs == 1280 and arch.act == "relu"


@pytest.mark.skipif(not NBM.is_file(), reason="../shared/data/nas-bench-macro_cifar10.json is absent")
def test_parameter_counts_equal_the_benchmark_file_on_a_sample():
    import random

    from mnas.models import build_model, count_params

    doc = json.loads(NBM.read_text())
    space = nas_bench_macro_space()
    keys = random.Random(0).sample(sorted(doc), 40) + ["00000000", "22222222", "11111111"]
    for key in keys:
        assert count_params(build_model(space.decode([int(c) for c in key]), 10)) == doc[key]["params"], key
    truth = load_ground_truth(NBM)
    assert len(truth) == 3969 and sum(len(e.keys) for e in truth.entries) == 6561
    assert max(e.accuracy for e in truth.entries) == pytest.approx(0.9313, abs=1e-4)


def test_hostile_files_are_refused_in_one_line_or_read_as_meant(tmp_path):
    """Repeats of one architecture count once toward the minimum of 2; JSON's repeated keys, a negative
    accuracy and a non-numeric 'params' are refused naming the file; a spreadsheet's CSV (byte-order
    mark) is read."""
    space = nas_bench_macro_space()
    a, b = str(space.decode([1] * 8)), str(space.decode([2] * 8))
    for name, text, message in [
        ("dup.json", json.dumps([{"arch": a, "accuracy": 0.5}, {"arch": a, "accuracy": 0.6}]), "1 distinct"),
        ("dupkey.json", f'{{"{a}": 0.5, "{a}": 0.6, "{b}": 0.7}}', "appears twice"),
        ("neg.json", json.dumps({a: -3, b: 0.5}), "not in \\[0, 1\\]"),
        ("nbm_one.json", json.dumps(_nbm_like({"00000000": [90.0, 91.0, 92.0]})), "1 distinct"),
        ("same.json", json.dumps({a: 0.5, b: 0.5}), "same accuracy"),
        # review: a fraction beside a percentage ranked every fraction below every percentage, silently
        ("mixed.json", json.dumps({a: 0.95, b: 85}), "mix fractions \\(e.g. 0.95\\) and percentages \\(e.g. 85\\)"),
        ("nbm_params.json", json.dumps({"00000000": {"test_acc": [90, 91, 92], "params": None, "flops": "x"},
                                        "11111111": {"test_acc": [80, 81, 82]}}), "'flops'"),
    ]:
        (tmp_path / name).write_text(text)
        with pytest.raises(ValueError, match=message) as info:
            load_ground_truth(tmp_path / name)
        assert name in str(info.value)
    (tmp_path / "bom.csv").write_text(f'\ufeffarch,accuracy\n"{a}",0.5\n"{b}",0.6\n', encoding="utf-8")
    assert [e.accuracy for e in load_ground_truth(tmp_path / "bom.csv").entries] == pytest.approx([0.5, 0.6])
