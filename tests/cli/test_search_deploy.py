"""`mnas search` in the runtime and precision it deploys to (issue 20): --backend litert/executorch,
--precision int8, --score int8 with --calibration. Bad combinations are one line (exit 2, no study made);
a lookup table is checked against the runtime and precision given and stands for them otherwise; a
zoo-relative target is measured by the same backend and precision; the study records runtime,
precision and score, so --resume restores them and refuses a contradicting value in one line."""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np
import pytest
from _cli_helpers import one_line, run_cli, tiny_npz

from mnas.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = ["--epochs", "0.2", "--width-mult", "0.25", "--head", "32"]
STRIDES = ["--strides", "1,1,1,2,1,1,1,1"]


def _lut(path: Path, runtime: str, precision: str, input_size: int = 8, num_classes: int = 3) -> str:
    """A complete table for the tiny space (width 0.25, head 32, STRIDES) 'measured' in runtime/precision."""
    from mnas.latency import enumerate_units
    from mnas.latency.lut import FORMAT
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(num_classes, input_size, width_mult=0.25, head_chs=32, strides=[1, 1, 1, 2, 1, 1, 1, 1])
    entries = {u.key: {"ms": 0.01 + (zlib.crc32(u.key.encode()) % 1000) / 10000} for u in enumerate_units(space)}
    path.write_text(json.dumps({"format": FORMAT, "complete": True, "entries": entries, "input_size": input_size,
                                "num_classes": num_classes, "runtime": runtime, "precision": precision,
                                "backend": {"backend": runtime, "settings": {"precision": precision}}}))
    return str(path)


def _config(db):
    from mnas.study import SQLiteStorage

    with SQLiteStorage(db, read_only=True) as storage:
        return storage.get_meta("config"), storage.get_meta("cli")


# -- one-line refusals, before any data is loaded or a study file made ------------------------------
@pytest.mark.parametrize("given, words", [
    (["--precision", "int8", "--backend", "torch"],
     "--precision int8 is measured in --backend onnxruntime, litert, executorch, not torch"),
    (["--backend", "torch", "--url", "http://127.0.0.1:9", "--token", "t"],
     "--backend torch: a device server (--url) measures in onnxruntime, litert, executorch"),
    (["--calibration", "50"], "--calibration 50 calibrates the int8 accuracy: it goes with --score int8"),
    (["--precision", "int8", "--calibration", "50"], "it goes with --score int8"),
    (["--score", "int8", "--strategy", "enas"], "--strategy enas derives its architectures inside one network"),
    (["--score", "int8", "--space", "nb201", "--strategy", "darts"], "--strategy darts derives"),
    (["--score", "int4"], "invalid choice: 'int4'"),
    (["--precision", "fp16"], "invalid choice: 'fp16'"),
    (["--calibration", "0"], "--calibration"),
    (["--backend", "tflite"], "invalid choice: 'tflite'"),
])
def test_bad_deployment_options_are_one_line(tmp_path, capsys, given, words):
    code, _, err = run_cli(capsys, "search", "--target", "1ms", *given, "--storage", str(tmp_path / "s.db"))
    one_line(code, err, words)
    assert not (tmp_path / "s.db").exists()


@pytest.mark.parametrize("table, given, words", [
    # before: a table was taken for whatever --backend/--precision said (a torch or int8 search on an fp32 ORT table)
    (("onnxruntime", "fp32"), ["--precision", "int8"], "was measured in onnxruntime fp32, not onnxruntime int8"),
    (("onnxruntime", "fp32"), ["--backend", "torch"], "was measured in onnxruntime fp32, not torch fp32"),
    (("litert", "int8"), ["--backend", "onnxruntime"], "was measured in litert int8, not onnxruntime int8"),
    (("litert", "int8"), ["--precision", "fp32"], "was measured in litert int8, not litert fp32: build a table with"
                                                  " 'mnas latency build-lut --backend litert --precision fp32'"),
    # fbnet measures its derived network on --backend: torch cannot measure the int8 the table was built in
    (("litert", "int8"), ["--strategy", "fbnet", "--backend", "torch"],
     "not torch (--lut {lut} was measured in int8)"),
])
def test_a_table_of_another_runtime_or_precision_is_refused(tmp_path, capsys, table, given, words):
    lut = _lut(tmp_path / "t.json", *table)
    code, _, err = run_cli(capsys, "search", "--data", "digits", "--target", "1ms", "--lut", lut, *given,
                        "--storage", str(tmp_path / "s.db"))
    one_line(code, err, words.format(lut=lut))
    assert not (tmp_path / "s.db").exists()


def test_a_missing_runtime_is_one_line_saying_what_to_install(tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "executorch" else real(name, *a))
    code, _, err = run_cli(capsys, "search", "--backend", "executorch", "--storage", str(tmp_path / "s.db"))
    one_line(code, err, "--backend executorch needs the optional package 'executorch': pip install 'mnas[executorch]'")


def test_help_names_the_deployment_options(capsys):
    with pytest.raises(SystemExit):
        main(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for needle in ("--backend {onnxruntime,torch,litert,executorch}", "--precision {fp32,int8}", "--score {fp32,int8}",
                   "--calibration N", "the float accuracy is recorded beside it", "zoo-relative targets are measured"):
        assert needle in out, needle


# -- the target is measured by the same backend and precision ----------------------------------------
def test_a_zoo_target_is_measured_in_the_search_precision(tmp_path, capsys, monkeypatch):
    from mnas.latency.base import LatencyResult
    from mnas.latency.ort import OnnxRuntime

    def fake(self, arch, input_size, num_classes, batch_size, in_chans=3):  # 7 ms in int8, 3 ms in fp32
        ms = 7.0 if self.precision == "int8" else 3.0
        return LatencyResult(ms, 0.0, 0.0, 10, self.name, self.settings(), input_size, batch_size, num_classes,
                             in_chans)

    monkeypatch.setattr(OnnxRuntime, "_measure", fake)
    npz = tiny_npz(tmp_path)
    for precision, ms in (("int8", 7.0), ("fp32", 3.0)):
        db = tmp_path / f"{precision}.db"
        code, _, err = run_cli(capsys, "search", "--data", str(npz), *TINY, "--trials", "1", "--strategy", "random",
                            "--target", "mobilenetv2_x0.25", "--precision", precision, "--storage", str(db))
        assert code == 0, err
        config, record = _config(db)
        assert config["reward"]["target_ms"] == ms and record["args"]["precision"] == precision
    from mnas.cli.search_cmd import _backend_text
    from mnas.latency import LookupTable

    # what the phase line says measures the reference (printed when it takes a while)
    assert _backend_text(OnnxRuntime(precision="int8")) == "OnnxRuntime int8"
    assert _backend_text(LookupTable({}, 8, 3, meta={"runtime": "litert", "precision": "int8"})) == (
        "LookupTable litert int8")


# -- a search scored in int8, resumed -----------------------------------------------------------------
@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A one-trial study measured and scored in ONNX Runtime int8: (directory, study path)."""
    root = tmp_path_factory.mktemp("int8")
    tiny_npz(root)
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    try:
        assert main(["search", "--data", "tiny.npz", *TINY, "--strategy", "random", "--target", "1ms", "--trials", "1",
                     "--precision", "int8", "--score", "int8", "--calibration", "40", "--storage", "s.db",
                     "--quiet"]) == 0
    finally:
        mp.undo()
    return root, root / "s.db"


def _copy(scored, tmp_path) -> Path:
    import sqlite3

    with sqlite3.connect(scored[1]) as src, sqlite3.connect(tmp_path / "s.db") as dst:
        src.backup(dst)
    return tmp_path / "s.db"


def test_the_reward_uses_the_int8_accuracy_and_the_float_one_is_kept(scored):
    from mnas.objectives import Reward
    from mnas.study import Study

    config, record = _config(scored[1])
    assert {k: record["args"][k] for k in ("backend", "precision", "score", "calibration")} == {
        "backend": "onnxruntime", "precision": "int8", "score": "int8", "calibration": 40}
    assert json.loads(config["evaluator"]["latency"])["precision"] == "int8"
    assert config["evaluator"]["score"] == {"runtime": "onnxruntime", "calibration": 40, "score": "int8"}
    with Study(str(scored[1])) as study:
        (t,) = study.complete_trials
    assert t.accuracy == t.extra["accuracy_int8"] and 0 <= t.extra["accuracy_fp32"] <= 1
    assert t.extra["int8_runtime"] == "onnxruntime"
    assert math.isclose(t.reward, Reward.from_dict(config["reward"])(t.extra["accuracy_int8"], t.latency_ms))


def test_resume_restores_runtime_precision_and_score(scored, tmp_path, capsys):
    from mnas.study import Study

    db = _copy(scored, tmp_path)
    before, _ = _config(db)
    code, out, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--data", str(scored[0] / "tiny.npz"),
                          "--trials", "2", "--json")
    assert code == 0, err
    after, _ = _config(db)
    assert after["evaluator"] == before["evaluator"]
    with Study(str(db)) as study:
        assert all("accuracy_int8" in t.extra for t in study.complete_trials) and len(study.complete_trials) == 2
    # typed again, they agree
    code, out, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--data", str(scored[0] / "tiny.npz"),
                          "--backend", "onnxruntime", "--precision", "int8", "--score", "int8", "--calibration", "40",
                          "--trials", "2", "--json")
    assert code == 0, err


@pytest.mark.parametrize("given, needle", [
    (["--precision", "fp32"], "--precision fp32: {db} was made with --precision int8;"),
    (["--score", "fp32"], "--score fp32: {db} was made with --score int8;"),
    (["--calibration", "100"], "--calibration 100: {db} was made with --calibration 40;"),
    (["--backend", "litert"], "--backend litert: {db} was made with --backend onnxruntime;"),
])
def test_a_contradicting_deployment_flag_is_one_line(scored, tmp_path, capsys, given, needle):
    db = _copy(scored, tmp_path)
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", str(db), *given)
    one_line(code, err, needle.format(db=db))
    assert "drop " in err


def test_a_study_recorded_before_these_flags_reads_them_from_its_config(scored, tmp_path, capsys):
    from mnas.study import SQLiteStorage

    db = _copy(scored, tmp_path)
    with SQLiteStorage(db) as storage:  # as an older mnas recorded it: no precision, score, calibration
        record = storage.get_meta("cli")
        for key in ("precision", "score", "calibration"):
            record["args"].pop(key)
        storage.set_meta("cli", record)
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--precision", "fp32")
    one_line(code, err, f"--precision fp32: {db} was made with --precision int8;")
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--score", "fp32")
    one_line(code, err, f"--score fp32: {db} was made with --score int8;")
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", str(db), "--calibration", "8")
    one_line(code, err, f"--calibration 8: {db} was made with --calibration 40;")


def test_a_table_stands_for_its_runtime_and_precision_and_resume_keeps_them(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny_npz(tmp_path)
    lut = _lut(tmp_path / "t.json", "litert", "int8")
    code, _, err = run_cli(capsys, "search", "--data", "tiny.npz", *TINY, *STRIDES, "--lut", lut, "--target", "1ms",
                        "--trials", "1", "--strategy", "random", "--storage", "s.db", "--quiet")
    assert code == 0, err
    config, record = _config(tmp_path / "s.db")
    assert (record["args"]["backend"], record["args"]["precision"], record["args"]["score"]) == ("litert", "int8", "fp32")
    assert json.loads(config["evaluator"]["latency"])["runtime"] == "litert"
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", "s.db", "--precision", "fp32")
    one_line(code, err, "--precision fp32: s.db was made with --precision int8;")
    code, _, err = run_cli(capsys, "search", "--resume", "--storage", "s.db", "--backend", "onnxruntime")
    one_line(code, err, "--backend onnxruntime: s.db was made with --backend litert;")


# -- the slow paths: LiteRT in the loop, the supernet scored in int8 -------------------------------------
@pytest.mark.slow  # LiteRT and ExecuTorch convert each network in 10-100 s here: the latency, then the int8 accuracy
@pytest.mark.timeout(1800)  # ExecuTorch's imports and two lowerings took 2-10 min on this busy 2-core machine
@pytest.mark.parametrize("runtime, modules", [("litert", ("ai_edge_litert", "litert_torch")),
                                              ("executorch", ("executorch",))])
def test_a_converted_runtime_int8_search_measures_and_scores_in_it(tmp_path, capsys, runtime, modules):
    for module in modules:
        pytest.importorskip(module)
    npz = tiny_npz(tmp_path)
    db = tmp_path / "s.db"
    code, out, err = run_cli(capsys, "search", "--data", str(npz), *TINY, *STRIDES, "--backend", runtime, "--precision",
                          "int8", "--score", "int8", "--calibration", "16", "--target", "1ms", "--trials", "1",
                          "--strategy", "random", "--storage", str(db), "--json")
    assert code == 0, err
    from mnas.study import Study

    config, record = _config(db)
    key = json.loads(config["evaluator"]["latency"])
    assert (key["backend"], key["precision"]) == (runtime, "int8") and record["args"]["backend"] == runtime
    with Study(str(db)) as study:
        (t,) = study.complete_trials
    assert t.extra["int8_runtime"] == runtime and t.accuracy == t.extra["accuracy_int8"] and t.latency_ms > 0


@pytest.mark.slow  # trains a tiny supernet (~35 s on a busy 2-core machine), then one int8-scored trial
def test_a_supernet_search_scores_the_sub_network_in_int8(tmp_path, capsys):
    npz = tiny_npz(tmp_path)
    ckpt = tmp_path / "sn.pt"
    code, _, err = run_cli(capsys, "supernet", "train", "--data", str(npz), "--width", "0.25", "--head", "16", *STRIDES,
                        "--epochs", "1", "--batch-size", "16", "--warmup-epochs", "0", "--eval-images", "0", "--out",
                        str(ckpt), "--quiet")
    assert code == 0, err
    db = tmp_path / "s.db"
    code, _, err = run_cli(capsys, "search", "--data", str(npz), "--supernet", str(ckpt), "--strategy", "random",
                        "--trials", "2", "--reward", "accuracy", "--score", "int8", "--calibration", "32", "--storage",
                        str(db), "--json")
    assert code == 0, err
    from mnas.study import Study

    config, _ = _config(db)
    assert config["evaluator"]["kind"] == "supernet" and config["evaluator"]["score"]["score"] == "int8"
    with Study(str(db)) as study:
        trials = study.complete_trials
    assert trials and all(t.extra["accuracy_source"] == "supernet" and t.accuracy == t.extra["accuracy_int8"]
                          and "accuracy_fp32" in t.extra for t in trials)


# -- the evaluator hands the converters a network they take ----------------------------------------------
def test_a_trained_channels_last_network_is_converted_in_the_default_layout(tmp_path, monkeypatch):
    """Regression: training on the CPU leaves the weights channels_last, which ExecuTorch's XNNPACK lowering
    refuses in int8, so every candidate of a `--backend executorch --score int8` search failed (the slow test
    above shows it end to end). The converter now gets an NCHW copy; the trained model is left as it was."""
    import torch

    import mnas.latency.executorch_backend as et
    from mnas.evaluate.quantized import quantized_accuracy
    from mnas.models import build_model
    from mnas.train import load

    data = load(str(tiny_npz(tmp_path)), val_fraction=0.25, seed=0)
    model = build_model("r1_k3_s11_e1_i8_o8 | s1_h16_d0.0_relu", num_classes=3, in_chans=3)
    model = model.to(memory_format=torch.channels_last)
    seen = []

    def fake_pte_bytes(net, shape, precision, calibration):
        seen.append([p.is_contiguous() for p in net.parameters() if p.dim() == 4])
        return b"pte"

    monkeypatch.setattr(et, "pte_bytes", fake_pte_bytes)
    monkeypatch.setattr(et, "pte_method", lambda raw: raw)
    monkeypatch.setattr(et, "run_pte", lambda method, x: np.zeros((len(x), 3), np.float32))
    assert 0 <= quantized_accuracy(model, data, "executorch", calibration=2) <= 1
    assert seen and seen[0] and all(seen[0])  # the converter saw NCHW weights
    assert not next(p for p in model.parameters() if p.dim() == 4).is_contiguous()  # the caller's model untouched
