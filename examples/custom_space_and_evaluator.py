"""A user-defined search space and a user-defined evaluator in mnas's search.

The space: how deep and how wide a plain stack of MBConv stages is (12 members); `decode` must return
a `mnas.space.Arch` (a chain of MnasNet blocks). The evaluator: a stand-in for a tabular benchmark
(any `callable(arch) -> {"accuracy", "latency_ms", ...}` works, e.g. a lookup into NAS-Bench results
or your own training code), wrapped in a `UserEvaluator` that records on every trial where its
accuracy came from. Every strategy works on it, because strategies only see decisions and rewards.
Configuring the study (`create_study`) is separate from running it (`optimize`).

    python examples/custom_space_and_evaluator.py
"""

from __future__ import annotations

import mnas
from mnas.space import Arch, BlockSpec, Decision, SearchSpace


class StackSpace(SearchSpace):
    """Three stages of MBConv e6 k3; decide the depth of the network and the width of its stages."""

    decisions = (Decision("depth", (1, 2, 3, 4)), Decision("width", (16, 24, 32)))

    def decode(self, tokens):
        depth, width = (d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens), strict=True))
        blocks, in_chs = [], 16
        for stage in range(3):
            out = width * 2**stage
            blocks.append(BlockSpec("mbconv", depth, 3, 2 if stage else 1, 6, in_chs, out))
            in_chs = out
        return Arch(tuple(blocks), stem_stride=1, head_chs=0, dropout=0.0)

    def settings(self):
        return {"name": "stack"}


def tabular(arch: Arch) -> dict:
    """Made-up but plausible figures: deeper and wider is more accurate and slower."""
    depth, width = arch.blocks[0].repeats, arch.blocks[0].out_chs
    return {"accuracy": 0.80 + 0.03 * depth + 0.001 * width - 0.004 * depth**2,
            "latency_ms": 0.5 * depth * (width / 16) ** 1.5, "source": "table"}


def main() -> None:
    study = mnas.create_study(None, space=StackSpace(), reward=mnas.Reward.hard(target_ms=2.0), seed=0)  # in memory
    result = study.optimize(mnas.UserEvaluator(tabular, accuracy_source="table"), strategy="evolution",
                            budget=mnas.Budget(trials=12, max_repeats=20))
    print(f"{result.trials} trials: {result}")
    for trial in study.pareto_front():
        print(f"{trial.accuracy:.3f}  {trial.latency_ms:.2f} ms  {trial.arch}")
    best = study.best()  # under a hard reward the best trial always meets the target
    print("best under 2 ms:", best.arch, f"({best.accuracy:.3f}, accuracy from the {best.accuracy_source})")


if __name__ == "__main__":
    main()
