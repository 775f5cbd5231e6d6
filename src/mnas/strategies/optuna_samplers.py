"""Optuna's samplers as strategies (the optional `optuna` extra): "tpe", "nsga2", "gp".

Each decision is one categorical parameter (its choice index); the strategy drives an in-memory Optuna
study through ask-and-tell:
- "tpe": `TPESampler` with Optuna's defaults (what a user would pick), maximising the reward, with the
  told `violation` as `constraints_func` (a hard target or limits are constraints, not penalties);
- "nsga2": `NSGAIISampler`, a true two-objective search of the accuracy/latency front: it maximises
  `infos["accuracy"]` and minimises `infos["latency_ms"]` (the reward is ignored), with constraints;
- "gp": `GPSampler` (Gaussian process; Optuna imports torch and scipy for it), with constraints.

Determinism and resume: a fresh sampler is built for every ask, seeded from the strategy's own
generator, so the proposals depend only on the seed and the study's trials. `state_dict()` stores
every trial of the Optuna study (parameters, state, values, constraint, Optuna's system attributes such
as NSGA-II's generation) and `load_state_dict` replays them into a fresh study: resume is exact.
Results for sequences this instance never asked (a resumed study, other workers) become added trials.
A failed trial (reward None) is a FAIL trial. Optuna is imported lazily, with an error naming the extra.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

from mnas.strategies.base import Strategy

__all__ = ["GPStrategy", "NSGA2Strategy", "OptunaStrategy", "TPEStrategy"]


def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise ImportError("the Optuna strategies need the optional package 'optuna': pip install 'mnas[optuna]'") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial otherwise
    return optuna


def _constraints(trial) -> list[float]:
    return [float(trial.user_attrs.get("violation", 0.0))]


class OptunaStrategy(Strategy):
    """Base of the Optuna strategies; subclasses set `name`, `directions` and `_sampler(seed)`."""

    name = "optuna"
    directions: tuple[str, ...] = ("maximize",)
    HYPERPARAMETERS: tuple[str, ...] = ("n_startup_trials",)

    def __init__(self, space, seed: int = 0, *, n_startup_trials: int = 10) -> None:
        super().__init__(space, seed)
        if isinstance(n_startup_trials, bool) or not isinstance(n_startup_trials, int) or n_startup_trials < 0:
            raise ValueError(f"{self.name}: n_startup_trials={n_startup_trials!r}: expected an integer >= 0")
        self.n_startup_trials = n_startup_trials
        self.optuna = _optuna()
        dist = self.optuna.distributions.CategoricalDistribution
        self._names = [f"{i}:{d.name}" for i, d in enumerate(space.decisions)]
        self._dists = {name: dist(list(range(k))) for name, k in zip(self._names, space.num_choices, strict=True)}
        self._new_study()

    def _new_study(self) -> None:
        self.study = self.optuna.create_study(directions=list(self.directions),
                                              sampler=self.optuna.samplers.RandomSampler(seed=0))
        self.pending: dict[tuple[int, ...], list[int]] = {}  # asked, not yet told: tokens -> trial numbers

    def hyperparameters(self) -> dict[str, Any]:
        return {"n_startup_trials": self.n_startup_trials}

    def _sampler(self, seed: int):
        raise NotImplementedError

    def _ask(self, n: int) -> list[list[int]]:
        out = []
        with warnings.catch_warnings():
            # Optuna 5 deprecates constraints_func for Trial.set_constraint, which Optuna 3.5 lacks; and its
            # ExperimentalWarning / independent-sampling notes are not for mnas users.
            warnings.simplefilter("ignore")
            self.study.sampler = self._sampler(int(self.rng.integers(2 ** 31)))
            for _ in range(n):
                trial = self.study.ask(self._dists)
                tokens = [int(trial.params[name]) for name in self._names]
                self.pending.setdefault(tuple(tokens), []).append(trial.number)
                out.append(tokens)
        return out

    def _values(self, reward: float, info: dict[str, Any]) -> list[float]:
        return [reward]

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        state = self.optuna.trial.TrialState
        for tokens, reward, info in zip(tokens_list, rewards, infos, strict=True):
            values = None if reward is None else self._values(reward, info)
            numbers = self.pending.get(tuple(tokens))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if numbers:
                    number = numbers.pop(0)
                    if not numbers:
                        del self.pending[tuple(tokens)]
                    self.study._storage.set_trial_user_attr(self.study._storage.get_trial_id_from_study_id_trial_number(
                        self.study._study_id, number), "violation", info["violation"])
                    if values is None:
                        self.study.tell(number, state=state.FAIL)
                    else:
                        self.study.tell(number, values)
                else:  # never asked here: a replayed or foreign result
                    params = {name: int(t) for name, t in zip(self._names, tokens, strict=True)}
                    self.study.add_trial(self.optuna.trial.create_trial(
                        state=state.FAIL if values is None else state.COMPLETE, values=values, params=params,
                        distributions=self._dists, user_attrs={"violation": info["violation"]},
                        system_attrs={"constraints": [info["violation"]]}))

    # -- state -------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        trials = []
        for t in self.study.get_trials(deepcopy=False):
            trials.append({"params": [int(t.params[name]) for name in self._names], "state": t.state.name,
                           "values": None if t.values is None else [float(v) for v in t.values],
                           "user_attrs": dict(t.user_attrs), "system_attrs": json.loads(json.dumps(t.system_attrs))})
        # NSGA-II caches its population in the study's system attributes: keep them too.
        study_attrs = json.loads(json.dumps(self.study._storage.get_study_system_attrs(self.study._study_id)))
        return {"trials": trials, "pending": [[list(k), v] for k, v in sorted(self.pending.items())],
                "study_system_attrs": study_attrs}

    def _load_state(self, state: dict[str, Any]) -> None:
        self._new_study()
        states = self.optuna.trial.TrialState
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for t in state["trials"]:
                params = {name: int(v) for name, v in zip(self._names, t["params"], strict=True)}
                self.study.add_trial(self.optuna.trial.create_trial(
                    state=states[t["state"]], values=t["values"], params=params, distributions=self._dists,
                    user_attrs=t["user_attrs"], system_attrs=t["system_attrs"]))
        for key, value in state.get("study_system_attrs", {}).items():
            self.study._storage.set_study_system_attr(self.study._study_id, key, value)
        self.pending = {tuple(map(int, k)): [int(n) for n in v] for k, v in state["pending"]}


class TPEStrategy(OptunaStrategy):
    """Optuna's TPE sampler (Optuna's defaults), the told violation as its constraint."""

    name = "tpe"

    def _sampler(self, seed: int):
        return self.optuna.samplers.TPESampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                               constraints_func=_constraints)


class GPStrategy(OptunaStrategy):
    """Optuna's Gaussian-process sampler, with the told violation as its constraint."""

    name = "gp"

    def _sampler(self, seed: int):
        return self.optuna.samplers.GPSampler(seed=seed, n_startup_trials=self.n_startup_trials,
                                              constraints_func=_constraints)


class NSGA2Strategy(OptunaStrategy):
    """NSGA-II over (accuracy up, latency down) from the infos: the whole front, pick a target afterwards."""

    name = "nsga2"
    directions = ("maximize", "minimize")
    HYPERPARAMETERS = ("population_size",)

    def __init__(self, space, seed: int = 0, *, population_size: int = 20) -> None:
        if isinstance(population_size, bool) or not isinstance(population_size, int) or population_size < 2:
            raise ValueError(f"nsga2: population_size={population_size!r}: expected an integer >= 2")
        self.population_size = population_size
        super().__init__(space, seed)

    def hyperparameters(self) -> dict[str, Any]:
        return {"population_size": self.population_size}

    def _sampler(self, seed: int):
        return self.optuna.samplers.NSGAIISampler(seed=seed, population_size=self.population_size,
                                                  constraints_func=_constraints)

    def _values(self, reward: float, info: dict[str, Any]) -> list[float]:
        if "accuracy" not in info or "latency_ms" not in info:
            raise ValueError("nsga2 searches accuracy and latency: tell it infos with 'accuracy' and 'latency_ms'")
        return [info["accuracy"], info["latency_ms"]]
