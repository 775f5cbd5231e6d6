"""Random search: every proposal is uniform over token sequences, independent of the results."""

from __future__ import annotations

from typing import Any

from mnas.strategies.base import Strategy

__all__ = ["RandomSearch"]


class RandomSearch(Strategy):
    """Uniform sampling with replacement via `space.sample_tokens`. Results (and failures) are
    ignored, so its only state is its generator. The baseline every other strategy must beat."""

    name = "random"

    def _ask(self, n: int) -> list[list[int]]:
        return [self.space.sample_tokens(self.rng) for _ in range(n)]

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        pass

    def _state(self) -> dict[str, Any]:
        return {}
