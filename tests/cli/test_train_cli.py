"""`mnas train`: full runs with --json, --proxy, --resume, stride adaptation, and exit 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnas.cli import main

TINY = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.1_relu"

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(autouse=True)
def _needs_sklearn():
    pytest.importorskip("sklearn")


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_full_training_json_and_model_file(tmp_path, capsys):
    code, out, err = _run(capsys, "train", TINY, "--data", "digits", "--epochs", "1", "--out", str(tmp_path),
                          "--threads", "1", "--json")
    assert code == 0, err
    final = json.loads(out)
    assert 0 <= final["test_accuracy"] <= 1 and final["epochs"] == 1 and len(final["history"]) == 1
    assert "strides: stem 1, blocks 1 2" in err and "epoch 1/1" in err
    info = torch.load(tmp_path / "model.pt", weights_only=True)
    assert info["arch"] == final["arch"] and info["num_classes"] == 10


def test_stop_and_resume_match_an_uninterrupted_run(tmp_path, capsys):
    common = ["--data", "digits", "--epochs", "2", "--threads", "1", "--batch-size", "64", "--quiet"]
    assert _run(capsys, "train", TINY, *common, "--out", str(tmp_path / "a"))[0] == 0
    code, _, err = _run(capsys, "train", TINY, *common, "--out", str(tmp_path / "b"), "--stop-after", "1")
    assert code == 0 and not (tmp_path / "b" / "model.pt").exists()
    code, out, err = _run(capsys, "train", TINY, "--out", str(tmp_path / "b"), "--resume", "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_proxy_run_and_stride_adaptation(capsys):
    code, out, err = _run(capsys, "train", "mnasnet_small_x0.5", "--proxy", "--steps", "1", "--threads", "1",
                          "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["ok"] and result["steps"] == 1 and 0 <= result["accuracy"] <= 1
    assert "adapted from the zoo's 224x224 strides" in err and "stem 1" in err
    code, out, err = _run(capsys, "train", "mnasnet_small_x0.5", "--proxy", "--steps", "1", "--threads", "1",
                          "--no-adapt-strides", "--input-size", "16")
    assert code == 0 and "stem 2, blocks 1 2 2 2 1 2 1 at 16x16" in err and "val accuracy" in out


@pytest.mark.parametrize("argv, message", [
    (["--data", "/nonexistent/data.npz", "--out", "{tmp}/o"], "data not found: /nonexistent/data.npz"),
    (["--data", "{tmp}/bad.npz", "--out", "{tmp}/o"], "missing array(s) x_test, y_test"),
    (["--data", "{tmp}/float.npz", "--out", "{tmp}/o"], "dtype float32, expected uint8"),
    (["--data", "digits"], "needs --out"),
    (["--out", "{tmp}/none", "--resume"], "nothing to resume"),
    (["--proxy", "--resume"], "apply to full training"),
    (["--out", "{tmp}/o", "--steps", "3"], "apply to --recipe proxy"),
    (["--out", "{tmp}/o", "--epochs", "1.5"], "whole epochs"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, message):
    x = np.zeros((10, 8, 8, 1), np.uint8)
    np.savez(tmp_path / "bad.npz", x_train=x, y_train=np.zeros(10, np.int64))
    np.savez(tmp_path / "float.npz", x_train=x.astype(np.float32), y_train=np.zeros(10, np.int64),
             x_test=x.astype(np.float32), y_test=np.zeros(10, np.int64))
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _run(capsys, "train", TINY, "--threads", "1", "--quiet", *argv)
    assert code == 2 and message in err and err.startswith("mnas: error:") and out == ""
    assert len(err.strip().splitlines()) == 1


def test_existing_run_is_not_overwritten(tmp_path, capsys):
    argv = ["train", TINY, "--epochs", "2", "--out", str(tmp_path), "--threads", "1", "--quiet"]
    assert _run(capsys, *argv, "--stop-after", "1")[0] == 0
    code, _, err = _run(capsys, *argv)
    assert code == 2 and "already holds a training checkpoint" in err
    code, _, err = _run(capsys, "train", "mnasnet_small", "--out", str(tmp_path), "--resume", "--quiet")
    assert code == 2 and "different architecture" in err
