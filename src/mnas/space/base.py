"""`SearchSpace`: an ordered list of named categorical decisions, and tokens <-> `Arch`.

A token sequence has one integer per decision (an index into that decision's choices). Strategies
see only tokens and rewards, so any subclass — the MnasNet space or a user's own — works with every
strategy. Subclasses implement `decode` (and `encode` where an Arch determines its tokens).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mnas._util import as_rng
from mnas.space.arch import Arch

__all__ = ["Decision", "SearchSpace"]


@dataclass(frozen=True)
class Decision:
    """One categorical choice: a name and its options (any hashable, JSON-friendly values)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if not self.choices:
            raise ValueError(f"decision {self.name!r} has no choices")

    def __len__(self) -> int:
        return len(self.choices)


class SearchSpace:
    """Base class. Contract: `decisions` is fixed for the life of the space; `decode` is pure and
    deterministic and returns an `Arch` that builds and runs at the space's input size for every
    valid token sequence; `encode(decode(t))` returns a token sequence that decodes to the same Arch.
    """

    decisions: tuple[Decision, ...] = ()

    # -- what subclasses provide ------------------------------------------------------------
    def decode(self, tokens: Sequence[int]) -> Arch:
        raise NotImplementedError

    def encode(self, arch: Arch) -> list[int]:
        raise NotImplementedError(f"{type(self).__name__} cannot map an Arch back to tokens")

    # -- shared behaviour -------------------------------------------------------------------
    @property
    def num_choices(self) -> list[int]:
        return [len(d) for d in self.decisions]

    @property
    def size(self) -> int:
        """Number of distinct token sequences (the product of the decisions' sizes)."""
        return math.prod(self.num_choices)

    def check_tokens(self, tokens: Sequence[int]) -> list[int]:
        """Validate a token sequence; ValueError naming the bad position otherwise."""
        tokens = list(tokens)
        if len(tokens) != len(self.decisions):
            raise ValueError(f"expected {len(self.decisions)} tokens (one per decision), got {len(tokens)}")
        for i, (t, d) in enumerate(zip(tokens, self.decisions, strict=True)):
            if isinstance(t, (bool, np.bool_)) or not isinstance(t, (int, np.integer)) or not 0 <= t < len(d):
                raise ValueError(f"token {i} ({d.name}) = {t!r}: expected an integer in [0, {len(d) - 1}]")
        return [int(t) for t in tokens]

    def sample_tokens(self, rng: int | np.random.Generator | None = None) -> list[int]:
        rng = as_rng(rng)
        return [int(rng.integers(len(d))) for d in self.decisions]

    def sample(self, rng: int | np.random.Generator | None = None) -> Arch:
        """A uniformly random architecture (uniform over token sequences)."""
        return self.decode(self.sample_tokens(rng))

    def mutate_tokens(self, tokens: Sequence[int], rng: int | np.random.Generator | None = None) -> list[int]:
        """Change one decision, chosen uniformly among those with more than one choice."""
        rng = as_rng(rng)
        tokens = self.check_tokens(tokens)
        mutable = [i for i, d in enumerate(self.decisions) if len(d) > 1]
        if not mutable:
            return tokens
        i = mutable[int(rng.integers(len(mutable)))]
        new = int(rng.integers(len(self.decisions[i]) - 1))
        tokens[i] = new + (new >= tokens[i])
        return tokens

    def mutate(self, arch: Arch, rng: int | np.random.Generator | None = None) -> Arch:
        return self.decode(self.mutate_tokens(self.encode(arch), rng))

    def describe(self, tokens: Sequence[int]) -> dict[str, Any]:
        """Token sequence as {decision name: chosen value}."""
        tokens = self.check_tokens(tokens)
        return {d.name: d.choices[t] for d, t in zip(self.decisions, tokens, strict=True)}

    def settings(self) -> dict[str, Any]:
        """The constructor arguments that recreate this space (stored with a study)."""
        return {}
