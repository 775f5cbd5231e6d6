"""`Strategy`: the contract every search strategy implements, and shared helpers.

Contract (the shared suite in tests/strategies checks every implementation):
- A strategy sees tokens and rewards only; it uses `space.decisions`, `space.num_choices`,
  `space.sample_tokens(rng)` and `space.mutate_tokens(tokens, rng)` and never builds a model.
- `ask(n)` returns `n` valid token sequences. It may propose a sequence that was proposed before
  (the controller samples from a policy); drivers that want to avoid re-evaluating one can cache by
  architecture.
- `tell(tokens_list, rewards)` accepts results in any order and grouping, including sequences this
  instance never proposed (a resumed study replays its trials). A reward of `None` is a failed trial;
  each strategy documents what it does with one.
- All randomness comes from a generator owned by the strategy and seeded by `seed`: the same seed and
  the same sequence of ask/tell calls give the same proposals.
- `state_dict()` is a JSON-serialisable dict; `load_state_dict` on a strategy built with the same
  space and hyperparameters restores it exactly, so a resumed search continues identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mnas._util import as_rng
from mnas.space import SearchSpace

__all__ = ["Strategy", "rng_from_state", "rng_state"]

STATE_VERSION = 1


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A NumPy generator's state as JSON-safe values (128-bit integers as decimal strings)."""
    state = rng.bit_generator.state
    return {"bit_generator": state["bit_generator"],
            "state": {k: str(v) for k, v in state["state"].items()},
            "has_uint32": int(state["has_uint32"]), "uinteger": int(state["uinteger"])}


def rng_from_state(data: dict[str, Any]) -> np.random.Generator:
    """Inverse of `rng_state`."""
    if data.get("bit_generator") != "PCG64":
        raise ValueError(f"strategy state: unsupported random generator {data.get('bit_generator')!r}, expected PCG64")
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = {"bit_generator": "PCG64", "state": {k: int(v) for k, v in data["state"].items()},
                               "has_uint32": int(data["has_uint32"]), "uinteger": int(data["uinteger"])}
    return rng


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    return int(seed)


class Strategy:
    """Base class; see the module docstring for the contract. Subclasses set `name` and implement
    `_ask`, `_tell`, `_state` and `_load_state`."""

    name: ClassVar[str] = ""

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space: expected a mnas.space.SearchSpace, got {type(space).__name__}")
        if not space.decisions:
            raise ValueError("space has no decisions: a strategy needs at least one")
        self.space = space
        self.seed = check_seed(seed)
        self.rng = as_rng(self.seed)
        self.num_told = 0

    # -- public interface --------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[list[int]]:
        """`n` token sequences to evaluate next."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"ask(n={n!r}): expected a positive integer number of sequences")
        return [list(map(int, t)) for t in self._ask(int(n))]

    def tell(self, tokens_list: Sequence[Sequence[int]], rewards: Sequence[float | None]) -> None:
        """Report results: `rewards[i]` (a finite float, or None for a failed trial) for `tokens_list[i]`."""
        tokens_list, rewards = list(tokens_list), list(rewards)
        if len(tokens_list) != len(rewards):
            raise ValueError(f"tell: {len(tokens_list)} token sequences but {len(rewards)} rewards; give one each")
        checked = [self.space.check_tokens(t) for t in tokens_list]
        values: list[float | None] = []
        for i, r in enumerate(rewards):
            if r is None:
                values.append(None)
                continue
            if isinstance(r, bool) or not isinstance(r, (int, float, np.integer, np.floating)) or not math.isfinite(r):
                raise ValueError(f"tell: reward {i} = {r!r}: expected a finite number, or None for a failed trial")
            values.append(float(r))
        if checked:
            self._tell(checked, values)
            self.num_told += len(checked)

    def hyperparameters(self) -> dict[str, Any]:
        """The keyword arguments that recreate this strategy (besides space and seed)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly; JSON-serialisable."""
        return {"strategy": self.name, "version": STATE_VERSION, "seed": self.seed,
                "hyperparameters": self.hyperparameters(), "num_told": self.num_told,
                "num_decisions": len(self.space.decisions), "num_choices": self.space.num_choices,
                "rng": rng_state(self.rng), **self._state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output (also after a JSON round trip)."""
        if not isinstance(state, dict) or state.get("strategy") != self.name:
            got = state.get("strategy") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"strategy state is for {got!r}, not {self.name!r}: build the matching strategy")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"strategy state version {state.get('version')!r} is not supported "
                             f"(expected {STATE_VERSION})")
        if list(state.get("num_choices", [])) != self.space.num_choices:
            raise ValueError("strategy state was saved for a different space (decisions differ): use the study's space")
        if state.get("hyperparameters") != self.hyperparameters():
            raise ValueError(f"strategy state has hyperparameters {state.get('hyperparameters')}, this strategy "
                             f"{self.hyperparameters()}: build it with the stored ones")
        self.seed = int(state["seed"])
        self.num_told = int(state["num_told"])
        self.rng = rng_from_state(state["rng"])
        self._load_state(state)

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}(seed={self.seed}{', ' if hp else ''}{hp})"

    # -- what subclasses provide ---------------------------------------------------------------
    def _ask(self, n: int) -> list[list[int]]:
        raise NotImplementedError

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None]) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        pass
