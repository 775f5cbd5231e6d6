"""Issue 13 item 21: `mnas train --recipe proxy` reproduces the search's proxy accuracy; thread defaults."""

from __future__ import annotations

import json
import os

import pytest

from mnas.cli import build_parser, main
from mnas.train.config import PROXY_VAL_FRACTION, auto_threads, recipe

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning"), pytest.mark.usefixtures("one_torch_thread")]

ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.1_relu"


def test_proxy_recipe_is_the_search_default():
    args = build_parser().parse_args(["search"])
    proxy = recipe("proxy")
    assert (proxy.epochs, proxy.batch_size, proxy.lr, proxy.threads) == (args.epochs, args.batch_size, args.lr,
                                                                          args.threads)
    assert PROXY_VAL_FRACTION == args.val_fraction
    assert recipe("proxy", batch_size=64).lr == args.lr  # the search's --lr is not scaled with the batch


def test_recipe_proxy_reproduces_the_search_worker(capsys):
    """The accuracy of `mnas train --recipe proxy --seed S` is the one the search's worker function
    records for the same architecture in a study seeded S."""
    pytest.importorskip("sklearn")
    from mnas.data import load
    from mnas.evaluate import train_candidate, trial_seed

    seed = 3
    args = build_parser().parse_args(["search", "--seed", str(seed), "--epochs", "0.5"])
    data = load("digits", val_fraction=args.val_fraction, seed=seed)
    config = recipe("proxy", epochs=0.5, seed=seed)
    expected = train_candidate(ARCH, data, config, trial_seed(seed, _canon(ARCH)))

    assert main(["train", ARCH, "--recipe", "proxy", "--seed", str(seed), "--epochs", "0.5", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["accuracy"] == expected["accuracy"] and got["training_seed"] == trial_seed(seed, _canon(ARCH))
    assert got["threads"] == 1
    # --proxy is the same run
    assert main(["train", ARCH, "--proxy", "--seed", str(seed), "--epochs", "0.5", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == expected["accuracy"]


def _canon(text: str) -> str:
    from mnas.space import as_arch

    return str(as_arch(text))


@pytest.mark.slow
def test_recipe_proxy_reproduces_a_real_search_trial(tmp_path, capsys):
    """End to end: a one-trial `mnas search`, then `mnas train --recipe proxy` of its architecture."""
    pytest.importorskip("sklearn")
    from mnas.study import SQLiteStorage, Study

    db = tmp_path / "s.db"
    rc = main(["search", "--trials", "1", "--epochs", "0.3", "--seed", "5", "--strategy", "random",
               "--backend", "torch", "--target", "5ms", "--storage", str(db), "--quiet", "--json"])
    assert rc == 0, capsys.readouterr().err
    capsys.readouterr()
    with Study(SQLiteStorage(str(db), read_only=True)) as study:
        trial = study.complete_trials[0]
    assert main(["train", trial.arch, "--recipe", "proxy", "--seed", "5", "--epochs", "0.3", "--json", "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out)["accuracy"] == trial.accuracy


def test_conflicting_recipes_are_refused(capsys):
    assert main(["train", ARCH, "--proxy", "--recipe", "fast"]) == 2
    assert "--proxy is --recipe proxy" in capsys.readouterr().err


def test_auto_threads_leaves_busy_cores_alone(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (7.6, 0, 0))
    assert auto_threads() == 1  # every core busy: one thread, not eight that wait for each other
    monkeypatch.setattr(os, "getloadavg", lambda: (2.2, 0, 0))
    assert auto_threads() == 4  # six idle, capped at 4
    monkeypatch.setattr(os, "getloadavg", lambda: (5.4, 0, 0))
    assert auto_threads() == 3
    monkeypatch.setattr(os, "getloadavg", lambda: (50.0, 0, 0))
    assert auto_threads() == 1


def test_full_training_uses_auto_threads_by_default(monkeypatch, tmp_path, capsys):
    pytest.importorskip("sklearn")
    import mnas.train.config as config

    monkeypatch.setattr(config, "auto_threads", lambda max_threads=4: 1)
    rc = main(["train", ARCH, "--epochs", "1", "--out", str(tmp_path), "--json", "--quiet"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["threads"] == 1
