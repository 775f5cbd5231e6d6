"""`mnas train ARCH --recipe proxy --out DIR`: the proxy run's weights as a model file (issue 20).

"Export what the search recorded" is `mnas train <trial arch> --recipe proxy --seed S --out DIR` then
`mnas export --weights DIR/model.pt`: the proxy run writes DIR/model.pt in `train_full`'s format and
DIR/metrics.json; the saved weights give the validation accuracy the run printed, to the image, and the
file exports (`--check`: ONNX Runtime agrees with PyTorch). Without --out nothing is written, as before;
a directory holding a model or a checkpoint is refused in one line."""

from __future__ import annotations

import json

import pytest
from _cli_helpers import run_cli

TINY = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.1_relu"
pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(autouse=True)
def _needs_sklearn():
    pytest.importorskip("sklearn")


def test_a_proxy_run_with_out_writes_a_model_that_reproduces_its_accuracy_and_exports(tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from mnas.train import load
    from mnas.train.config import PROXY_VAL_FRACTION, recipe
    from mnas.train.full import load_model
    from mnas.train.loop import Loop

    out_dir = tmp_path / "run"
    code, out, err = run_cli(capsys, "train", TINY, "--recipe", "proxy", "--data", "digits", "--epochs", "1", "--seed",
                          "3", "--out", str(out_dir), "--json")
    assert code == 0, err
    printed = json.loads(out)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert printed["model"] == str(out_dir / "model.pt") and "export it with 'mnas export --weights" in err
    assert metrics["val_accuracy"] == printed["accuracy"] and metrics["split_seed"] == 3
    assert metrics["training_seed"] == printed["training_seed"] and 0 <= metrics["test_accuracy"] <= 1

    model, info = load_model(out_dir / "model.pt")
    assert info["arch"] == printed["arch"] and info["data"]["source"]["data"] == "digits"
    data = load("digits", val_fraction=PROXY_VAL_FRACTION, seed=3)  # the run's split
    loop = Loop(model, data, recipe("proxy", epochs=1.0), train=False)
    assert loop.evaluate("val")[0] == printed["accuracy"]  # the saved weights are the run's, to the image
    assert loop.evaluate("test")[0] == metrics["test_accuracy"]

    onnx = tmp_path / "model.onnx"
    code, out, err = run_cli(capsys, "export", "--weights", str(out_dir / "model.pt"), "--format", "onnx", "--out",
                          str(onnx), "--check")
    assert code == 0, err
    assert onnx.is_file() and onnx.stat().st_size > 0

    # the text line names the model; a second run into the same directory is refused, nothing overwritten
    before = (out_dir / "model.pt").read_bytes()
    code, _, err = run_cli(capsys, "train", TINY, "--proxy", "--data", "digits", "--steps", "1", "--out", str(out_dir))
    assert code == 2 and f"--out {out_dir} already holds model.pt" in err and len(err.strip().splitlines()) == 1
    assert (out_dir / "model.pt").read_bytes() == before


def test_without_out_a_proxy_run_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "train", TINY, "--proxy", "--data", "digits", "--steps", "2")
    assert code == 0, err
    assert "val accuracy" in out and "model:" not in err and not list(tmp_path.iterdir())


def test_out_that_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "x"
    path.write_text("")
    code, _, err = run_cli(capsys, "train", TINY, "--proxy", "--data", "digits", "--steps", "1", "--out", str(path))
    assert code == 2 and "a file, not a directory" in err and len(err.strip().splitlines()) == 1


def test_out_that_cannot_be_made_is_one_line_before_training(tmp_path, capsys, monkeypatch):
    # regression (review): --out FILE/sub passed the checks, trained, then failed with an internal error
    import mnas.train

    path = tmp_path / "x"
    path.write_text("")
    monkeypatch.setattr(mnas.train, "train_proxy", lambda *a, **k: pytest.fail("trained before the refusal"))
    code, _, err = run_cli(capsys, "train", TINY, "--proxy", "--data", "digits", "--steps", "1", "--out", str(path / "sub"))
    assert code == 2 and "cannot make the directory" in err and len(err.strip().splitlines()) == 1, err
