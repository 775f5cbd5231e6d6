"""`mnas instance train|eval|export` end to end on tiny data, and its one-line errors."""

from __future__ import annotations

import json

import pytest

from conftest import TINY
from mnas.cli import main


def _train(tiny_npz, out, capsys):
    code = main(["instance", "train", "--data", str(tiny_npz), "--out", str(out), "--latency", "macs", "--width", "0.25",
                 "--stem-stride", "1", "--pretrain-epochs", "1", "--search-epochs", "1", "--finetune-epochs", "0.5",
                 "--batch-size", str(TINY["batch_size"]), "--quiet", "--json"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.slow
def test_train_eval_export(tiny_npz, tmp_path, capsys, one_torch_thread):
    final = _train(tiny_npz, tmp_path / "run", capsys)
    assert 0 <= final["accuracy"] <= 1 and final["table_backend"] == "macs"
    assert main(["instance", "eval", str(tmp_path / "run"), "--threshold", "0.7", "--json"]) == 0
    ev = json.loads(capsys.readouterr().out)
    assert ev["threshold"] == 0.7 and ev["n"] == 32 and len(ev["route_distribution"]["counts"]) == 4
    assert main(["instance", "eval", str(tmp_path / "run"), "--budget-ms", "0.01", "--json"]) == 0
    tight = json.loads(capsys.readouterr().out)
    assert tight["mean_latency_ms"] <= ev["mean_latency_ms"] and tight["budget_ms"] == 0.01
    assert main(["instance", "export", str(tmp_path / "run"), "--out", str(tmp_path / "exp"), "--max-routes", "2",
                 "--json"]) == 0
    exp = json.loads(capsys.readouterr().out)
    assert exp["routes_exported"] <= 2 and (tmp_path / "exp" / "manifest.json").is_file()


@pytest.mark.parametrize("argv, message", [
    (["instance", "eval", "/nonexistent/run"], "no trained instance model"),
    (["instance", "eval", "x", "--threshold", "2"], "expected a number in (0, 1]"),
    (["instance", "eval", "x", "--threshold", "0.5", "--budget-ms", "3"], "not allowed with argument"),
    (["instance", "train", "--out", "o", "--strides", "1,2"], "7 comma-separated strides"),
    (["instance", "train", "--out", "/nonexistent/o", "--resume"], "nothing to resume"),
])
def test_bad_input_exits_2_with_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        raise SystemExit(main(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_resume_refuses_a_file_that_is_not_an_instance_checkpoint(tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    run.mkdir()
    ckpt = run / "checkpoint.pt"
    ckpt.write_bytes(b"not a checkpoint")
    assert main(["instance", "train", "--out", str(run), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a readable mnas checkpoint" in err and len(err.splitlines()) == 1
    torch.save({"format": "mnas.checkpoint/1"}, ckpt)  # `mnas train`'s, not an instance run's
    assert main(["instance", "train", "--out", str(run), "--resume"]) == 2
    assert f"{ckpt}: not a mnas instance checkpoint" in capsys.readouterr().err


def test_instance_without_action_prints_help(capsys):
    assert main(["instance"]) == 2
    assert "train" in capsys.readouterr().err
