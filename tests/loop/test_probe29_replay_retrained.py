"""A rebuilt strategy (its stored state cannot be loaded: `mnas.loop.api._replay`) is told the search's own
trials only, not the standalone retrainings `--retrain-top` added: those are on another scale (a full
training's top-1 against a supernet's inherited likelihood or accuracy), and the search loop never tells
them (its repeat detection answers from the earlier search trial). Before the fix the replay told them too,
so a retrained network looked far better than its search score to the rebuilt strategy."""

from __future__ import annotations

from test_replay_infos import KernelSpace, Recorder, kernel_eval

from mnas.loop import Budget, load_study, search
from mnas.objectives import Reward


def test_the_replay_skips_retrained_trials(tmp_path):
    space, db, reward = KernelSpace(), str(tmp_path / "s.db"), Reward.soft(2.0)
    search(space, evaluate=kernel_eval, reward=reward, strategy=Recorder(space, 1), budget=Budget(trials=4),
           storage=db, seed=1)
    study = load_study(db)
    src = study.get_trials("complete")[0]
    number = study.storage.create_trial(src.tokens, src.arch, extra={"accuracy_source": "standalone",
                                                                     "retrained_from": src.number})
    study.storage.complete_trial(number, 0.99, src.latency_ms, 0.99)  # as mnas.loop.retrain records one
    searched = [(list(t.tokens), t.reward) for t in study.get_trials(("complete", "failed"))
                if t.accuracy_source != "standalone"]
    study.close()

    rebuilt = Recorder(space, 1, refuse=True)
    search(space, evaluate=kernel_eval, reward=reward, strategy=rebuilt, budget=Budget(trials=5), storage=db, seed=1)
    assert [(tokens, r) for tokens, r, *_ in rebuilt.told[:len(searched)]] == searched
    assert 0.99 not in [r for _, r, *_ in rebuilt.told]
