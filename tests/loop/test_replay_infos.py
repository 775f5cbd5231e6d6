"""Issue 22 part 1, the replay path: when a stored strategy state cannot be loaded, the strategy is rebuilt
by telling it the study's finished trials (`mnas.loop.api._replay`). It must be told what the search loop
tells (`strategy_infos`): no violation of a soft reward's target, the study's limits as constraints, and
the study's latency limit (`set_latency_limit`) before the first replayed result. Before the fix the
replay treated any target as a constraint and ignored the limits."""

from __future__ import annotations

import pytest

from mnas.loop import Budget, load_study, search
from mnas.loop.runner import strategy_infos
from mnas.objectives import Constraints, Reward
from mnas.space import Arch, BlockSpec, Decision, SearchSpace
from mnas.strategies.random_search import RandomSearch

KEYS = ("accuracy", "latency_ms", "params", "macs", "feasible", "violation")


class KernelSpace(SearchSpace):
    """Six layers, each a 1x1 or a 3x3 conv or a depthwise-separable one (729 networks: few repeats)."""

    decisions = tuple(Decision(f"layer{i}", ("conv1x1", "conv3x3", "ds3x3")) for i in range(6))

    def decode(self, tokens):
        ops = (("conv", 1), ("conv", 3), ("ds", 3))
        blocks = [BlockSpec(ops[t][0], 1, ops[t][1], 1, 1, 8, 8) for t in self.check_tokens(tokens)]
        return Arch(tuple(blocks), stem_stride=1, head_chs=0, dropout=0.0)

    def settings(self):
        return {"replay-test": True}


def kernel_eval(arch: Arch) -> dict:
    """Accuracy and latency (ms) both grow with the number of 3x3 convs."""
    k3 = sum(b.op == "conv" and b.kernel_size == 3 for b in arch.blocks)
    ds = sum(b.op == "ds" for b in arch.blocks)
    return {"accuracy": 0.5 + 0.05 * k3 + 0.01 * ds, "latency_ms": 1.0 + 0.5 * k3 + 0.1 * ds}


class Recorder(RandomSearch):
    """Random search that records what it is told, with the latency limit in force at the time; with
    `refuse=True` its stored state "cannot be loaded" (as a controller state from an older mnas)."""

    name = "recorder"

    def __init__(self, space, seed=0, refuse=False):
        super().__init__(space, seed)
        self.refuse, self.told = refuse, []

    def _tell(self, tokens_list, rewards, infos):
        for t, r, i in zip(tokens_list, rewards, infos, strict=True):
            self.told.append((list(t), r, dict(i), self.latency_limit_ms))

    def load_state_dict(self, state):
        if self.refuse:
            raise ValueError("strategy state from an older mnas")
        super().load_state_dict(state)


@pytest.mark.parametrize("reward, limits, limit_ms", [
    (Reward.soft(2.0), None, None),  # a soft target: every replayed trial is feasible
    (Reward.soft(3.0), Constraints(max_latency_ms=2.0), 2.0),  # the study's limit is the constraint
    (Reward.hard(3.0), Constraints(max_latency_ms=2.5), 2.5),  # both: the smaller limit, both violations
])
def test_a_rebuilt_strategy_is_told_what_the_loop_tells(tmp_path, reward, limits, limit_ms):
    space, db = KernelSpace(), str(tmp_path / "s.db")
    search(space, evaluate=kernel_eval, reward=reward, strategy=Recorder(space, 1), budget=Budget(trials=6),
           storage=db, seed=1, constraints=limits)
    study = load_study(db)
    finished = study.get_trials(("complete", "failed"))
    study.close()
    # trials over the soft target (the defect's case), and over the limit
    assert any(t.latency_ms > min(reward.target_ms, limit_ms or reward.target_ms) for t in finished)

    rebuilt = Recorder(space, 1, refuse=True)
    search(space, evaluate=kernel_eval, reward=reward, strategy=rebuilt, budget=Budget(trials=7), storage=db, seed=1,
           constraints=limits)
    replayed = rebuilt.told[:len(finished)]
    assert [tokens for tokens, *_ in replayed] == [list(t.tokens) for t in finished]
    for (_, value, info, limit_then), t in zip(replayed, finished, strict=True):
        expected = strategy_infos(reward, limits, t.accuracy, t.latency_ms, t.params, t.macs)
        assert value == t.reward
        assert {k: info.get(k) for k in KEYS} == {k: expected[k] for k in KEYS}, t.arch
        assert limit_then == limit_ms  # the study's latency limit was set before the replay told anything
    if limits is None:
        assert all(info["feasible"] and info["violation"] == 0.0 for _, _, info, _ in replayed)
    else:
        assert any(not info["feasible"] for _, _, info, _ in replayed)


def test_a_rebuilt_strategy_saves_its_state_after_repeats(tmp_path):
    """Nine networks, eight trials' worth of proposals: the loop told the strategy repeats from the study,
    which the stored n_told counts and the replay does not tell again. The rebuilt strategy's state is
    still saved (before: 'strategy state for n_told=... is older than the stored one')."""
    db = str(tmp_path / "r.db")
    space = type("SmallSpace", (KernelSpace,), {"decisions": KernelSpace.decisions[:2],
                                                "settings": lambda self: {"small": True}})()
    search(space, evaluate=kernel_eval, reward=Reward.soft(2.0), strategy=Recorder(space, 1), budget=Budget(trials=8),
           storage=db, seed=1)
    study = load_study(db)
    _, n_told = study.storage.load_strategy_state()
    finished = len(study.get_trials(("complete", "failed")))
    study.close()
    assert n_told > finished  # repeats were told
    rebuilt = Recorder(space, 1, refuse=True)
    resumed = search(space, evaluate=kernel_eval, reward=Reward.soft(2.0), strategy=rebuilt, budget=Budget(trials=9),
                     storage=db, seed=1)
    assert len(resumed.get_trials(("complete", "failed"))) == 9 and resumed.last_run.stop in ("trials", "exhausted")
