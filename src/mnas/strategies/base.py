"""`Strategy`: the contract every search strategy implements, and shared helpers.

Contract (the shared suite in tests/strategies checks every implementation):
- A strategy sees tokens and rewards only; it uses `space.decisions`, `space.num_choices`,
  `space.sample_tokens(rng)` and `space.mutate_tokens(tokens, rng)` and never builds a model.
- `ask(n)` returns `n` valid token sequences. It may propose a sequence that was proposed before
  (the controller samples from a policy); drivers that want to avoid re-evaluating one can cache by
  architecture.
- `tell(tokens_list, rewards, infos=None)` accepts results in any order and grouping, including
  sequences this instance never proposed (a resumed study replays its trials). A reward of `None` is a
  failed trial; each strategy documents what it does with one. `infos[i]` (optional) is a dict with any
  of `accuracy`, `latency_ms`, `params`, `macs`, `peak_memory` (numbers), `feasible` (bool) and
  `violation` (float >= 0, 0 = feasible; see `mnas.objectives.Constraints`); other keys are ignored.
  Strategies that handle constraints read feasibility from there; a missing `feasible` is derived from
  `violation` and vice versa (an infeasible trial of unknown violation counts as violation 1.0), and a
  trial told without either is feasible. `violation` is the excess over *hard* constraints only: the
  target of a hard reward and hard limits (the search loop's `mnas.loop.runner.strategy_infos`). A soft
  reward's target is part of the reward: the loop tells such trials feasible, and a strategy that ranks
  feasible candidates first then simply optimises the reward (issue 22). Strategies never see the reward
  itself, only its values: what is a constraint is the caller's decision, made once, in the loop.
- `set_latency_limit(ms)`: the latency no candidate may exceed (a hard target or a `max_latency_ms`
  limit; None: latency is only rewarded). The loop calls it before every run; it is the study's setting,
  not a hyperparameter, and not part of the state. Strategies may use it to model latency (the
  predictor does); told violations are the constraint either way.
- All randomness comes from a generator owned by the strategy and seeded by `seed`: the same seed and
  the same sequence of ask/tell calls give the same proposals.
- `state_dict()` is a JSON-serialisable dict; `load_state_dict` on a strategy built with the same
  space and hyperparameters restores it exactly, so a resumed search continues identically.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mnas._util import as_rng
from mnas.space import SearchSpace

__all__ = ["INFO_KEYS", "Strategy", "check_infos", "rng_from_state", "rng_state"]

INFO_KEYS = ("accuracy", "latency_ms", "params", "macs", "peak_memory", "feasible", "violation")
_NUMERIC_INFO = ("accuracy", "latency_ms", "params", "macs", "peak_memory")

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


def _number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) \
        and math.isfinite(value)


def check_infos(infos: Sequence[Any] | None, n: int) -> list[dict[str, Any]]:
    """`n` normalised info dicts (known keys only, `feasible` and `violation` always present)."""
    if infos is None:
        return [{"feasible": True, "violation": 0.0} for _ in range(n)]
    infos = list(infos)
    if len(infos) != n:
        raise ValueError(f"tell: {n} token sequences but {len(infos)} infos; give one each (or None)")
    out = []
    for i, info in enumerate(infos):
        if info is None:
            info = {}
        if not isinstance(info, dict):
            raise ValueError(f"tell: info {i} = {info!r}: expected a dict (or None)")
        clean: dict[str, Any] = {}
        for key in _NUMERIC_INFO:
            value = info.get(key)
            if value is None:
                continue
            if not _number(value):
                raise ValueError(f"tell: info {i}: {key}={value!r}: expected a finite number")
            clean[key] = float(value)
        feasible, violation = info.get("feasible"), info.get("violation")
        if feasible is not None and not isinstance(feasible, (bool, np.bool_)):
            raise ValueError(f"tell: info {i}: feasible={feasible!r}: expected True or False")
        if violation is not None and not (_number(violation) and violation >= 0):
            raise ValueError(f"tell: info {i}: violation={violation!r}: expected a finite number >= 0 (0 = feasible)")
        if feasible is None:
            feasible = violation is None or violation == 0
        if violation is None:
            violation = 0.0 if feasible else 1.0
        if bool(feasible) != (violation == 0):
            raise ValueError(f"tell: info {i}: feasible={feasible!r} contradicts violation={violation!r}")
        clean["feasible"], clean["violation"] = bool(feasible), float(violation)
        out.append(clean)
    return out


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r}: expected a non-negative integer")
    return int(seed)


class Strategy:
    """Base class; see the module docstring for the contract. Subclasses set `name` and implement
    `_ask`, `_tell`, `_state` and `_load_state`."""

    name: ClassVar[str] = ""
    # Set by __init_subclass__: whether this class's `_tell` takes the infos (older subclasses do not).
    _tell_takes_infos: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_tell" in cls.__dict__:
            cls._tell_takes_infos = len(inspect.signature(cls.__dict__["_tell"]).parameters) >= 4

    def __init__(self, space: SearchSpace, seed: int = 0) -> None:
        if not isinstance(space, SearchSpace):
            raise ValueError(f"space: expected a mnas.space.SearchSpace, got {type(space).__name__}")
        if not space.decisions:
            raise ValueError("space has no decisions: a strategy needs at least one")
        self.space = space
        self.seed = check_seed(seed)
        self.rng = as_rng(self.seed)
        self.num_told = 0
        self.latency_limit_ms: float | None = None  # set by the search loop (`set_latency_limit`)

    # -- public interface --------------------------------------------------------------------
    def ask(self, n: int = 1) -> list[list[int]]:
        """`n` token sequences to evaluate next."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"ask(n={n!r}): expected a positive integer number of sequences")
        return [list(map(int, t)) for t in self._ask(int(n))]

    def tell(self, tokens_list: Sequence[Sequence[int]], rewards: Sequence[float | None], *,
             infos: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Report results: `rewards[i]` (a finite float, or None for a failed trial) for `tokens_list[i]`,
        with optional `infos[i]` (metrics and feasibility; see the module docstring)."""
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
        checked_infos = check_infos(infos, len(checked))
        if checked:
            if self._tell_takes_infos:
                self._tell(checked, values, checked_infos)
            else:
                self._tell(checked, values)
            self.num_told += len(checked)

    def set_latency_limit(self, limit_ms: float | None) -> None:
        """The latency (ms) no candidate may exceed, from the study (a hard reward's target or a
        `max_latency_ms` limit), or None when latency is only part of the reward. Not stored in the state."""
        if limit_ms is not None and (isinstance(limit_ms, bool) or not isinstance(limit_ms, (int, float, np.floating))
                                     or not (math.isfinite(limit_ms) and limit_ms > 0)):
            raise ValueError(f"{self.name or type(self).__name__}: latency limit {limit_ms!r}: expected a latency "
                             "> 0 ms, or None for no limit")
        self.latency_limit_ms = None if limit_ms is None else float(limit_ms)

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

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:
        return {}

    def _load_state(self, state: dict[str, Any]) -> None:
        pass
