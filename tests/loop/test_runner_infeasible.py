"""The study's hard limits are checked before the latency measurement: an infeasible candidate costs
no measurement and no training (issue 9 item 5; before the fix every candidate was measured first)."""

from __future__ import annotations

from mnas.evaluate import Evaluator
from mnas.loop import Budget, search
from mnas.models.profile import arch_profile
from mnas.objectives import Constraints, Reward
from mnas.space import Arch, BlockSpec, Decision, SearchSpace


class _Space(SearchSpace):
    decisions = (Decision("depth", (1, 2)), Decision("width", (8, 64)))

    def decode(self, tokens):
        depth, width = (d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens), strict=True))
        return Arch((BlockSpec("mbconv", depth, 3, 2, 3, 8, width),), stem_stride=1, head_chs=0, dropout=0.0)

    def settings(self):
        return {"runner-infeasible": True}


def _job(arch: str) -> dict:
    return {"accuracy": 0.5 + len(arch) % 7 / 100}


class CountingEvaluator(Evaluator):
    """Latency measured in the driver, as on a device: every call is counted."""

    accuracy_source = "fake"
    latency_in_driver = True

    def __init__(self) -> None:
        self.measured: list[str] = []
        self.jobs: list[str] = []

    def measure_latency(self, arch):
        self.measured.append(str(arch))
        return 1.0 + arch.blocks[0].out_chs / 64, 0.0, {}

    def job(self, arch, seed):
        self.jobs.append(str(arch))
        return _job, (str(arch),)


def test_an_infeasible_candidate_is_never_measured_nor_trained():
    space = _Space()
    narrow = arch_profile(space.decode([1, 0]), 224, 1000).params
    wide = arch_profile(space.decode([0, 1]), 224, 1000).params
    assert narrow < wide
    limit = Constraints(max_params=(narrow + wide) / 2)  # width 64 breaks it at either depth
    ev = CountingEvaluator()
    study = search(space, evaluate=ev, reward=Reward.soft(2.0), strategy="random", budget=Budget(trials=4),
                   seed=0, constraints=limit)
    failed, complete = study.get_trials("failed"), study.get_trials("complete")
    assert len(failed) == 2 and len(complete) == 2  # the space has 4 networks, 2 of them wide
    assert all(t.failure.startswith("infeasible: params") for t in failed)
    assert all("o64" not in a for a in ev.measured), ev.measured  # zero measurements of an infeasible candidate
    assert len(ev.measured) == 2
    assert all(t.latency_ms is None and t.params > limit.max_params for t in failed)
    assert all(t.extra.get("seed") is not None for t in failed)  # recorded as before
    assert all(t.latency_ms is not None and t.params <= limit.max_params for t in complete)
