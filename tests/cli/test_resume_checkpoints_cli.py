"""`--resume` with nothing but the run's file for the checkpointed commands (issue 21): `mnas supernet
train --resume --out F`, `mnas train --resume --out DIR`, `mnas instance train --resume --out DIR`. The
command printed after an interruption is run as printed and ends where an uninterrupted run ends; a
contradicting flag is one line naming the setting, its stored and its given value."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest
import torch

from mnas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _npz(root, size=8, classes=3, n=112):
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = (rng.integers(0, 60, (n, size, size, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    path = root / "tiny.npz"
    np.savez(path, x_train=x[: n - 16], y_train=y[: n - 16], x_test=x[n - 16:], y_test=y[n - 16:])
    return path


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _printed(err: str, command: str) -> list[str]:
    """The resume command a run printed, as argv for `main` (without the leading 'mnas')."""
    line = re.search(r"[Rr]esume with: (.+)$", err, re.M).group(1)
    argv = shlex.split(line)
    assert argv[0] == "mnas" and " ".join(argv[1:]).startswith(f"{command} --resume --out ")
    return argv[1:]


def _one_line(err: str, *needles: str) -> None:
    assert len(err.strip().splitlines()) == 1 and "{" not in err, err
    for needle in needles:
        assert needle in err, err


# -- mnas supernet train -----------------------------------------------------------------------------
SUPERNET = ["--width", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1", "--ops", "mbconv3,mbconv6",
            "--epochs", "2", "--batch-size", "16", "--warmup-epochs", "0.5", "--num-random", "1", "--eval-images", "16",
            "--seed", "2", "--val-fraction", "0.25"]


def test_supernet_train_resumes_from_the_printed_command(tmp_path, capsys, monkeypatch):
    import mnas.cli.supernet_cmd as supernet_cmd
    from mnas.train.full import Progress

    npz = _npz(tmp_path)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "supernet", "train", "--data", "tiny.npz", *SUPERNET, "--out", "a.pt", "--quiet")
    assert code == 0, err

    class CtrlC(Progress):
        def end_epoch(self, metrics):
            raise KeyboardInterrupt  # after the epoch's checkpoint, as Ctrl-C would

    monkeypatch.setattr(supernet_cmd, "_progress", lambda quiet: CtrlC())
    code, _, err = _run(capsys, "supernet", "train", "--data", "tiny.npz", *SUPERNET, "--out", "b.pt")
    assert code == 130 and torch.load(tmp_path / "b.pt", weights_only=True)["epoch"] == 1
    argv = _printed(err, "supernet train")
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path / "..")  # from elsewhere: the relative --data path is the run's
    argv = [a if a != "b.pt" else str(tmp_path / "b.pt") for a in argv]
    for given, needles in [
        (["--epochs", "3"], ["--epochs 3: ", "was made with --epochs 2;", "drop --epochs"]),
        (["--width", "0.5"], ["--width-mult 0.5: ", "with --width-mult 0.25;"]),
        (["--ops", "mbconv6"], ["--ops mbconv6: ", "with --ops mbconv3,mbconv6;"]),
        (["--space", "layerwise"], ["--space layerwise: ", "with --space mnasnet;"]),
        (["--seed", "0"], ["--seed 0: ", "with --seed 2;"]),
        (["--no-distill"], ["--no-distill: ", "was made without --no-distill;"]),
        (["--data", str(npz.parent / "other.npz")], ["--data ", "with --data tiny.npz;"]),
    ]:
        if given[0] == "--data":
            np.savez(given[1], **dict(np.load(npz)))
        code, _, err = _run(capsys, *argv, *given)
        assert code == 2
        _one_line(err, *needles)
    code, out, err = _run(capsys, *argv, "--threads", "1", "--json")  # a safe option applies
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert b["epoch"] == 2 and a["train_config"] == b["train_config"] and a["config"] == b["config"]
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])


def test_supernet_train_resume_keeps_the_stratified_samplers_table(tmp_path, capsys, monkeypatch):
    """--lut is not in the checkpoint: a resumed stratified run must not fall back to MACs silently."""
    import mnas.cli.supernet_cmd as supernet_cmd
    from mnas.train.full import Progress

    _npz(tmp_path)
    monkeypatch.chdir(tmp_path)
    seen = []
    real = supernet_cmd._lut
    monkeypatch.setattr(supernet_cmd, "_lut", lambda path: seen.append(path) or real(None))
    (tmp_path / "lut.json").write_text("{}")

    class CtrlC(Progress):
        def end_epoch(self, metrics):
            raise KeyboardInterrupt

    monkeypatch.setattr(supernet_cmd, "_progress", lambda quiet: CtrlC())
    common = ["--data", "tiny.npz", *SUPERNET, "--sampler", "stratified"]
    code, _, err = _run(capsys, "supernet", "train", *common, "--lut", "lut.json", "--out", "s.pt")
    assert code == 130, err
    argv = _printed(err, "supernet train")
    monkeypatch.setattr(supernet_cmd, "_progress", lambda quiet: Progress())
    code, _, err = _run(capsys, *argv, "--lut", "other.json")
    assert code == 2
    _one_line(err, "--lut other.json: ", "with --lut lut.json;")
    code, _, err = _run(capsys, *argv, "--quiet")
    assert code == 0, err
    assert seen == ["lut.json", "lut.json"]


# -- mnas train -------------------------------------------------------------------------------------
TINY_ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.1_relu"
TRAIN = ["--epochs", "2", "--batch-size", "32", "--lr", "0.1", "--val-fraction", "0.25", "--seed", "1", "--threads", "1"]


def test_train_resumes_from_the_printed_command(tmp_path, capsys, monkeypatch):
    npz = _npz(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert _run(capsys, "train", TINY_ARCH, "--data", "tiny.npz", *TRAIN, "--out", "a", "--quiet")[0] == 0
    code, _, err = _run(capsys, "train", TINY_ARCH, "--data", "tiny.npz", *TRAIN, "--out", "b", "--stop-after", "1")
    assert code == 0 and not (tmp_path / "b" / "model.pt").exists()
    argv = _printed(err, "train")
    assert TINY_ARCH not in argv  # the architecture is the checkpoint's
    for given, needles in [
        (["--epochs", "3"], ["--epochs 3: b was made with --epochs 2;", "drop --epochs"]),
        (["--val-fraction", "0.1"], ["--val-fraction 0.1: ", "with --val-fraction 0.25;"]),
        (["--seed", "0"], ["--seed 0: ", "with --seed 1;"]),
        (["--data", "digits"], ["--data digits: ", "with --data tiny.npz;"]),
        (["--no-augment"], ["--no-augment: ", "without --no-augment;"]),
    ]:
        code, _, err = _run(capsys, *argv, *given)
        assert code == 2
        _one_line(err, *needles)
    code, _, err = _run(capsys, *argv, "--data", str(npz), "--threads", "1", "--quiet")  # the same data, another path
    assert code == 0, err
    a = torch.load(tmp_path / "a" / "model.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "model.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- mnas instance train ----------------------------------------------------------------------------
INSTANCE = ["--latency", "macs", "--width", "0.25", "--stem-stride", "1", "--pretrain-epochs", "1", "--search-epochs",
            "1", "--finetune-epochs", "0.5", "--batch-size", "16", "--val-fraction", "0.25", "--seed", "1", "--threads", "1"]


def test_instance_train_resumes_from_the_printed_command(tmp_path, capsys, monkeypatch):
    _npz(tmp_path, size=16, classes=4, n=128)
    monkeypatch.chdir(tmp_path)
    code, _, err = _run(capsys, "instance", "train", "--data", "tiny.npz", *INSTANCE, "--out", "run", "--stop-after", "1")
    assert code == 0 and not (tmp_path / "run" / "instance.pt").exists(), err
    argv = _printed(err, "instance train")
    for given, needles in [
        (["--search-epochs", "2"], ["--search-epochs 2: run was made with --search-epochs 1;"]),
        (["--width", "0.5"], ["--width 0.5: ", "with --width 0.25;"]),
        (["--seed", "0"], ["--seed 0: ", "with --seed 1;"]),
        (["--latency", "onnxruntime"], ["--latency onnxruntime: ", "with --latency macs;"]),
    ]:
        code, _, err = _run(capsys, *argv, *given)
        assert code == 2
        _one_line(err, *needles)
    code, out, err = _run(capsys, *argv, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["epochs"] == 2 and (tmp_path / "run" / "instance.pt").is_file()
