"""`mnas report`'s deployment section (issue 20 item 5): trials scored with `--score int8` get accuracy fp32
against int8 per trial (the drop); a ranking file from `compare_rankings` adds fp32 against int8 latency per
architecture and Kendall tau; both as a plot, on the page and as JSON. Bad ranking files are one line, exit 2."""

from __future__ import annotations

import json
import math

import pytest

from mnas.cli import main
from mnas.latency.ranking import kendall_tau as kendall_tau_b
from mnas.reports.deployment import deployment_data, load_ranking, ranking_data
from mnas.study import SQLiteStorage, Study

pytest.importorskip("matplotlib")

ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.0_relu"
SPACE = {"class": "mnas.space.mnasnet.MnasNetSpace", "settings": {"input_size": 8, "num_classes": 10}}
LATENCY_KEY = json.dumps({"backend": "onnxruntime", "precision": "int8", "calibration": 8, "threads": 1})
CONFIG = {"space": SPACE, "strategy": "random", "seed": 0, "target_ms": 2.0,
          "evaluator": {"kind": "builtin", "latency": LATENCY_KEY,
                        "score": {"runtime": "onnxruntime", "calibration": 100, "score": "int8"}}}
# (fp32, int8, latency): trial 2 loses most; trial 1 is the best under 2 ms by fp32, trial 0 by int8
FIGURES = [(0.80, 0.79, 1.0), (0.85, 0.70, 1.5), (0.60, 0.40, 1.2), (0.90, 0.89, 3.0), (0.50, 0.50, 0.5)]


def _study(path, figures=FIGURES, config=CONFIG, int8=True):
    with SQLiteStorage(path) as storage:
        storage.set_meta("config", config)
        storage.set_meta("target_ms", 2.0)
        for i, (fp32, q, lat) in enumerate(figures):
            n = storage.create_trial([i], ARCH.replace("s1_h32", f"s1_h{32 + i}"))
            extra = {"accuracy_fp32": fp32, "accuracy_int8": q, "int8_runtime": "onnxruntime"} if int8 else {}
            storage.complete_trial(n, q if int8 else fp32, lat, q, extra={"accuracy_source": "proxy", **extra})
        n = storage.create_trial([9], ARCH.replace("s1_h32", "s1_h99"))
        if int8:
            storage.fail_trial(n, "int8 quantization for onnxruntime failed: <unsupported op>",
                               extra={"accuracy_fp32": 0.7})
        else:
            storage.fail_trial(n, "out of memory")
    return path


def _ranking(path, n=12, labels=("onnxruntime/fp32", "onnxruntime/int8", "litert/fp32", "litert/int8"), **extra):
    rows = []
    for i in range(n):
        base = 1.0 + i
        values = {"onnxruntime/fp32": base, "onnxruntime/int8": base * (2.0 if i % 3 == 0 else 1.2),
                  "litert/fp32": base * 0.9, "litert/int8": base * 0.5}
        rows.append({"arch": f"arch{i}", "latency_ms": {k: values[k] for k in labels}, "cv": {}})
    data = {"format": "mnas-latency-ranking/1", "space_type": "MnasNetSpace",
            "space": {"input_size": 224, "num_classes": 1000}, "seed": 0, "n": n,
            "backends": dict.fromkeys(labels, "key"), "rows": rows, **extra}
    path.write_text(json.dumps(data))
    return path


def test_kendall_tau_b_agrees_with_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    a = [0.5, 0.5, 0.7, 0.9, 0.2, 0.7, 0.1]
    b = [0.4, 0.6, 0.7, 0.7, 0.1, 0.3, 0.1]
    assert kendall_tau_b(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    assert kendall_tau_b([1, 2], [1, 2]) is None and kendall_tau_b([1, 1, 1], [1, 2, 3]) is None


def test_deployment_data_per_trial_drop_picks_and_failures(tmp_path):
    with Study(SQLiteStorage(_study(tmp_path / "s.db"), read_only=True)) as study:
        data = deployment_data(study.trials, study.meta, None, 2.0)
    assert data["n_int8"] == 5 and data["n_int8_failed"] == 1 and "unsupported op" in data["failed"][0]["failure"]
    assert [round(r["drop"], 4) for r in data["trials"]] == [0.01, 0.15, 0.2, 0.01, 0.0]
    assert data["worst"]["number"] == 2 and data["drop"]["median"] == pytest.approx(0.01)
    assert (data["pick_fp32"], data["pick_int8"], data["pick_changes"]) == (1, 0, True)
    assert (data["latency_runtime"], data["latency_precision"], data["score"], data["calibration"]) == (
        "onnxruntime", "int8", "int8", 100)
    assert -1 <= data["kendall_accuracy"] <= 1 and data["ranking"] is None
    json.dumps(data, allow_nan=False)
    with Study(SQLiteStorage(_study(tmp_path / "f.db", int8=False), read_only=True)) as study:
        assert deployment_data(study.trials, study.meta) is None  # a float study: no section


def test_ranking_pairs_fp32_with_int8_per_runtime(tmp_path):
    data = load_ranking(_ranking(tmp_path / "r.json"))
    assert data["precision_pairs"] and [(p["x"], p["y"]) for p in data["pairs"]] == [
        ("onnxruntime/fp32", "onnxruntime/int8"), ("litert/fp32", "litert/int8")]
    ort, lite = data["pairs"]
    assert lite["kendall"] == pytest.approx(1.0) and lite["ratio"]["median"] == pytest.approx(0.5 / 0.9)
    assert ort["ratio"]["max"] == pytest.approx(2.0) and ort["kendall"] < 1
    assert len(data["kendall"]) == 6 and data["measured"] == 12
    # no runtime in both precisions: every backend against the first
    raw = json.loads(_ranking(tmp_path / "r2.json", labels=("onnxruntime/fp32", "litert/fp32")).read_text())
    other = ranking_data(raw)
    assert not other["precision_pairs"] and [(p["x"], p["y"]) for p in other["pairs"]] == [
        ("onnxruntime/fp32", "litert/fp32")]


def test_report_writes_the_deployment_page_plot_and_json(tmp_path, capsys):
    db = _study(tmp_path / "s.db")
    _ranking(tmp_path / "s.db.ranking.json")  # beside the study: found without --ranking
    out = tmp_path / "rep"
    assert main(["report", str(db), "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    files = info["files"]
    assert files["deployment"].endswith("deployment.png") and (out / "deployment.png").read_bytes()[:4] == b"\x89PNG"
    full = json.loads((out / "deployment.json").read_text())
    assert full["n_int8"] == 5 and len(full["trials"]) == 5 and len(full["ranking"]["latency_ms"]["litert/int8"]) == 12
    assert full["ranking"]["same_space"] is False  # sampled at 224, the study at 8
    head = info["deployment"]
    assert head["worst"]["number"] == 2 and "trials" not in head and "latency_ms" not in head["ranking"]
    assert head["ranking"]["pairs"][1]["kendall"] == pytest.approx(1.0)
    page = (out / "index.html").read_text()
    assert "Deployment: fp32 and int8" in page and "&lt;unsupported op&gt;" in page and "Not the study" in page
    assert "Kendall tau" in page and "litert/int8" in page
    # the text output says it in one line
    assert main(["report", str(db), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if x.startswith("deployment:"))
    assert "5 trials with an int8 accuracy (onnxruntime)" in line and "largest #2: 20.00" in line
    assert "int8 changes the best under the target" in line and "over 12 architectures" in line
    assert "deployment.json" in text


def test_a_float_study_gets_the_section_only_from_a_ranking(tmp_path, capsys):
    db = _study(tmp_path / "f.db", int8=False)
    assert main(["report", str(db), "--out", str(tmp_path / "a"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["deployment"] is None and "deployment" not in info["files"]
    assert "Deployment" not in (tmp_path / "a" / "index.html").read_text()
    ranking = _ranking(tmp_path / "r.json")
    assert main(["report", str(db), "--out", str(tmp_path / "b"), "--ranking", str(ranking), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["deployment"]["n_int8"] == 0 and len(info["deployment"]["ranking"]["pairs"]) == 2
    assert "search with --score int8" in (tmp_path / "b" / "index.html").read_text()


@pytest.mark.parametrize("content, words", [
    (None, "ranking file not found"),
    ("not json", "not JSON"),
    (json.dumps({"n": 3, "kendall": {}}), "not its printed summary"),  # the benchmark's stdout, not its --out
    (json.dumps({"format": "mnas-latency-ranking/1", "backends": {"a/fp32": 1}, "rows": []}), "two or more"),
    ("rows2", "at least 3"),
])
def test_a_bad_ranking_file_is_one_line_and_nothing_is_written(tmp_path, capsys, content, words):
    db = _study(tmp_path / "s.db")
    path = tmp_path / "r.json"
    if content == "rows2":
        _ranking(path, n=2)
    elif content is not None:
        path.write_text(content)
    rc = main(["report", str(db), "--out", str(tmp_path / "rep"), "--ranking", str(path)])
    err = capsys.readouterr().err
    assert rc == 2 and words in err and len(err.strip().splitlines()) == 1 and "--ranking" in err, err
    assert not (tmp_path / "rep").exists()


def test_non_finite_or_missing_figures_are_left_out(tmp_path):
    path = _ranking(tmp_path / "r.json")
    raw = json.loads(path.read_text())
    raw["rows"][0]["latency_ms"]["litert/int8"] = None
    raw["rows"][1]["latency_ms"].pop("onnxruntime/int8")
    assert ranking_data(raw)["measured"] == 10
    with SQLiteStorage(tmp_path / "s.db") as storage:
        storage.set_meta("config", CONFIG)
        n = storage.create_trial([0], ARCH)
        storage.complete_trial(n, 0.5, 1.0, 0.5, extra={"accuracy_fp32": 0.5, "accuracy_int8": None,
                                                        "int8_failure": "int8 quantization for litert failed: x"})
        n = storage.create_trial([1], ARCH.replace("h32", "h33"))
        storage.complete_trial(n, 0.5, 1.0, 0.5, extra={"accuracy_fp32": "0.5", "accuracy_int8": math.inf})
    with Study(SQLiteStorage(tmp_path / "s.db", read_only=True)) as study:
        data = deployment_data(study.trials, study.meta)
    assert data["n_int8"] == 0 and data["n_int8_failed"] == 1 and data["drop"] is None


def _lut(path, runtime, precision, entries, size=8, space=None):
    space = SPACE["settings"] if space is None else space
    path.write_text(json.dumps({"format": "mnas-latency-lut/1", "complete": True, "input_size": size, "num_classes": 10,
                                "space_type": "MnasNetSpace", "space": space, "runtime": runtime,
                                "precision": precision, "entries": {k: {"ms": v} for k, v in entries.items()}}))
    return str(path)


K3 = "mbconv_k3_s1_e3_i8_o8_se0_identity_relu@8"
K5 = "mbconv_k5_s2_e6_i8_o16_se0.25_none_relu@8"


def test_report_adds_latency_by_op_type_from_lookup_tables(tmp_path, capsys):
    db = _study(tmp_path / "s.db", int8=False)
    fp32 = _lut(tmp_path / "fp32.json", "litert", "fp32", {K3: 1.0, K5: 2.0})
    int8 = _lut(tmp_path / "int8.json", "litert", "int8", {K3: 0.4, K5: 1.2})
    assert main(["report", str(db), "--out", str(tmp_path / "r"), "--luts", fp32, int8, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["files"]["op_types"].endswith("op-types.png") and (tmp_path / "r" / "op-types.png").is_file()
    data = json.loads((tmp_path / "r" / "op-types.json").read_text())
    assert {row["type"]: row["int8_over_fp32"]["litert"]["median"] for row in data["types"]} == {
        "mbconv k3 e3": pytest.approx(0.4), "mbconv k5 e6 +se": pytest.approx(0.6)}
    page = (tmp_path / "r" / "index.html").read_text()
    assert "Latency by op type" in page and "litert int8/fp32" in page and "mbconv k5 e6 +se" in page
    assert info["op_types_same_space"] is True and "Not the study's space" not in page
    # tables of another space's settings: shown, and said so (as a ranking file of another space)
    wide = {**SPACE["settings"], "width_mult": 2.0}
    a = _lut(tmp_path / "a.json", "litert", "fp32", {K3: 1.0}, space=wide)
    b = _lut(tmp_path / "b.json", "litert", "int8", {K3: 0.5}, space=wide)
    assert main(["report", str(db), "--out", str(tmp_path / "w"), "--luts", a, b]) == 0
    assert "another space than the study's" in capsys.readouterr().err
    assert "Not the study's space" in (tmp_path / "w" / "index.html").read_text()
    # tables of another input size, or a single table: one line, exit 2, nothing written
    other = _lut(tmp_path / "other.json", "litert", "int8", {K3: 0.4}, size=16)
    for luts, words in (([fp32, other], "another input size"), ([fp32], "at least two tables")):
        assert main(["report", str(db), "--out", str(tmp_path / "bad"), "--luts", *luts]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "bad").exists()
