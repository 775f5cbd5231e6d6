"""`mnas search --strategy darts|gdas|fbnet`: one derived trial that report, export and train accept,
resume with --resume, and one-line refusals (exit 2) of the combinations that do not go together."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from mnas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CELLS = ["--space", "nb201", "--cell-channels", "4", "--cells-per-stage", "1"]
TINY = ["--strategy-opt", "train_images=32", "--strategy-opt", "batch_size=8", "--strategy-opt", "channels=4"]
BLOCKS = ["--width-mult", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1"]


def _npz(root):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 112)
    x = (rng.integers(0, 60, (112, 8, 8, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    npz = root / "tiny.npz"
    np.savez(npz, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return str(npz)


@pytest.mark.parametrize("strategy", ["darts", "gdas"])
def test_cell_search_ends_with_one_derived_trial_that_report_and_export_take(tmp_path, capsys, strategy):
    npz, db = _npz(tmp_path), str(tmp_path / "s.db")
    code = main(["search", "--data", npz, *CELLS, "--strategy", strategy, *TINY, "--strategy-opt", "epochs=1",
                 "--backend", "torch", "--storage", db])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err.startswith("[epoch  1/1] " + strategy) and "entropy" in err and "|" in err  # progress per epoch
    assert "trials: 1 (1 complete)" in out and "target: none (accuracy only)" in out
    code = main(["report", db, "--out", str(tmp_path / "rep"), "--json"])
    info = json.loads(capsys.readouterr()[0])
    assert code == 0 and info["n_complete"] == 1 and info["files"]["alphas"].endswith("alphas.png")
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "Architecture weights" in page and page.count("data:image/png;base64,") == 3
    code = main(["export", db, "--format", "json", "--out", str(tmp_path / "arch.json"), "--json"])
    capsys.readouterr()
    exported = json.loads((tmp_path / "arch.json").read_text())
    assert code == 0 and exported["arch"].startswith("|") and exported["arch"] == info["best"]["arch"]
    from mnas.study import Study

    with Study(db) as study:
        (trial,) = study.trials
        assert study.best().number == trial.number
    assert trial.extra["derived"] is True and trial.extra["accuracy_source"] == strategy
    if strategy == "darts":  # mnas train takes the exported architecture (a few proxy steps)
        code = main(["train", str(tmp_path / "arch.json"), "--data", npz, "--proxy", "--steps", "2", "--batch-size", "8",
                     "--out", str(tmp_path / "train"), "--json"])
        _, err = capsys.readouterr()
        assert code == 0, err


def test_second_order_and_resume(tmp_path, capsys):
    """An interrupted search (a study with its config and checkpoint, no trial) finishes with --resume."""
    from mnas.loop.gradient_study import gradient_study
    from mnas.objectives import Reward
    from mnas.space import NB201Space
    from mnas.train import load

    npz, db = _npz(tmp_path), str(tmp_path / "s.db")
    options = {"train_images": 32, "batch_size": 8, "channels": 4, "epochs": 2, "order": 2}
    data = load(npz, val_fraction=0.2, seed=0)

    def stop(record):
        raise KeyboardInterrupt  # after epoch 1's checkpoint, as Ctrl-C would

    with pytest.raises(KeyboardInterrupt):
        gradient_study(NB201Space(3, 8, channels=4, cells_per_stage=1), data, Reward.accuracy(), _NoLatency(),
                       strategy="darts", options=options, storage=db, progress=stop)
    code = main(["search", "--data", npz, *CELLS, "--strategy", "darts", *TINY, "--strategy-opt", "epochs=2",
                 "--strategy-opt", "order=2", "--backend", "torch", "--resume", "--storage", db, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["states"]["complete"] == 1 and result["best"]["extra"]["epoch"] == 2
    from mnas.study import Study

    with Study(db) as study:
        assert [r["epoch"] for r in study.meta["gradient_history"]["epochs"]] == [1, 2]
        assert study.meta["config"]["strategy_options"]["order"] == 2
    code = main(["search", "--data", npz, *CELLS, "--strategy", "darts", *TINY, "--strategy-opt", "epochs=3",
                 "--strategy-opt", "order=2", "--backend", "torch", "--resume", "--storage", db])
    _, err = capsys.readouterr()
    assert code == 2 and "epochs" in err and len(err.strip().splitlines()) == 1


class _NoLatency:
    def measure(self, *a, **k):  # never reached: the search is interrupted first
        raise AssertionError


@pytest.mark.parametrize("args,words", [
    (["--strategy", "darts"], "--space nb201"),
    (["--space", "layerwise", "--strategy", "gdas"], "--space nb201"),
    ([*CELLS, "--strategy", "gdas", "--supernet", "x.pt"], "drop --supernet"),
    ([*CELLS, "--strategy", "darts", "--trials", "5"], "drop --trials"),
    ([*CELLS, "--strategy", "fbnet", "--target", "5ms"], "--strategy darts or gdas"),
    (["--strategy", "fbnet", "--lut", "t.json"], "--target"),
    (["--strategy", "fbnet", "--reward", "accuracy", "--lut", "t.json"], "--target"),
    (["--strategy", "fbnet", "--target", "5ms"], "--lut"),
    (["--strategy", "fbnet", "--target", "5ms", "--lut", "missing.json"], "not found"),
    ([*CELLS, "--strategy", "darts", "--strategy-opt", "epoch=1"], "DartsConfig fields"),
])
def test_wrong_combinations_exit_2_with_one_line(tmp_path, capsys, args, words):
    code = main(["search", "--data", _npz(tmp_path), *args, "--backend", "torch", "--storage", str(tmp_path / "s.db")])
    _, err = capsys.readouterr()
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "s.db").exists()  # refused before any study file is made


def _lut_file(path, space):
    from mnas.latency import enumerate_units
    from mnas.latency.lut import FORMAT

    entries = {u.key: {"ms": 0.01 + (zlib.crc32(u.key.encode()) % 1000) / 1000} for u in enumerate_units(space)}
    path.write_text(json.dumps({"format": FORMAT, "complete": True, "entries": entries,
                                "input_size": space.input_size, "num_classes": space.num_classes}))
    return str(path)


def test_fbnet_search_stores_the_derived_architecture_measured_on_the_backend(tmp_path, capsys):
    from mnas.space import MnasNetSpace

    npz, db = _npz(tmp_path), str(tmp_path / "f.db")
    lut = _lut_file(tmp_path / "lut.json", MnasNetSpace(3, 8, width_mult=0.25, head_chs=16, strides=[1, 1, 1, 2, 1, 1, 1, 1]))
    code = main(["search", "--data", npz, *BLOCKS, "--strategy", "fbnet", "--target", "3ms", "--lut", lut, "--backend",
                 "torch", "--strategy-opt", "epochs=1", "--strategy-opt", "max_rounds=1", "--strategy-opt",
                 "warmup_epochs=0", "--strategy-opt", "batch_size=8", "--strategy-opt", "train_images=24",
                 "--strategy-opt", "steps_per_epoch=1", "--storage", db])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "[epoch  1, round 1] fbnet" in err and "target 3 ms" in err and "target: 3.000 ms" in out
    from mnas.study import Study

    with Study(db) as study:
        (best,) = study.trials
        assert study.meta["target_ms"] == 3.0
    assert best.extra["accuracy_source"] == "fbnet" and best.extra["derived"] is True
    assert best.latency_ms == pytest.approx(best.extra["measured_ms"]) and best.latency_ms > 0


def test_gdas_at_the_cpu_default_says_that_darts_is_the_one_that_beat_random_cells(tmp_path, capsys):
    npz = _npz(tmp_path)
    small = ["--strategy-opt", "batch_size=8", "--strategy-opt", "stop_unchanged=1", "--strategy-opt", "stop_entropy=1.0"]
    code = main(["search", "--data", npz, *CELLS, "--strategy", "gdas", *small, "--backend", "torch",
                 "--storage", str(tmp_path / "g.db")])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert err.startswith("note: at the CPU default GDAS's cells did not beat random cells") and "--strategy darts" in err
    for strategy, opts in (("gdas", [*TINY, "--strategy-opt", "epochs=1"]), ("darts", [*TINY, "--strategy-opt", "epochs=1"]),
                           ("gdas", ["--strategy-opt", "train_images=32", "--strategy-opt", "epochs=1"])):
        code = main(["search", "--data", npz, *CELLS, "--strategy", strategy, *opts, "--backend", "torch",
                     "--storage", str(tmp_path / f"{strategy}{len(opts)}.db")])
        assert code == 0 and "note:" not in capsys.readouterr()[1]  # not the CPU default's budget: no claim about it
