"""`mnas export --precision int8` calibrates on the training images the search's int8 score calibrated on
(issue 20 item 4: export what was measured).

Regression: the export drew its own calibration images (`calibration_from_data`, seed key 8) from the data
loaded with its default split (10% held out), while `quantized_accuracy` draws with seed key 9 from the
split the search loaded (20% held out for a search, or what a `mnas train --recipe proxy` file records):
the exported int8 file was not the one the search scored (its calibration could even hold the search's
validation images), so its accuracy could differ by the evaluation's noise. Now both go through
`mnas.evaluate.quantized.calibration_inputs` on the same split: the weights file's recorded split, else
the study's search's."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from test_export_formats import trained_file

from mnas.cli import main

pytest.importorskip("sklearn")

ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s2_h32_d0.0_relu"


def _searched(val_fraction, seed):
    """The digits as a search with --val-fraction/--seed loaded them."""
    from mnas.train import load

    return load("digits", val_fraction=val_fraction, seed=seed)


def _weights(path, data, record_data):
    trained_file(path, ARCH, num_classes=10, in_chans=1, input_size=8)
    saved = torch.load(path, weights_only=False)
    saved["normalization"] = {"mean": list(data.mean), "std": list(data.std)}
    if record_data:
        from mnas.train.full import data_identity

        saved["data"] = data_identity(data)
    torch.save(saved, path)


def _same(got, want):
    assert len(got) == len(want)
    assert all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_the_export_calibrates_on_the_images_the_search_scored_with(tmp_path, capsys, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import mnas.latency.quantize as quantize
    from mnas.evaluate.quantized import quantized_accuracy
    from mnas.train.full import load_model

    data = _searched(0.2, 3)
    weights = tmp_path / "model.pt"
    _weights(weights, data, record_data=True)  # as `mnas train --recipe proxy --seed 3 --out DIR` records it
    seen, real = [], quantize.ort_quantize
    monkeypatch.setattr(quantize, "ort_quantize", lambda raw, calib, *a: seen.append(list(calib)) or real(raw, calib, *a))
    quantized_accuracy(load_model(weights)[0], data, "onnxruntime", calibration=20)  # what the search's score does
    code = main(["export", "--weights", str(weights), "--out", str(tmp_path / "m8.onnx"), "--precision", "int8",
                 "--calibration", "20"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "int8 calibrated on 20 training images" in out
    scored, exported = seen
    _same(exported, scored)


def test_without_a_recorded_split_the_studys_search_gives_it():
    from mnas.cli.export_cmd import _calibration, _searched_data
    from mnas.evaluate.quantized import calibration_inputs

    meta = {"cli": {"command": "search", "args": {"data": "digits", "val_fraction": 0.2, "seed": 0, "epochs": 2.0}}}
    searched = _searched_data(meta)
    assert searched == {"data": "digits", "val_fraction": 0.2, "seed": 0}
    args = argparse.Namespace(data="digits", data_root=None, weights=None, calibration=20)
    _same(_calibration(args, {"input_size": None}, searched), calibration_inputs(_searched(0.2, 0), 20))


def test_the_recorded_data_is_recognised_however_its_path_is_spelled(tmp_path, monkeypatch):
    """Review: --data was matched to the recorded data by its text, so the same file given by an absolute path
    (or from another folder) silently fell back to the default split and calibrated on other images."""
    from mnas.cli.export_cmd import _same_data

    npz = tmp_path / "d.npz"
    npz.write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert _same_data("d.npz", str(npz)) and _same_data(str(npz), "d.npz") and _same_data("./d.npz", "d.npz")
    assert _same_data("digits", "digits") and not _same_data("digits", "d.npz") and not _same_data(None, "d.npz")
    (tmp_path / "e.npz").write_bytes(b"x")
    assert not _same_data("e.npz", "d.npz")


def test_the_python_export_calibrates_on_the_images_the_cli_export_does(tmp_path, capsys, monkeypatch):
    """Regression: `mnas.export(..., calibration=calibration_from_data(data.x_train, n, data.mean, data.std))`,
    the Python API's documented way, drew other images (seed key 8) than `mnas export --data D --calibration n`
    (`calibration_inputs`, seed key 9) from the same data and split: one draw now serves both."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import mnas.latency.quantize as quantize
    from mnas.deploy import export
    from mnas.latency.quantize import calibration_from_data
    from mnas.train import load

    data = load("digits")  # the split `mnas export --data digits` loads for weights that record none
    weights = tmp_path / "model.pt"
    _weights(weights, data, record_data=False)
    seen, real = [], quantize.ort_quantize
    monkeypatch.setattr(quantize, "ort_quantize", lambda raw, calib, *a: seen.append(list(calib)) or real(raw, calib, *a))
    code = main(["export", "--weights", str(weights), "--out", str(tmp_path / "cli.onnx"), "--precision", "int8",
                 "--data", "digits", "--calibration", "20"])
    assert code == 0, capsys.readouterr().err
    export(None, tmp_path / "api.onnx", weights=weights, precision="int8",
           calibration=calibration_from_data(data.x_train, 20, data.mean, data.std))
    cli, api = seen
    _same(api, cli)


@pytest.mark.parametrize("input_size", [None, 16])
def test_the_one_draw_is_the_trainers_preprocessing_of_the_images_the_search_scored(input_size):
    """The draw moved below the trainer (`mnas.latency.quantize`): its values must stay the ones the search's int8
    scores were calibrated on, `BatchTransform`'s evaluation of the seed-key-9 pick, to the bit (also resized)."""
    from mnas.evaluate.quantized import _preprocess, calibration_inputs
    from mnas.latency.quantize import calibration_from_data

    data = _searched(0.2, 3)
    size = input_size or data.input_size
    pick = np.sort(np.random.default_rng([4, 9]).choice(len(data.y_train), size=20, replace=False))
    before = [x[None] for x in _preprocess(data, data.x_train[pick], size)]  # calibration_inputs as it was
    _same(calibration_inputs(data, 20, input_size, seed=4), before)
    _same(calibration_from_data(data.x_train, 20, data.mean, data.std, seed=4, input_size=size), before)
