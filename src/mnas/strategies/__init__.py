"""Layer 3: search strategies over the token sequences of any `mnas.space.SearchSpace`.

- "ppo": MnasNet's LSTM controller trained with PPO (the paper's choice);
- "reinforce": the same controller with plain REINFORCE;
- "evolution": regularized (aging) evolution (Real et al. 2019);
- "random": uniform random search.

`get_strategy(name, space, seed, **hyperparameters)` builds one. Importing this package does not
import torch; building a controller does.
"""

from __future__ import annotations

import inspect
from typing import Any

from mnas.space import SearchSpace
from mnas.strategies.base import Strategy
from mnas.strategies.controller import _KNOWN as _CONTROLLER_HYPERPARAMETERS
from mnas.strategies.controller import PPO, Controller, Reinforce
from mnas.strategies.evolution import RegularizedEvolution
from mnas.strategies.random_search import RandomSearch
from mnas.strategies.synthetic import SyntheticObjective

__all__ = ["PPO", "STRATEGIES", "Controller", "RandomSearch", "RegularizedEvolution", "Reinforce", "Strategy",
           "SyntheticObjective", "get_strategy", "strategy_hyperparameters"]

STRATEGIES: dict[str, type[Strategy]] = {"ppo": PPO, "reinforce": Reinforce, "evolution": RegularizedEvolution,
                                         "random": RandomSearch}


def strategy_hyperparameters(name: str) -> tuple[str, ...]:
    """The hyperparameter names `get_strategy(name, ...)` accepts."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    if issubclass(cls, Controller):
        return _CONTROLLER_HYPERPARAMETERS
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def get_strategy(name: str, space: SearchSpace, seed: int = 0, **hyperparameters: Any) -> Strategy:
    """A strategy by name: "ppo", "reinforce", "evolution" or "random"."""
    known = strategy_hyperparameters(name)
    unknown = sorted(set(hyperparameters) - set(known))
    if unknown:
        expected = f"expected some of {', '.join(known)}" if known else "it takes none"
        raise ValueError(f"strategy {name!r}: unknown hyperparameter {unknown[0]!r}: {expected}")
    return STRATEGIES[name](space, seed, **hyperparameters)
