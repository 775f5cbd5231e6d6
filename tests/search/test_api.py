"""The public API: create_study / optimize / load_study, and studies made before it still resume."""

import sqlite3
import sys
from pathlib import Path

import pytest

import mnas
from mnas.loop import Budget, SearchStudy, create_study, load_study, search
from mnas.objectives import Reward
from mnas.study import Study

sys.path.insert(0, str(Path(__file__).parent))
from _search_helpers import SPACE, TinySpace, synthetic, tiny_eval  # noqa: E402

OLD_STUDY = Path(__file__).parent / "data" / "study_0_1_0.sql"


def _old_study(tmp_path) -> Path:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(OLD_STUDY.read_text())
    return db


def test_create_optimize_load(tmp_path):
    db = tmp_path / "s.db"
    study = mnas.create_study(db, space=SPACE, reward=mnas.Reward.soft(target_ms=20), seed=1)
    assert isinstance(study, SearchStudy) and len(study) == 0
    result = study.optimize(synthetic, strategy="evolution", budget=mnas.Budget(trials=4))
    assert result.trials == 4 and result.complete == 4 and not result.early
    assert all(t.accuracy_source == "user" for t in study.trials)
    again = mnas.load_study(db)  # the space is rebuilt from its stored class and settings
    assert again.space.settings() == SPACE.settings() and again.reward == Reward.soft(20) and again.seed == 1
    again.optimize(synthetic, strategy="evolution", budget=mnas.Budget(trials=6))
    assert len(again.trials) == 6
    fresh = search(SPACE, evaluate=synthetic, target=20, strategy="evolution", budget=Budget(trials=6), seed=1)
    assert [t.arch for t in fresh.trials] == [t.arch for t in again.trials]  # split runs = one run


def test_create_and_load_refuse_what_does_not_match(tmp_path):
    db = tmp_path / "s.db"
    create_study(db, space=SPACE, reward=Reward.soft(20)).optimize(synthetic, strategy="random", budget=Budget(trials=1))
    with pytest.raises(ValueError, match="already holds a study"):
        create_study(db, space=SPACE, reward=Reward.soft(20))
    with pytest.raises(ValueError, match="different reward"):
        create_study(db, space=SPACE, reward=Reward.hard(20), load_if_exists=True)
    assert create_study(db, space=SPACE, reward=Reward.soft(20), load_if_exists=True).seed == 0
    with pytest.raises(ValueError, match="different strategy"):
        load_study(db).optimize(synthetic, strategy="evolution", budget=Budget(trials=2))
    with pytest.raises(ValueError, match="not this study's"):
        load_study(db, space=TinySpace())
    with pytest.raises(ValueError, match="no study in"):
        load_study(tmp_path / "nothing.db")
    with pytest.raises(ValueError, match="mnas.Reward"):
        create_study(None, space=SPACE, reward=20)


def test_a_user_space_is_given_back_when_loading(tmp_path):
    db = tmp_path / "t.db"
    create_study(db, space=TinySpace(), reward=Reward.soft(2.0)).optimize(tiny_eval, strategy="random",
                                                                          budget=Budget(trials=2))
    study = load_study(db)  # TinySpace lives in a test module: rebuilt here, since it is importable
    study = load_study(db, space=TinySpace())
    assert study.optimize(tiny_eval, strategy="random", budget=Budget(trials=3)).trials == 3


def test_a_study_made_by_mnas_0_1_0_opens_and_resumes(tmp_path):
    db = _old_study(tmp_path)
    before = Study(db).trials
    assert len(before) == 6 and all(t.accuracy_source is None for t in before)
    study = load_study(db)
    assert study.reward == Reward.soft(20.0) and study.space.settings() == SPACE.settings()
    result = study.optimize(synthetic, strategy="evolution")  # the stored budget: already complete
    assert result.stop == "complete"
    result = study.optimize(synthetic, strategy="evolution", budget=Budget(trials=9))
    assert result.trials == 9 and result.new_trials == 3
    assert study.trials[:6] == before
    assert all(t.accuracy_source == "user" for t in study.trials[6:])
    # the one-call form resumes it too
    assert len(search(SPACE, evaluate=synthetic, target=20, strategy="evolution", budget=Budget(trials=10),
                      storage=str(db)).trials) == 10


def test_the_read_api_still_reads_a_search_study(tmp_path):
    study = search(TinySpace(), evaluate=tiny_eval, target=2.0, strategy="random", budget=Budget(trials=3))
    summary = study.summary()
    assert summary["n_trials"] == 3 and "best_is_feasible_only" in summary
    assert study.best() is not None and study.pareto_front()
