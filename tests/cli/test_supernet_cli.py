"""`mnas supernet train` and `mnas supernet rank-check`: JSON, resume, tables, exit 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mnas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A small space: 8x8 images, width 0.25, a 16-filter head; the stem and every block keep stride 1
# except one, so the tiny images are not reduced to nothing.
SPACE = ["--width", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1"]


@pytest.fixture
def tiny_npz(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 112)
    x = (rng.integers(0, 60, (112, 8, 8, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return str(path)


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_json_checkpoint_and_resume(tmp_path, tiny_npz, capsys):
    out = tmp_path / "sn.pt"
    args = ["supernet", "train", "--data", tiny_npz, *SPACE, "--epochs", "2", "--batch-size", "16",
            "--warmup-epochs", "1", "--eval-images", "16", "--out", str(out)]
    code, stdout, err = _run(capsys, *args, "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["epochs"] == 2 and len(result["history"]) == 2 and result["world_size"] == 1
    assert 0 <= result["history"][-1]["val_accuracy_smallest"] <= 1
    state = torch.load(out, weights_only=True)
    assert state["format"] == "mnas.supernet/1" and state["epoch"] == 2
    code, _, err = _run(capsys, *args)
    assert code == 2 and "--resume" in err
    code, _, err = _run(capsys, *args[:-2], "--out", str(tmp_path / "none.pt"), "--resume")
    assert code == 2 and "does not exist" in err


@pytest.mark.slow  # trains 9 tiny networks standalone: ~30 s on a busy 2-core machine
def test_rank_check_table_and_json(tmp_path, tiny_npz, capsys):
    out = tmp_path / "sn.pt"
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, *SPACE, "--epochs", "1", "--batch-size", "16",
                        "--warmup-epochs", "0", "--eval-images", "0", "--out", str(out), "--quiet")
    assert code == 0, err
    check = ["supernet", "rank-check", str(out), "--data", tiny_npz, "--n", "4", "--epochs", "0.2", "--batch-size",
             "16", "--noise", "2", "--images", "16", "--out", str(tmp_path / "rank"), "--bootstrap", "50"]
    code, stdout, err = _run(capsys, *check)
    assert code == 0, err
    assert "inherited" in stdout and "macs" in stdout and "seed-to-seed" in stdout
    code, stdout, err = _run(capsys, *check, "--json")  # from the cache: nothing retrained
    assert code == 0, err
    report = json.loads(stdout)
    assert report["n"] >= 4 and "standalone: " not in err and "noise_ceiling" in report


def test_bad_input_exits_2(tmp_path, tiny_npz, capsys):
    code, _, err = _run(capsys, "supernet", "rank-check", str(tmp_path / "missing.pt"), "--data", tiny_npz)
    assert code == 2 and "not found" in err
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, "--strides", "1,x", "--out",
                        str(tmp_path / "a.pt"))
    assert code == 2 and "--strides" in err
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, "--no-sandwich", "--num-random", "0",
                        "--out", str(tmp_path / "b.pt"))
    assert code == 2 and "--num-random" in err and not (tmp_path / "b.pt").exists()
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, "--sampler", "fair", "--out",
                        str(tmp_path / "c.pt"))
    assert code == 2 and "--no-sandwich" in err and len(err.strip().splitlines()) == 1


def test_train_without_the_sandwich(tmp_path, tiny_npz, capsys):
    code, out, _ = _run(capsys, "supernet", "train", "--data", tiny_npz, *SPACE, "--epochs", "1", "--batch-size", "32",
                        "--no-sandwich", "--warmup-epochs", "0", "--eval-images", "0", "--out", str(tmp_path / "s.pt"),
                        "--json")
    assert code == 0
    result = json.loads(out)
    assert result["history"][0]["subnets_per_step"] == 2  # --num-random's default, no largest or smallest
    state = torch.load(tmp_path / "s.pt", map_location="cpu", weights_only=True)
    assert state["train_config"]["sandwich"] is False


def test_option_lists_make_a_fully_shared_space_and_travel_in_the_checkpoint(tmp_path, tiny_npz, capsys):
    # --ops mbconv3,mbconv6 --skips identity: every choice shares weights (expansion 3 is a prefix of 6).
    from mnas.oneshot.train import load_supernet

    out = tmp_path / "ent.pt"
    code, stdout, err = _run(capsys, "supernet", "train", "--data", tiny_npz, *SPACE, "--ops", "mbconv3,mbconv6",
                             "--skips", "identity", "--kernel-sizes", "3", "--layer-deltas=-1,0", "--epochs", "1",
                             "--batch-size", "32", "--warmup-epochs", "0", "--eval-images", "0", "--out", str(out),
                             "--json")
    assert code == 0, err
    space = load_supernet(out)[0].space
    assert space.options["op"] == ("mbconv3", "mbconv6") and space.options["skip"] == ("identity",)
    assert space.options["kernel"] == (3,) and space.options["layers"] == (-1, 0)
    assert space.options["se"] == (0.0, 0.25)  # not given: the default list


@pytest.mark.parametrize(("argv", "needle"), [
    (["--kernel-sizes", "3,x"], "--kernel-sizes '3,x': expected comma-separated ints"),
    (["--kernel-sizes", "3,4,5"], "kernel_sizes: choice 4 does not build"),
    (["--ops", "mbconv3,,mbconv6"], "no empty items"),
    (["--skips", "identity,identity"], "each choice once"),
    (["--ops", "mbconv9"], "unknown op 'mbconv9'"),
    (["--filter-mults=-1,1"], "not a positive number"),
    (["--space", "layerwise", "--skips", "identity"], "--skips is a --space mnasnet option"),
])
def test_bad_option_lists_exit_2_with_one_line(tmp_path, tiny_npz, capsys, argv, needle):
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, *SPACE, *argv, "--out", str(tmp_path / "x.pt"))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.pt").exists()


def test_skeleton_builds_the_layerwise_space_on_a_zoo_networks_stages(tmp_path, tiny_npz, capsys):
    from mnas.oneshot.train import load_supernet
    from mnas.space.presets import skeleton_space

    out = tmp_path / "sk.pt"
    args = ["supernet", "train", "--data", tiny_npz, "--space", "layerwise", "--skeleton", "mnasnet_small",
            "--width", "0.25", "--head", "16", "--epochs", "1", "--batch-size", "32", "--warmup-epochs", "0",
            "--eval-images", "0", "--ops", "k3e3,skip"]
    code, _, err = _run(capsys, *args, "--out", str(out))
    assert code == 0, err
    space = load_supernet(out)[0].space
    want = skeleton_space("mnasnet_small", 3, 8, width_mult=0.25, head_chs=16, ops=("k3e3", "skip"))
    assert space.settings() == want.settings() and space.stages != skeleton_space("mobilenetv2", 3, 8).stages
    # resuming with another skeleton names the option at fault
    code, _, err = _run(capsys, *args[:6], "--skeleton", "mnasnet_b1", "--out", str(out), "--resume")
    assert code == 2 and "--skeleton" in err and len(err.strip().splitlines()) == 1, err
    # regression (review): a typed option that agrees resumed the space on MobileNetV2's stages and was refused
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, "--ops", "k3e3,skip", "--out", str(out),
                        "--resume")
    assert code == 0, err


@pytest.mark.parametrize(("argv", "needle"), [
    (["--skeleton", "mnasnet_b1"], "only the layerwise space takes a skeleton"),
    (["--space", "layerwise", "--skeleton", "resnet50"], "--skeleton 'resnet50': not a zoo network"),
    (["--space", "nbmacro", "--skeleton", "mnasnet_b1"], "only the layerwise space takes a skeleton"),
    (["--space", "layerwise", "--skeleton", "mnasnet_b1_x0.5"], "--skeleton mnasnet_b1 --width-mult 0.5"),
])
def test_bad_skeleton_exits_2_with_one_line(tmp_path, tiny_npz, capsys, argv, needle):
    code, _, err = _run(capsys, "supernet", "train", "--data", tiny_npz, *argv, "--out", str(tmp_path / "x.pt"))
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err


def test_a_ground_truth_of_fewer_than_4_networks_is_refused_before_the_checkpoint_is_read(tmp_path, tiny_npz, capsys):
    """Three networks (or six rows of two) gave a table of NaN taus and exit 0."""
    from _cli_helpers import one_line

    from mnas.space.presets import nas_bench_macro_space

    space = nas_bench_macro_space()
    truth = tmp_path / "truth.json"
    truth.write_text(json.dumps({str(space.decode([i] * 8)): 0.5 + i / 10 for i in range(3)}))
    checkpoint = tmp_path / "sn.pt"
    checkpoint.write_bytes(b"not read")
    code, _, err = _run(capsys, "supernet", "rank-check", str(checkpoint), "--data", tiny_npz, "--ground-truth", str(truth))
    one_line(code, err, "3 distinct architectures")


def test_train_separate_weights_and_resume_keeps_them(tmp_path, tiny_npz, capsys):
    out = tmp_path / "sep.pt"
    args = ["supernet", "train", "--data", tiny_npz, *SPACE, "--batch-size", "16", "--warmup-epochs", "0",
            "--eval-images", "0", "--out", str(out), "--quiet"]
    code, _, err = _run(capsys, *args, "--epochs", "1", "--sharing", "separate")
    assert code == 0, err
    assert torch.load(out, weights_only=True)["config"]["sharing"] == "separate"
    code, _, err = _run(capsys, *args, "--resume", "--sharing", "shared")
    assert code == 2 and "--sharing" in err and "separate" in err and len(err.strip().splitlines()) == 1
    code, _, err = _run(capsys, *args, "--resume", "--width", "0.25")  # a space option rebuilds the supernet
    assert code == 0, err
    state = torch.load(out, weights_only=True)
    assert state["epoch"] == 1 and state["config"]["sharing"] == "separate"
