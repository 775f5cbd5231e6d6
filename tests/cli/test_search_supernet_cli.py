"""`mnas search --supernet F`: inherited accuracy from a checkpoint, the checkpoint's space, one-line refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mnas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACE = ["--width", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1"]


def _npz(root):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 112)
    x = (rng.integers(0, 60, (112, 8, 8, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    npz = root / "tiny.npz"
    np.savez(npz, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return npz


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-class 8x8 .npz and a supernet trained on it for one epoch (seconds)."""
    root = tmp_path_factory.mktemp("sn")
    npz = _npz(root)
    ckpt = root / "sn.pt"
    code = main(["supernet", "train", "--data", str(npz), *SPACE, "--epochs", "1", "--batch-size", "16",
                 "--warmup-epochs", "0", "--eval-images", "0", "--out", str(ckpt), "--quiet"])
    assert code == 0
    return str(npz), str(ckpt)


@pytest.mark.slow  # trains a tiny supernet, then 3 trials: ~35 s on a busy 2-core machine
def test_search_on_inherited_accuracy(tmp_path, tiny, capsys):
    npz, ckpt = tiny
    capsys.readouterr()
    db = tmp_path / "s.db"
    code = main(["search", "--data", npz, "--supernet", ckpt, "--strategy", "random", "--trials", "3",
                 "--reward", "accuracy", "--backend", "torch", "--storage", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert result["states"]["complete"] == 3
    from mnas.evaluate.supernet import _load
    from mnas.space import as_arch
    from mnas.study import Study

    with Study(str(db)) as study:
        trials = study.get_trials("complete")
    assert {t.extra.get("accuracy_source") for t in trials} == {"supernet"}
    space = _load(ckpt).space
    for t in trials:  # every candidate decodes back from the checkpoint's space (width 0.25, head 16)
        assert space.decode(space.encode(as_arch(t.arch))) == as_arch(t.arch)


def test_conflicting_space_options_exit_2(tmp_path, capsys):
    npz = str(_npz(tmp_path))  # the refusals come before the checkpoint is read: no supernet needs training
    code = main(["search", "--data", npz, "--supernet", str(tmp_path / "none.pt"), "--width-mult", "0.5", "--trials", "1",
                 "--storage", str(tmp_path / "a.db")])
    _, err = capsys.readouterr()
    assert code == 2 and "--width-mult" in err and len(err.strip().splitlines()) == 1
    code = main(["search", "--data", npz, "--supernet", str(tmp_path / "none.pt"), "--trials", "1",
                 "--storage", str(tmp_path / "b.db")])
    _, err = capsys.readouterr()
    assert code == 2 and "not found" in err


ENAS = ["--strategy", "enas", "--reward", "accuracy", "--backend", "torch", "--strategy-opt", "rounds=1",
        "--strategy-opt", "shared_steps=2", "--strategy-opt", "controller_updates=1", "--strategy-opt", "archs_per_update=2",
        "--strategy-opt", "derive=3", "--strategy-opt", "derive_batches=1", "--strategy-opt", "val_batch_size=16"]


@pytest.mark.slow  # one ENAS round and 3 derived sub-networks: ~25 s on a busy 2-core machine
def test_enas_from_scratch_stores_derived_architectures(tmp_path, capsys):
    npz, db = str(_npz(tmp_path)), tmp_path / "e.db"
    code = main(["search", "--data", npz, "--width-mult", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1", *ENAS,
                 "--storage", str(db), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)
    assert 1 <= result["states"]["complete"] <= 3 and result["best"]["extra"]["accuracy_source"] == "enas"
    from mnas.study import Study

    with Study(str(db)) as study:
        assert study.meta["config"]["strategy"] == "enas"
    code = main(["search", "--data", npz, "--width-mult", "0.25", "--head", "16", "--strides", "1,1,1,2,1,1,1,1", *ENAS,
                 "--storage", str(db), "--resume"])
    _, err = capsys.readouterr()
    assert code == 2 and "does not resume" in err


@pytest.mark.slow  # the tiny supernet, 3 trials, then one standalone training of one epoch: ~45 s
def test_retrain_top_after_the_search_makes_the_standalone_pick_the_best(tmp_path, tiny, capsys):
    npz, ckpt = tiny
    capsys.readouterr()
    db = tmp_path / "s.db"
    code = main(["search", "--data", npz, "--supernet", ckpt, "--strategy", "random", "--trials", "3",
                 "--reward", "accuracy", "--backend", "torch", "--storage", str(db), "--json",
                 "--retrain-top", "1", "--retrain-epochs", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    from mnas.study import Study

    with Study(str(db)) as study:
        best = study.best()
        sources = sorted(t.extra.get("accuracy_source") for t in study.get_trials("complete"))
    assert sources == ["standalone", "supernet", "supernet", "supernet"]
    assert best.extra["accuracy_source"] == "standalone"
    assert json.loads(out)["best"]["number"] == best.number  # the printed best is the retrained pick


@pytest.mark.slow  # the tiny supernet, 2 trials, a resume to 3: ~10 s
def test_the_inherited_likelihood_is_the_reward_score_and_a_resume_keeps_it(tmp_path, tiny, capsys):
    import math

    from mnas.study import Study

    npz, ckpt = tiny
    db = str(tmp_path / "s.db")
    common = ["--data", npz, "--supernet", ckpt, "--strategy", "random", "--reward", "accuracy", "--backend", "torch",
              "--storage", db, "--json"]
    capsys.readouterr()
    assert main(["search", *common, "--trials", "2", "--inherited-score", "likelihood"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["search", *common[:-1], "--trials", "3", "--resume"]) == 0  # without --json: the lines say what it is
    out, err = capsys.readouterr()
    assert "likelihood 0." in out + err and ", top-1 " in out + err and "Pareto front (inherited likelihood vs latency)" in out
    with Study(db) as study:
        trials = study.get_trials("complete")
    assert len(trials) == 3
    for t in trials:  # the reward saw exp(-cross-entropy); top-1 is kept beside it, on every trial of the resumed run
        assert t.extra["score_metric"] == "likelihood" and 0 <= t.extra["inherited_accuracy"] <= 1
        assert t.accuracy == pytest.approx(math.exp(-t.extra["val_loss"]))
    capsys.readouterr()
    code = main(["search", *common, "--trials", "4", "--resume", "--inherited-score", "accuracy"])
    err = capsys.readouterr().err
    assert code == 2 and "--inherited-score accuracy" in err and "likelihood" in err and len(err.strip().splitlines()) == 1


def test_a_new_supernet_search_scores_the_likelihood_and_an_older_study_resumes_on_top1(tmp_path, tiny, capsys):
    from mnas.cli._resume import RECORD_KEY
    from mnas.study import SQLiteStorage, Study

    npz, ckpt = tiny
    common = ["--data", npz, "--supernet", ckpt, "--strategy", "random", "--reward", "accuracy", "--backend", "torch",
              "--json"]
    new, old = str(tmp_path / "new.db"), str(tmp_path / "old.db")
    assert main(["search", *common, "--trials", "1", "--storage", new]) == 0, capsys.readouterr().err
    with Study(new) as study:
        assert study.get_trials("complete")[0].extra["score_metric"] == "likelihood"  # the default
    # a study made by mnas before the option: scored top-1, no inherited_score in its record
    assert main(["search", *common, "--trials", "1", "--storage", old, "--inherited-score", "accuracy"]) == 0
    with SQLiteStorage(old) as storage:
        record = storage.get_meta(RECORD_KEY)
        del record["args"]["inherited_score"]
        storage.set_meta(RECORD_KEY, record)
    capsys.readouterr()
    assert main(["search", *common, "--trials", "2", "--storage", old, "--resume"]) == 0, capsys.readouterr().err
    with Study(old) as study:
        assert [t.extra.get("score_metric") for t in study.get_trials("complete")] == [None, None]
    code = main(["search", *common, "--trials", "3", "--storage", old, "--resume", "--inherited-score", "likelihood"])
    err = capsys.readouterr().err
    assert code == 2 and "was made with --inherited-score accuracy" in err and len(err.strip().splitlines()) == 1


def test_a_supernet_study_storing_an_unknown_inherited_score_is_refused_naming_it(tmp_path, tiny, capsys):
    # before: '--supernet SN: metric='top5': expected accuracy or likelihood', after loading the data
    from mnas.cli._resume import RECORD_KEY
    from mnas.study import SQLiteStorage

    npz, ckpt = tiny
    db = str(tmp_path / "s.db")
    common = ["--data", npz, "--supernet", ckpt, "--strategy", "random", "--reward", "accuracy", "--backend", "torch",
              "--storage", db, "--json"]
    assert main(["search", *common, "--trials", "1"]) == 0, capsys.readouterr().err
    with SQLiteStorage(db) as storage:  # a record edited by hand
        record = storage.get_meta(RECORD_KEY)
        record["args"]["inherited_score"] = "top5"
        storage.set_meta(RECORD_KEY, record)
    capsys.readouterr()
    code = main(["search", "--storage", db, "--resume", "--trials", "2"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{db} records --inherited-score 'top5'" in err and "expected accuracy or likelihood" in err, err
    assert "--supernet" not in err

@pytest.mark.parametrize("extra, needle", [
    ((), "add --supernet CHECKPOINT"),
    (("--supernet", "SN", "--score", "int8"), "the int8 score is a top-1 accuracy"),
    (("--supernet", "SN", "--strategy", "enas"), "--strategy enas has its own objective"),
])
def test_inherited_likelihood_refusals_exit_2(tmp_path, capsys, extra, needle):
    npz = str(_npz(tmp_path))  # refused before any checkpoint is read
    args = [a.replace("SN", str(tmp_path / "none.pt")) for a in extra]
    code = main(["search", "--data", npz, "--trials", "1", "--inherited-score", "likelihood", *args,
                 "--storage", str(tmp_path / "a.db")])
    err = capsys.readouterr().err
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # the tiny supernet, 3 trials, a report, an export and one standalone training: ~30 s
def test_a_likelihood_study_is_reported_exported_and_retrained_as_one(tmp_path, tiny, capsys):
    # regression (review): report, export --best and --retrain-top printed or stored the likelihood as a top-1 accuracy
    from mnas.study import Study

    npz, ckpt = tiny
    db = str(tmp_path / "s.db")
    common = ["--data", npz, "--supernet", ckpt, "--strategy", "random", "--reward", "accuracy", "--backend", "torch",
              "--storage", db]
    assert main(["search", *common, "--trials", "3", "--json"]) == 0, capsys.readouterr().err
    capsys.readouterr()
    with Study(db) as study:
        best = study.best()
    assert best.likelihood_scored and best.top1 == best.extra["inherited_accuracy"] != best.accuracy
    assert main(["report", db, "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert f"(likelihood {best.accuracy:.4f}, top-1 {100 * best.top1:.2f}%," in out
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "top-1 (%)" in html and "likelihood exp(-CE)" in html and f">{best.accuracy:.4f}<" in html
    assert main(["report", db, "--out", str(tmp_path / "rep2"), "--json"]) == 0
    brief = json.loads(capsys.readouterr().out)["best"]
    assert brief["score_metric"] == "likelihood" and brief["top1_accuracy"] == best.top1
    assert main(["export", db, "--best", "--format", "json", "--out", str(tmp_path / "best.json")]) == 0
    assert f"(likelihood {best.accuracy:.4f}, top-1 {100 * best.top1:.2f}% at " in "".join(capsys.readouterr())
    doc = json.loads((tmp_path / "best.json").read_text())
    assert doc["trial"]["score_metric"] == "likelihood" and doc["trial"]["top1_accuracy"] == best.top1
    assert main(["search", *common, "--resume", "--retrain-top", "1", "--retrain-epochs", "1", "--json"]) == 0
    capsys.readouterr()
    with Study(db) as study:
        retrained = [t for t in study.get_trials("complete") if t.accuracy_source == "standalone"][0]
        src = next(t for t in study.get_trials("complete") if t.number == retrained.extra["retrained_from"])
    assert retrained.extra["inherited_accuracy"] == src.top1 and retrained.extra["inherited_likelihood"] == src.accuracy


def test_the_inherited_score_resolves_per_search_kind():
    import argparse

    from mnas.cli.search_cmd import _check_inherited_score

    def resolved(resuming=False, **kw):
        args = argparse.Namespace(**{"inherited_score": None, "supernet": None, "strategy": "auto", "score": None, **kw})
        _check_inherited_score(args, resuming)
        return args.inherited_score

    assert resolved(supernet="sn.pt") == "likelihood"  # a new supernet search: the default
    assert resolved(supernet="sn.pt", resuming=True) == "accuracy"  # a study that recorded none predates it
    assert resolved(supernet="sn.pt", reward="absolute") == "accuracy"  # its additive beta was set for top-1
    assert resolved(supernet="sn.pt", score="int8") is None  # top-1: the int8 score is a top-1 accuracy
    assert resolved(supernet="sn.pt", strategy="enas") is None and resolved() is None  # not a supernet score
    assert resolved(inherited_score="accuracy") is None  # proxy training: nothing to record
