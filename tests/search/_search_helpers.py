"""Module-level evaluators (picklable for process pools) and a kill-test driver."""

from __future__ import annotations

import sys

from mnas.space import Arch, BlockSpec, Decision, MnasNetSpace, SearchSpace
from mnas.strategies import SyntheticObjective

SPACE = MnasNetSpace(10, 224)
_OBJECTIVE = SyntheticObjective(SPACE, 0)


def synthetic(arch: Arch) -> dict:
    return _OBJECTIVE.evaluate(SPACE.encode(arch))


def slow(arch: Arch) -> dict:
    """The synthetic objective with a pause, so a kill can land while a trial runs."""
    import time

    time.sleep(0.02)
    return synthetic(arch)


def flaky(arch: Arch) -> dict:
    """Fails for every architecture whose first block is a regular conv."""
    if arch.blocks[0].op == "conv":
        raise RuntimeError("simulated out of memory")
    return synthetic(arch)


class TinySpace(SearchSpace):
    decisions = (Decision("depth", (1, 2, 3)), Decision("width", (8, 16)))

    def decode(self, tokens):
        depth, width = (d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens), strict=True))
        return Arch((BlockSpec("mbconv", depth, 3, 2, 3, 8, width),), stem_stride=1, head_chs=0, dropout=0.0)

    def settings(self):
        return {"tiny": True}


def tiny_eval(arch: Arch) -> dict:
    b = arch.blocks[0]
    return {"accuracy": 0.5 + 0.1 * b.repeats + 0.001 * b.out_chs, "latency_ms": 1.0 + b.repeats * b.out_chs / 16}


if __name__ == "__main__":  # driver for the kill test: python _search_helpers.py DB TRIALS
    from _search_helpers import slow as slow_by_module  # the same qualified callable the test resumes with

    from mnas.loop import Budget, search

    search(SPACE, evaluate=slow_by_module, target=20, strategy="ppo", budget=Budget(trials=int(sys.argv[2])),
           storage=sys.argv[1], seed=3)
