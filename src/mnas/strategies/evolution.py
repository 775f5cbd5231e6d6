"""Regularized (aging) evolution (Real et al., "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019).

Until `population_size` results have come back, proposals are uniform random. After that each
proposal is a mutation (`space.mutate_tokens`) of a tournament winner: `sample_size` members drawn
without replacement from the population, the one with the highest reward wins. Every told result
joins the population (a deque) and pushes out the *oldest* member, not the worst: aging is the
regularisation that the paper credits for its robustness.

Constraints (feasibility-first tournaments, Deb's rules): with `infos` that carry `feasible` /
`violation` (a hard latency target, or limits on parameters, MACs or memory), a feasible member beats
an infeasible one, among infeasible members the smaller violation wins, and among feasible ones the
higher reward. Without infos every member is feasible and the tournament is the paper's.

De-duplication: a proposal that was already proposed or told is redrawn, at most `max_retries` times
(then it is returned anyway, which only happens once a small space is nearly exhausted).
A failed trial (reward None) is skipped: it does not join the population, but it still counts as
seen, so it is not proposed again.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from mnas.strategies.base import Strategy

__all__ = ["RegularizedEvolution"]


def _rank(member: tuple[list[int], float, float]) -> tuple[bool, float, float]:
    """Tournament order: feasible first, then the smaller violation, then the higher reward."""
    _, reward, violation = member
    return violation == 0.0, -violation, reward


class RegularizedEvolution(Strategy):
    """`RegularizedEvolution(space, seed, population_size=20, sample_size=5, max_retries=20)`.

    Defaults: the paper uses P=100, S=25 for budgets of 20,000 models; searches here are hundreds of
    trials. On benchmarks/search.py (3 seeds, best reward after 200 / 1,000 trials) P=20, S=5 gave
    0.895 / 0.919, P=50, S=10 0.891 / 0.923, P=10, S=3 0.878 / 0.914: P=20 is the choice for a few
    hundred trials; raise it for longer searches.
    """

    name = "evolution"

    def __init__(self, space, seed: int = 0, *, population_size: int = 20, sample_size: int = 5,
                 max_retries: int = 20) -> None:
        super().__init__(space, seed)
        for key, value, low in (("population_size", population_size, 2), ("sample_size", sample_size, 1),
                                ("max_retries", max_retries, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"evolution: {key}={value!r}: expected an integer >= {low}")
        if sample_size > population_size:
            raise ValueError(f"evolution: sample_size={sample_size} exceeds population_size={population_size}; "
                             "the tournament draws from the population")
        self.population_size, self.sample_size, self.max_retries = population_size, sample_size, max_retries
        # (tokens, reward, violation); violation 0.0 = feasible
        self.population: deque[tuple[list[int], float, float]] = deque(maxlen=population_size)
        self.seen: set[tuple[int, ...]] = set()

    def hyperparameters(self) -> dict[str, Any]:
        return {"population_size": self.population_size, "sample_size": self.sample_size,
                "max_retries": self.max_retries}

    def _propose(self) -> list[int]:
        if len(self.population) < self.population_size:
            return self.space.sample_tokens(self.rng)
        picks = self.rng.choice(len(self.population), size=self.sample_size, replace=False)
        # Ties go to the earliest drawn: deterministic for a seed.
        parent = max((self.population[int(i)] for i in picks), key=_rank)[0]
        return self.space.mutate_tokens(parent, self.rng)

    def _ask(self, n: int) -> list[list[int]]:
        out = []
        for _ in range(n):
            child = self._propose()
            for _ in range(self.max_retries):
                if tuple(child) not in self.seen:
                    break
                child = self._propose()
            self.seen.add(tuple(child))
            out.append(child)
        return out

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        for tokens, reward, info in zip(tokens_list, rewards, infos, strict=True):
            self.seen.add(tuple(tokens))
            if reward is not None:
                self.population.append((tokens, reward, info["violation"]))  # the deque drops the oldest

    def best(self) -> tuple[list[int], float] | None:
        """The best member of the current population (not of all history): feasible first."""
        return tuple(max(self.population, key=_rank)[:2]) if self.population else None

    def _state(self) -> dict[str, Any]:
        return {"population": [[list(t), r, v] for t, r, v in self.population],
                "seen": sorted(list(t) for t in self.seen)}

    def _load_state(self, state: dict[str, Any]) -> None:
        # States saved before constraints hold [tokens, reward]: those members were all feasible.
        self.population = deque(((list(map(int, m[0])), float(m[1]), float(m[2]) if len(m) > 2 else 0.0)
                                 for m in state["population"]), maxlen=self.population_size)
        self.seen = {tuple(map(int, t)) for t in state["seen"]}
