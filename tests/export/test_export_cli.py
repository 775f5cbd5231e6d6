"""`mnas export`: choosing a trial, defaults from the study config, --arch, --weights, bad input."""

import json

import pytest
import torch

from mnas.cli import main
from mnas.latency.export import calibrate_bn
from mnas.models import build_model
from mnas.space import adapt_strides, as_arch, get_arch
from mnas.study import SQLiteStorage

A = "r1_k3_s11_e1_i8_o8 | s2_h16_d0.0_relu"
B = "r1_k3_s11_e1_i8_o16 | s2_h16_d0.0_relu"
C = "r1_k5_s11_e1_i8_o8 | s2_h16_d0.0_relu"
CONFIG = {"space": {"settings": {"input_size": 16, "num_classes": 4}},
          "evaluation": {"data": {"channels": 1, "num_classes": 4, "input_size": 16}}}


@pytest.fixture
def study(tmp_path):
    """Trial 0: A, 80% at 30 ms (best reward); 1: B failed; 2: C, 70% at 10 ms (best under 20 ms)."""
    path = tmp_path / "s.db"
    with SQLiteStorage(path) as s:
        s.set_meta("config", CONFIG)
        s.set_meta("target_ms", 20.0)
        s.complete_trial(s.create_trial([0], A), 0.8, 30.0, 0.9)
        s.fail_trial(s.create_trial([1], B), "NaN loss at step 3")
        s.complete_trial(s.create_trial([2], C), 0.7, 10.0, 0.7)
        s.create_trial([3], B)
    return path


def run(capsys, *argv):
    try:
        rc = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def export_json(capsys, *argv):
    rc, out, err = run(capsys, "export", *argv, "--json")
    assert rc == 0, err
    return json.loads(out)


def test_best_is_the_default_and_sizes_come_from_the_config(study, tmp_path, capsys):
    info = export_json(capsys, str(study), "--out", str(tmp_path / "a.json"))
    assert info["trial"] == 0 and info["arch"] == str(as_arch(A)) and info["format"] == "json"
    assert (info["input_size"], info["num_classes"], info["in_chans"]) == (16, 4, 1)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert doc["trial"]["reward"] == 0.9 and doc["model"]["in_chans"] == 1
    info = export_json(capsys, f"sqlite:///{study}", "--best-under-target", "--out", str(tmp_path / "b.onnx"),
                       "--input-size", "24", "--check", "--untrained")
    assert info["trial"] == 2 and info["arch"] == str(as_arch(C)) and info["input_size"] == 24
    assert info["max_abs_diff"] is not None
    assert export_json(capsys, str(study), "--trial", "2", "--format", "torchscript", "--untrained",
                       "--out", str(tmp_path / "c.bin"))["format"] == "torchscript"


def test_arch_without_a_study(tmp_path, capsys):
    info = export_json(capsys, "--arch", A, "--out", str(tmp_path / "a.onnx"), "--num-classes", "3",
                       "--input-size", "8", "--untrained")
    assert (info["num_classes"], info["in_chans"], info["input_size"], info["trial"]) == (3, 3, 8, None)
    # A zoo name below 224x224 gets the strides `mnas train` would give it.
    info = export_json(capsys, "--arch", "mnasnet_small", "--out", str(tmp_path / "z.json"), "--input-size", "32")
    assert info["arch"] == str(adapt_strides(get_arch("mnasnet_small"), 32)) != str(get_arch("mnasnet_small"))
    info = export_json(capsys, "--arch", "mnasnet_small", "--out", str(tmp_path / "z.json"), "--input-size", "32",
                       "--no-adapt-strides")
    assert info["arch"] == str(get_arch("mnasnet_small"))
    rc, out, _ = run(capsys, "export", "--arch", A, "--out", str(tmp_path / "p.json"))
    assert rc == 0 and "wrote" in out and "224" in out


def test_weights_alone_and_checked_against_the_trial(study, tmp_path, capsys):
    torch.manual_seed(0)
    model = calibrate_bn(build_model(C, num_classes=4, in_chans=1), (4, 1, 16, 16))
    weights = tmp_path / "model.pt"
    torch.save({"format": "mnas.model/1", "arch": str(as_arch(C)), "num_classes": 4, "in_chans": 1, "input_size": 16,
                "state_dict": model.state_dict(), "metrics": {}}, weights)
    info = export_json(capsys, "--weights", str(weights), "--out", str(tmp_path / "w.onnx"), "--check")
    assert info["weights"] == str(weights) and info["arch"] == str(as_arch(C)) and info["in_chans"] == 1
    assert export_json(capsys, str(study), "--trial", "2", "--weights", str(weights),
                       "--out", str(tmp_path / "w2.onnx"))["trial"] == 2
    rc, _, err = run(capsys, "export", str(study), "--best", "--weights", str(weights), "--out", str(tmp_path / "x.onnx"))
    assert rc == 2 and str(as_arch(C)) in err and str(as_arch(A)) in err and "trial 0" in err
    rc, _, err = run(capsys, "export", "--weights", str(weights), "--num-classes", "9", "--out", str(tmp_path / "x.onnx"))
    assert rc == 2 and "num_classes=9" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("args, needle", [
    (["--trial", "1"], "trial 1 failed (NaN loss at step 3)"),
    (["--trial", "3"], "trial 3 is still running"),
    (["--trial", "7"], "no trial 7 in study"),
    (["--best-under-target", "--target-ms", "5"], "within the 5 ms target (fastest: #2 at 10 ms)"),
    (["--arch", A], "not both"),
    (["--best", "--trial", "0"], "not allowed with"),
    (["--target-ms", "5"], "--target-ms applies to --best-under-target"),
])
def test_bad_choices_exit_2_with_one_line(study, tmp_path, capsys, args, needle):
    rc, _, err = run(capsys, "export", str(study), *args, "--out", str(tmp_path / "x.onnx"))
    assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.onnx").exists()


def test_bad_sources_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty.db"
    SQLiteStorage(empty).close()
    failed = tmp_path / "failed.db"
    with SQLiteStorage(failed) as s:
        s.fail_trial(s.create_trial([0], A), "boom")
    cases = [
        ([str(empty)], "has no trials yet"),
        ([str(failed)], "no complete trials yet (1 failed)"),
        ([str(failed), "--best-under-target"], "no complete trials yet"),
        ([str(tmp_path / "missing.db")], "study not found"),
        ([], "nothing to export"),
        (["--trial", "0"], "pass STUDY"),
        (["--weights", str(tmp_path / "nope.pt")], "no such file"),
        (["--arch", "r1_k4_s11_e1_i8_o8"], "k4"),
    ]
    for args, needle in cases:
        rc, _, err = run(capsys, "export", *args, "--out", str(tmp_path / "x.onnx"))
        assert rc == 2 and needle in err, (args, err)
    rc, _, err = run(capsys, "export", "--arch", A, "--out", str(tmp_path / "x.mlmodel"))
    assert rc == 2 and "cannot tell the export format" in err
    with SQLiteStorage(tmp_path / "nt.db") as s:
        s.complete_trial(s.create_trial([0], A), 0.5, 1.0, 0.5)
    rc, _, err = run(capsys, "export", str(tmp_path / "nt.db"), "--best-under-target", "--out", str(tmp_path / "x.onnx"))
    assert rc == 2 and "no latency target: pass --target-ms" in err


def test_untrained_export_needs_saying_so(tmp_path, capsys):
    """Issue 13 item 18: ONNX/TorchScript without --weights is refused unless --untrained; the message
    states the input, and that the weights are random."""
    rc, _, err = run(capsys, "export", "--arch", A, "--out", str(tmp_path / "a.onnx"))
    assert rc == 2 and "UNTRAINED" in err and "--weights" in err and not (tmp_path / "a.onnx").exists()
    rc, out, _ = run(capsys, "export", "--arch", A, "--out", str(tmp_path / "a.onnx"), "--untrained", "--input-size", "8")
    assert rc == 0 and "UNTRAINED: random weights" in out and "input float32 NCHW 1x3x8x8" in out
    rc, out, _ = run(capsys, "export", "--arch", A, "--out", str(tmp_path / "a.json"))  # the architecture: fine
    assert rc == 0


def test_python_export_warns_when_untrained(tmp_path):
    import pytest

    from mnas.deploy import export

    with pytest.warns(UserWarning, match="UNTRAINED"):
        result = export(A, tmp_path / "a.onnx", input_size=8, num_classes=3)
    assert result.trained is False and "UNTRAINED" in result.input_note()


def test_a_likelihood_trials_source_line_has_no_nested_parentheses(tmp_path, capsys):
    # before: 'from trial #0 (likelihood 0.3341 (top-1 36.84%) at 3.13 ms, reward 0.3341) of ...'
    path = tmp_path / "s.db"
    with SQLiteStorage(path) as s:
        s.set_meta("config", CONFIG)
        s.complete_trial(s.create_trial([0], A), 0.3341, 3.13, 0.3341,
                         extra={"score_metric": "likelihood", "inherited_accuracy": 0.3684})
    rc, _, err = run(capsys, "export", str(path), "--out", str(tmp_path / "a.json"))
    assert rc == 0, err
    assert "from trial #0 (likelihood 0.3341, top-1 36.84% at 3.13 ms, reward 0.3341) of" in err
