"""`gradient_study`: a DARTS / GDAS / FBNet search stored as one derived trial, its history in the
study's metadata, resume from the checkpoint beside the study, and one-line refusals."""

from __future__ import annotations

import io
import math
import types
import zlib

import numpy as np
import pytest

from mnas.loop.api import create_study, load_study
from mnas.loop.gradient_study import GradientProgress, check_combination, checkpoint_dir, gradient_study
from mnas.objectives import Reward
from mnas.space import MnasNetSpace, NB201Space
from mnas.train.datasets import NO_AUGMENT, from_arrays

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = {"epochs": 1, "batch_size": 8, "train_images": 16, "channels": 4}


class StubLatency:
    """A latency backend without timing: a fixed figure, and a count of the measurements."""

    def __init__(self, ms: float = 1.5) -> None:
        self.ms, self.calls = ms, 0

    def measure(self, arch, input_size, num_classes, batch_size=1, in_chans=3):
        self.calls += 1
        return types.SimpleNamespace(median_ms=self.ms)

    def __call__(self, arch) -> float:  # fbnet's closed loop takes a callable arch -> ms
        self.calls += 1
        return self.ms

    def describe(self) -> dict:
        return {"name": "stub"}


def _data(n: int = 40, size: int = 8, classes: int = 4):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    y = np.arange(n) % classes
    return from_arrays("rand", x, y, x[:4], y[:4], [str(i) for i in range(classes)], val_fraction=0.0,
                       augment=NO_AUGMENT)


def _space():
    return NB201Space(4, 8, channels=4, cells_per_stage=1)


@pytest.mark.parametrize("strategy", ["darts", "gdas"])
def test_search_ends_with_one_derived_trial_and_its_history(tmp_path, strategy):
    db, latency = tmp_path / "s.db", StubLatency()
    study = gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy=strategy, options=TINY, storage=db)
    trials = study.complete_trials
    assert len(trials) == 1 and latency.calls == 1
    t = trials[0]
    history = study.meta["gradient_history"]
    assert t.extra["derived"] is True and t.extra["accuracy_source"] == strategy and t.extra["epoch"] == 1
    assert t.arch == history["epochs"][-1]["arch"] and t.accuracy == pytest.approx(history["epochs"][-1]["val_acc"])
    assert t.latency_ms == 1.5 and t.params > 0 and t.macs > 0
    assert history["strategy"] == strategy and history["labels"]["alpha"]["rows"][0] == "1<-0"
    assert len(history["epochs"][0]["softmax"]["alpha"]) == 6
    config = study.meta["config"]
    assert config["strategy"] == strategy and config["strategy_options"]["epochs"] == 1
    assert config["evaluation"]["data"]["channels"] == 3
    assert (checkpoint_dir(db, strategy) / "search.pt").is_file()
    reopened = load_study(db)  # the space rebuilds from the stored settings: report, export, train read it
    assert reopened.best().number == t.number and reopened.space.encode(reopened.space.decode(t.tokens)) == list(t.tokens)


class _Stop(Exception):
    pass


def _stop_at(epoch):
    def progress(record):
        if record["epoch"] == epoch:
            raise _Stop
    return progress


def test_resume_continues_from_the_checkpoint_and_equals_an_uninterrupted_run(tmp_path):
    options = {**TINY, "epochs": 2}
    full = gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="gdas", options=options,
                          storage=tmp_path / "a.db")
    db = tmp_path / "b.db"
    with pytest.raises(_Stop):  # a kill after the first epoch's checkpoint
        gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="gdas", options=options, storage=db,
                       progress=_stop_at(1))
    partial = load_study(db)
    assert not partial.trials and len(partial.meta["gradient_history"]["epochs"]) == 1  # history stored as it runs
    seen = []
    resumed = gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="gdas", options=options,
                             storage=db, progress=lambda r: seen.append(r["epoch"]))
    assert seen == [2]  # epoch 1 came from the checkpoint
    clocks = ("seconds", "cpu_seconds")
    strip = [{k: v for k, v in r.items() if k not in clocks} for r in full.meta["gradient_history"]["epochs"]]
    got = [{k: v for k, v in r.items() if k not in clocks} for r in resumed.meta["gradient_history"]["epochs"]]
    assert got == strip and resumed.best().arch == full.best().arch


def test_a_study_made_under_older_defaults_resumes_with_its_own_options(tmp_path):
    """Regression (issue 22's default change): a study made before the remedy fields existed, or under
    the defaults of its day, was refused on resume as 'searched with other options'; it now continues
    with the options it was made with, and a given option that differs is still refused."""
    db = tmp_path / "old.db"
    old = {**TINY, "epochs": 2, "aux_skip": 0.0, "derive_none": True}  # what the search ran with before
    with pytest.raises(_Stop):
        gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="darts", options=old, storage=db,
                       progress=_stop_at(1))
    store = load_study(db).storage
    config = store.get_meta("config")
    for key in ("aux_skip", "skip_dropout", "derive_none"):  # an older mnas stored no such fields
        config["strategy_options"].pop(key)
    store.set_meta("config", config)
    store.close()
    seen = []
    resumed = gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="darts",
                             options={**TINY, "epochs": 2}, storage=db, progress=lambda r: seen.append(r["epoch"]))
    assert seen == [2] and len(resumed.trials) == 1
    options = resumed.meta["config"]["strategy_options"]
    assert (options["aux_skip"], options["derive_none"]) == (0.0, True)  # the study's, not today's defaults
    with pytest.raises(ValueError, match="aux_skip"):
        gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="darts",
                       options={**TINY, "epochs": 2, "aux_skip": 0.5}, storage=db)


def test_finished_study_is_returned_without_searching_and_other_options_are_refused(tmp_path):
    db, latency = tmp_path / "s.db", StubLatency()
    gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy="darts", options=TINY, storage=db)
    again = gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy="darts", options=TINY, storage=db,
                           progress=_stop_at(1))  # would raise if it searched again
    assert len(again.trials) == 1 and latency.calls == 1
    with pytest.raises(ValueError, match="epochs"):
        gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy="darts", options={**TINY, "epochs": 2},
                       storage=db)
    with pytest.raises(ValueError, match="darts study"):
        gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy="gdas", options=TINY, storage=db)
    with pytest.raises(ValueError, match="DartsConfig fields"):
        gradient_study(_space(), _data(), Reward.accuracy(), latency, strategy="darts", options={"epoch": 1},
                       storage=tmp_path / "bad.db")


def test_a_study_of_an_ask_tell_search_is_refused(tmp_path):
    db = tmp_path / "s.db"
    study = create_study(db, space=_space(), reward=Reward.accuracy())
    number = study.storage.create_trial([0] * 6, str(_space().decode([0] * 6)))
    study.storage.complete_trial(number, 0.5, 1.0, 0.5)
    study.storage.close()
    with pytest.raises(ValueError, match="already holds trials"):
        gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="darts", options=TINY, storage=db)


def test_wrong_combinations_are_one_line_errors():
    block, cell = MnasNetSpace(10, 32), _space()
    for strategy, space, reward, words in [("darts", block, Reward.accuracy(), "--space nb201"),
                                           ("gdas", block, Reward.accuracy(), "--strategy fbnet"),
                                           ("fbnet", cell, Reward.soft(5.0), "--space mnasnet"),
                                           ("fbnet", block, Reward.accuracy(), "--target"),
                                           ("enas", cell, Reward.accuracy(), "expected one of")]:
        with pytest.raises(ValueError, match=words) as info:
            check_combination(strategy, space, reward)
        assert "\n" not in str(info.value)


def test_progress_line_shows_entropy_against_uniform_and_the_derived_arch():
    out = io.StringIO()
    GradientProgress("darts", file=out)({"epoch": 2, "of_epochs": 5, "train_acc": 0.3, "val_acc": 0.25,
                                         "entropy": 1.2, "softmax": {"alpha": [[0.2] * 5] * 6}, "param_free": 0.5,
                                         "arch": "|none~0|+..."})
    line = out.getvalue()
    assert line.startswith("[epoch  2/5] darts") and "val 25.0%" in line and "param-free 50%" in line
    assert f"entropy 1.2000 of {math.log(5):.4f}" in line and line.rstrip().endswith("|none~0|+...")
    # review: GDAS that never samples `none` measures its entropy over 4 ops; the line showed ln 5 beside it
    out = io.StringIO()
    GradientProgress("gdas", file=out)({"epoch": 1, "entropy": 1.3862, "entropy_max": math.log(4),
                                        "softmax": {"alpha": [[0.2] * 5] * 6}, "arch": "x"})
    assert f"entropy 1.3862 of {math.log(4):.4f}" in out.getvalue()


def _lut(space):
    from mnas.latency import LookupTable, enumerate_units

    entries = {u.key: 0.01 + (zlib.crc32(u.key.encode()) % 1000) / 1000 for u in enumerate_units(space)}
    return LookupTable(entries, space.input_size, space.num_classes)


def test_fbnet_study_stores_the_measured_derived_architecture(tmp_path):
    space = MnasNetSpace(4, 8, width_mult=0.25, stages=((16, 1, 1), (24, 2, 2)), head_chs=16)
    latency = StubLatency(0.9)
    options = {"epochs": 1, "max_rounds": 1, "batch_size": 8, "train_images": 24, "steps_per_epoch": 2}
    study = gradient_study(space, _data(n=24), Reward.soft(1.0), latency, strategy="fbnet", options=options,
                           storage=tmp_path / "f.db", table=_lut(space))
    (t,) = study.complete_trials
    assert t.extra["accuracy_source"] == "fbnet" and t.extra["derived"] and t.latency_ms == 0.9
    assert latency.calls == 1  # measured once by the search's closed loop, not again for the trial
    assert t.reward == pytest.approx(Reward.soft(1.0)(t.accuracy, 0.9))
    history = study.meta["gradient_history"]
    assert history["labels"]["decisions"]["rows"] == [d.name for d in space.decisions]
    assert len(history["epochs"][-1]["softmax"]["decisions"]) == len(space.decisions)
    assert history["result"]["measured_ms"] == 0.9 and study.meta["config"]["strategy_options"]["warmup_epochs"] == 1
    with pytest.raises(ValueError, match="table="):
        gradient_study(space, _data(n=24), Reward.soft(1.0), latency, strategy="fbnet", options=options,
                       storage=tmp_path / "g.db")
    assert not (tmp_path / "g.db").exists()  # refused before a study file is made


def test_the_trial_says_how_the_search_ended_and_the_console_shows_stability_per_epoch(tmp_path):
    """Issue 22 part 2: each epoch's line shows whether the derived cell changed, a last line says why the
    search stopped, and the derived trial records it (a search at its epoch cap is not converged)."""
    out = io.StringIO()
    progress = GradientProgress("darts", file=out)
    study = gradient_study(_space(), _data(), Reward.accuracy(), StubLatency(), strategy="darts",
                           options={**TINY, "epochs": 3, "stop_unchanged": 5}, storage=tmp_path / "s.db",
                           progress=progress)
    (t,) = study.complete_trials
    epochs = study.meta["gradient_history"]["epochs"]
    assert t.extra["stop_reason"] == "max_epochs" and t.extra["converged"] is False and t.extra["epochs_run"] == 3
    assert t.extra["entropy"] == epochs[-1]["entropy"] and t.extra["entropy_max"] == pytest.approx(math.log(5))
    assert t.extra["unchanged_epochs"] == epochs[-1]["unchanged_epochs"] and t.extra["cpu_seconds"] > 0
    assert [r["changed"] is None for r in epochs] == [True, False, False]
    lines = out.getvalue().splitlines()
    assert len(lines) == 4 and lines[0].startswith("[epoch  1/3] darts")
    for line, r in zip(lines[1:3], epochs[1:], strict=True):
        assert (f"cell {r['changed']} changed" if r["changed"] else f"cell same {r['unchanged_epochs']}/5") in line
    assert lines[3].startswith("[darts] stopped after 3 epochs: at its epoch cap, NOT converged; entropy ")


def test_progress_line_shows_the_cells_stability_and_the_warmup():
    out = io.StringIO()
    show = GradientProgress("gdas", file=out)
    base = {"epoch": 4, "of_epochs": 30, "entropy": 1.2, "softmax": {"alpha": [[0.2] * 5] * 6}, "arch": "|x|"}
    show({**base, "changed": 0, "unchanged_epochs": 2, "of_unchanged": 3})
    show({**base, "changed": 2, "unchanged_epochs": 0, "of_unchanged": 3})
    show({**base, "warmup": True, "changed": None, "unchanged_epochs": 0})
    first, second, third = out.getvalue().splitlines()
    assert "cell same 2/3" in first and "cell 2 changed" in second and "warm-up" in third


def test_the_stopping_rule_is_an_option_and_none_turns_it_off():
    from mnas.loop.gradient_study import _cell_config

    config, stored = _cell_config("darts", {"stop_unchanged": "None", "stop_entropy": 0.7}, 0)
    assert config.stop_unchanged is None and config.stop_entropy == 0.7 and stored["stop_unchanged"] is None
    assert _cell_config("gdas", {}, 0)[0].stop_unchanged == 3
    assert _cell_config("darts", {"recipe": "paper"}, 0)[0].stop_unchanged is None  # the papers run every epoch
