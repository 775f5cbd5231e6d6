"""Layer 3: search strategies over the token sequences of any `mnas.space.SearchSpace`.

- "ppo": MnasNet's LSTM controller trained with PPO (the paper's choice);
- "reinforce": the same controller with plain REINFORCE;
- "evolution": regularized (aging) evolution (Real et al. 2019);
- "random": uniform random search;
- "replay": the same controller fitted to the best of the study's whole history (sample-efficient);
- "predictor": an MLP-ensemble surrogate picks among many mutated and sampled candidates (BANANAS-style);
- "boundary": under a hard latency limit, only candidates predicted in [0.9 T, T], ranked by a ridge
  surrogate of the told reward (without a limit: a greedy search on that surrogate);
- "tpe", "gp": Optuna's TPE and Gaussian-process samplers; "nsga2": Optuna's NSGA-II over accuracy and
  latency (the whole front). These need the optional extra: pip install 'mnas[optuna]'.

`get_strategy(name, space, seed, **hyperparameters)` builds one. Importing this package does not
import torch; building a controller does.
"""

from __future__ import annotations

import inspect
from typing import Any

from mnas.space import SearchSpace
from mnas.strategies.base import Strategy
from mnas.strategies.boundary import BoundarySearch
from mnas.strategies.controller import PPO, Controller, Reinforce
from mnas.strategies.evolution import RegularizedEvolution
from mnas.strategies.optuna_samplers import GPStrategy, NSGA2Strategy, TPEStrategy
from mnas.strategies.predictor import PredictorGuided
from mnas.strategies.random_search import RandomSearch
from mnas.strategies.replay import ReplayController
from mnas.strategies.synthetic import SyntheticObjective

__all__ = ["MULTI_OBJECTIVE", "PPO", "STRATEGIES", "BoundarySearch", "Controller", "GPStrategy", "NSGA2Strategy",
           "PredictorGuided",
           "RandomSearch", "RegularizedEvolution", "Reinforce", "ReplayController", "Strategy", "SyntheticObjective",
           "TPEStrategy", "get_strategy", "strategy_hyperparameters"]

STRATEGIES: dict[str, type[Strategy]] = {"ppo": PPO, "reinforce": Reinforce, "evolution": RegularizedEvolution,
                                         "random": RandomSearch, "replay": ReplayController,
                                         "predictor": PredictorGuided, "tpe": TPEStrategy, "nsga2": NSGA2Strategy,
                                         "gp": GPStrategy, "boundary": BoundarySearch}
# Strategies whose `tell` needs infos with accuracy and latency_ms (they search the front, not a reward).
MULTI_OBJECTIVE = ("nsga2",)


def strategy_hyperparameters(name: str) -> tuple[str, ...]:
    """The hyperparameter names `get_strategy(name, ...)` accepts."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}: expected one of {', '.join(STRATEGIES)}")
    cls = STRATEGIES[name]
    if hasattr(cls, "HYPERPARAMETERS"):
        return tuple(cls.HYPERPARAMETERS)
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY)


def get_strategy(name: str, space: SearchSpace, seed: int = 0, **hyperparameters: Any) -> Strategy:
    """A strategy by name (a key of STRATEGIES)."""
    known = strategy_hyperparameters(name)
    unknown = sorted(set(hyperparameters) - set(known))
    if unknown:
        expected = f"expected some of {', '.join(known)}" if known else "it takes none"
        raise ValueError(f"strategy {name!r}: unknown hyperparameter {unknown[0]!r}: {expected}")
    return STRATEGIES[name](space, seed, **hyperparameters)
