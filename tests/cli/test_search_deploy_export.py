"""Issue 20 item 4, the accuracy half: what `mnas search --score int8` recorded for a trial is what its
weights give once exported with `mnas export --precision int8` and run in the same runtime.

A tiny search on the built-in digits, scored in ONNX Runtime int8 (QDQ), records `accuracy_int8` and
`accuracy_fp32` for its trial. The search does not keep a candidate's weights; proxy training is
deterministic on CPU (`mnas train --recipe proxy` relies on it), so the trial's weights are trained
again exactly as the search's worker did (`train_candidate`: the trial's seed, the study's proxy
settings) and the float accuracy must come out identical. Those weights, saved as a `mnas train`
model file, go through `mnas export --format onnx` (fp32: the same accuracy to one image) and
`--precision int8 --calibration 100 --data digits` (int8: the export calibrates on the images the
search's score did, drawn from the study's recorded split (`tests/export/test_export_calibration.py`);
the bound stays the evaluation's noise, three binomial standard errors of the validation split plus one
image, in case a quantizer is not deterministic).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from mnas.cli import main

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")
pytest.importorskip("sklearn")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 2


def _trial_weights(trial, data, path):
    """Train the trial's architecture again as the search's worker did, save it as a model file."""
    import torch

    from mnas._util import seed_everything
    from mnas.evaluate import trial_seed
    from mnas.models import build_model, count_macs, count_params
    from mnas.space import as_arch
    from mnas.train import ProxyConfig, train_proxy

    seed = trial_seed(0, trial.arch)
    assert trial.extra.get("seed", seed) == seed
    config = ProxyConfig(epochs=EPOCHS, batch_size=32, lr=0.05, threads=1, max_seconds=None, seed=0, input_size=None)
    config = dataclasses.replace(config, seed=seed)
    seed_everything(seed)
    model = build_model(as_arch(trial.arch), num_classes=data.num_classes, in_chans=data.channels)
    count_params(model), count_macs(model, data.input_size, data.channels)  # as train_candidate, in its order
    result = train_proxy(model, data, config)
    torch.save({"format": "mnas.model/1", "arch": trial.arch, "num_classes": data.num_classes,
                "in_chans": data.channels, "input_size": data.input_size, "state_dict": model.state_dict(),
                "normalization": {"mean": [float(m) for m in data.mean], "std": [float(s) for s in data.std]},
                "class_names": list(data.class_names), "metrics": {"val_accuracy": result.accuracy}, "config": {}},
               path)
    return result.accuracy


def export_fp32_and_int8(db, trial, weights, fmt, folder, capsys):
    """`mnas export` of the trial with its weights to folder/fp32.FMT and folder/int8.FMT (int8: calibrated on
    100 of the digits' training images)."""
    for precision in ("fp32", "int8"):
        argv = ["export", str(db), "--trial", str(trial.number), "--weights", str(weights), "--format", fmt,
                "--out", str(folder / f"{precision}.{fmt}")]
        if precision == "int8":
            argv += ["--precision", "int8", "--calibration", "100", "--data", "digits"]
        code = main(argv)
        out, err = capsys.readouterr()
        assert code == 0, err
        if precision == "int8":
            assert "int8 calibrated on 100 training images" in out


def int8_noise(recorded: float, n: int) -> float:
    """How far an exported int8 accuracy may sit from the recorded one: 3 binomial s.e. of n images, plus one."""
    p = min(max(recorded, 1 / n), 1 - 1 / n)
    return 3 * math.sqrt(p * (1 - p) / n) + 1 / n


def _onnx_accuracy(path, data):
    """Top-1 accuracy of an exported .onnx in ONNX Runtime on the search's validation split."""
    import onnxruntime as ort

    from mnas.evaluate.quantized import _preprocess

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x, y = data.split("val")
    inputs = _preprocess(data, x, data.input_size)
    hits = sum(int(session.run(None, {name: inputs[i:i + 1]})[0].argmax(1)[0] == y[i]) for i in range(len(y)))
    return hits / len(y), len(y)


def search_one_int8_trial(db, capsys, runtime: str = "onnxruntime", *backend: str):
    """A one-trial `mnas search --score int8` on digits stored in `db` (`backend`: e.g. "--backend",
    "litert", "--precision", "int8"); its trial, checked to score the int8 accuracy in `runtime`."""
    from mnas.study import Study

    code = main(["search", "--data", "digits", "--epochs", str(EPOCHS), "--width-mult", "0.25", "--head", "64",
                 "--trials", "1", "--strategy", "random", *backend,
                 "--target", "1ms", "--score", "int8", "--calibration", "100", "--storage", str(db), "--quiet"])
    _, err = capsys.readouterr()
    assert code == 0, err
    with Study(str(db)) as study:
        (trial,) = study.complete_trials
    assert trial.extra["int8_runtime"] == runtime and trial.accuracy == trial.extra["accuracy_int8"]
    return trial


def test_the_exported_int8_model_gives_the_accuracy_the_search_recorded(tmp_path, capsys):
    from mnas.train import load

    db = tmp_path / "s.db"
    trial = search_one_int8_trial(db, capsys)
    recorded_fp32, recorded_int8 = trial.extra["accuracy_fp32"], trial.extra["accuracy_int8"]

    data = load("digits", val_fraction=0.2, seed=0)  # the search's data and validation split
    weights = tmp_path / "model.pt"
    assert _trial_weights(trial, data, weights) == recorded_fp32  # the trial's own weights, bit for bit

    export_fp32_and_int8(db, trial, weights, "onnx", tmp_path, capsys)
    fp32, n = _onnx_accuracy(tmp_path / "fp32.onnx", data)
    int8, _ = _onnx_accuracy(tmp_path / "int8.onnx", data)
    assert abs(fp32 - recorded_fp32) <= 1 / n + 1e-12, (fp32, recorded_fp32)
    noise = int8_noise(recorded_int8, n)
    print(f"\nrecorded fp32 {recorded_fp32:.4f} int8 {recorded_int8:.4f}; exported fp32 {fp32:.4f} int8 {int8:.4f};"
          f" n={n}, allowed {noise:.4f}")
    assert abs(int8 - recorded_int8) <= noise, (int8, recorded_int8, noise)
    assert recorded_fp32 > 0.2  # it learned something (chance is 0.1), so the comparison means something
    assert np.isfinite(int8)
