"""The public entry points: `create_study` and `load_study` configure a study, `SearchStudy.optimize`
runs it, and `search` does both in one call.

A study fixes what makes its trials comparable — the space, the reward (with its latency target) and
the seed — when it is created; how it is run (evaluator, strategy, budget, executor, callbacks) is
given to `optimize`, which checks that a resumed study is run the same way.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mnas.evaluate import Evaluator, ProxyEvaluator, UserEvaluator, as_evaluator
from mnas.execution import Executor, get_executor
from mnas.loop.budget import Budget
from mnas.loop.lease import WriterLease
from mnas.loop.runner import Runner, RunResult, SearchEvent, latency_limit_ms, retrained_count, strategy_infos
from mnas.objectives import Constraints, Reward, Target
from mnas.space import SearchSpace
from mnas.strategies import Strategy, get_strategy
from mnas.study import Storage, Study, get_storage
from mnas.study.sqlite import SQLiteStorage

__all__ = ["SearchStudy", "create_study", "load_study", "search"]

log = logging.getLogger("mnas.search")

Callback = Callable[[SearchEvent], None]
_RUN_KEYS = ("strategy", "strategy_options", "evaluator")  # fixed by the first optimize, checked by the next


class SearchStudy(Study):
    """A study that can run: its `space`, `reward` and `seed` are fixed. Reads (`trials`, `best`,
    `pareto_front`, `summary`) are `Study`'s; `optimize` runs or resumes the search; `last_run` is
    how the latest `optimize` ended (a `RunResult`, or None)."""

    def __init__(self, storage: Storage, space: SearchSpace | None, reward: Reward, seed: int) -> None:
        super().__init__(storage)
        self.space, self.reward, self.seed = space, reward, seed
        self.last_run: RunResult | None = None

    @property
    def constraints(self) -> Constraints:
        """The study's hard limits (stored when it was created; none: an empty `Constraints()`)."""
        return Constraints.from_dict((self.storage.get_meta("config") or {}).get("constraints"))

    def optimize(self, evaluator: Evaluator | Callable, *, strategy: str | Strategy = "auto",
                 strategy_options: dict[str, Any] | None = None, budget: Budget | None = None,
                 executor: str | Executor = "local", workers: int | None = None, ray_address: str | None = None,
                 callbacks: Sequence[Callback] = ()) -> RunResult:
        """Run the search until `budget` (total trials in the study, and/or hours of this run; default:
        the study's stored budget, else `Budget()`), and return how it ended.

        `evaluator`: a `mnas.evaluate.Evaluator` or a `callable(arch) -> {"accuracy", "latency_ms"}`.
        `strategy`: a name of `mnas.strategies.STRATEGIES` (with `strategy_options`), a `Strategy`, or
        "auto" (the default; a resumed study keeps its own): `auto_strategy` — "boundary" under a hard
        latency limit, else "predictor".
        `executor`: "local", "process" (`workers`), "ray" (`ray_address`) or an `Executor`.
        `callbacks` get a `SearchEvent` after every trial. A resumed study re-queues the trials that
        were running, restores the strategy, and refuses another strategy or evaluator (ValueError).
        One process at a time may run a study (`StudyBusyError` names the other one)."""
        if self.space is None:
            raise ValueError(f"this study's space ({(self.meta.get('config') or {}).get('space', {}).get('class')}) "
                             "cannot be rebuilt from its settings: pass space= to mnas.load_study")
        evaluator = as_evaluator(evaluator)
        evaluator.check_space(self.space)
        evaluator = _constrained(evaluator, self.constraints, self.space)
        stored = dict(self.storage.get_meta("config") or {})
        if strategy == "auto":
            strategy = stored.get("strategy") or auto_strategy(self.reward, self.limits)
        strat, name = _make_strategy(strategy, strategy_options, self.space, self.seed)
        if budget is None:
            budget = Budget.from_dict(stored["budget"]) if isinstance(stored.get("budget"), dict) else Budget()
        config = {**stored, "strategy": name, "strategy_options": strat.hyperparameters(),
                  "evaluator": evaluator.identity(), "evaluation": evaluator.describe(), "budget": budget.to_dict(),
                  "accuracy_source": evaluator.accuracy_source}
        for key in _RUN_KEYS:
            if key in stored and stored[key] != config[key]:
                raise ValueError(f"the storage holds a study made with a different {key}"
                                 f" ({difference(stored[key], config[key])}):"
                                 " use the same settings to resume it, or another storage for a new study")
        with WriterLease(self.storage) as lease:
            used = self.storage.count_trials(("running", "complete", "failed"))
            used -= retrained_count(self.storage.get_trials("complete")) if budget.trials is not None else 0
            if budget.trials is not None and used >= budget.trials and not self.storage.count_trials("running"):
                self.last_run = _already_complete(self, budget)
                return self.last_run
            if stored.get("strategy") == name:
                saved = self.storage.load_strategy_state()
                if saved is not None:
                    try:
                        strat.load_state_dict(saved[0])
                    except ValueError as exc:  # e.g. a controller state from an older mnas: rebuild from the trials
                        strat, _ = _make_strategy(strategy, strategy_options, self.space, self.seed)
                        told = _replay(strat, self, self.reward)
                        # the stored states are ordered by n_told, which also counted the repeated proposals
                        # the loop answered from the study; the replay tells each finished trial once
                        strat.num_told = max(strat.num_told, int(saved[1]))
                        log.warning("the stored %s state cannot be loaded (%s): rebuilt the strategy by telling it the "
                                    "study's %d finished trials", name, str(exc).splitlines()[0], told)
            self.storage.set_meta("config", config)
            runner = Runner(self.space, strat, self.storage, self, evaluator, self.reward, budget, callbacks,
                            self.seed, lease)
            runner.queue.extend(list(t.tokens) for t in self.storage.requeue_running())
            pool = get_executor(executor, workers=workers, ray_address=ray_address)
            try:
                result = runner.run(pool)
            except BaseException:
                for future in runner.pending:
                    future.cancel()
                pool.shutdown(cancel=True, wait=False)
                raise
            pool.shutdown()
            self.storage.set_meta("last_run", result.to_dict())  # under the lease: another search may take it next
        self.last_run = result
        return result

    def __repr__(self) -> str:
        return f"SearchStudy({self.storage!r}, reward={self.reward}, seed={self.seed})"


def _already_complete(study: SearchStudy, budget: Budget) -> RunResult:
    counts = {s: study.storage.count_trials(s) for s in ("complete", "failed")}
    used = study.storage.count_trials(("running", "complete", "failed"))
    reason = (f"the study is complete: it holds {used} trials, its budget is {budget.trials}; "
              "give a larger budget (--trials) to continue it")
    return RunResult("complete", reason, False, 0, counts["complete"], counts["failed"], used)


def _replay(strategy: Strategy, study: Study, reward: Reward) -> int:
    """Tell a fresh `strategy` the study's finished search trials in order (failed ones as None; not the
    standalone retrainings, `mnas.loop.retrain`); how many.

    It is told what the search loop would have told it (`strategy_infos`): a violation only of the
    study's hard constraints (a hard reward's target and the study's limits), never of a soft reward's
    target; and it gets the study's latency limit (`set_latency_limit`) before the first result."""
    import inspect

    limits = getattr(study, "limits", None)
    limits = limits if isinstance(limits, Constraints) else Constraints()
    set_limit = getattr(strategy, "set_latency_limit", None)
    if callable(set_limit):
        set_limit(latency_limit_ms(reward, limits))
    with_infos = "infos" in inspect.signature(strategy.tell).parameters
    told = 0
    for t in study.get_trials(("complete", "failed")):
        if t.accuracy_source == "standalone":
            continue  # a --retrain-top training: not a search result, on another scale; the loop never tells one
        done = t.state.value == "complete" and t.reward is not None and math.isfinite(t.reward)
        if done:
            peak = (t.extra or {}).get("peak_memory")
            peak = float(peak) if isinstance(peak, (int, float)) and not isinstance(peak, bool) \
                and math.isfinite(peak) else None
            info = strategy_infos(reward, limits, t.accuracy, t.latency_ms, t.params, t.macs, peak)
        else:
            info = strategy_infos(reward, limits, None, None)  # as the loop tells a failed trial
        value = t.reward if done else None
        if with_infos:
            strategy.tell([list(t.tokens)], [value], infos=[info])
        else:
            strategy.tell([list(t.tokens)], [value])
        told += 1
    return told


def _constrained(evaluator: Evaluator, constraints: Constraints, space: SearchSpace) -> Evaluator:
    """`evaluator` with the study's limits on counts checked before each candidate's training."""
    if not constraints or not (set(constraints.limits) - {"latency_ms"}):
        return evaluator  # no limit, or only a latency one: checked on the measured latency
    from mnas.evaluate.constrained import ConstrainedEvaluator

    size = getattr(evaluator, "input_size", None) or getattr(space, "input_size", 224)
    data = getattr(evaluator, "data", None)
    classes = getattr(data, "num_classes", None) or getattr(space, "num_classes", 1000)
    return ConstrainedEvaluator(evaluator, constraints, int(size), int(classes), int(getattr(data, "channels", 3)))


def auto_strategy(reward: Reward, limits: Constraints | None = None) -> str:
    """The default strategy ("auto"): "boundary" when the study has a hard latency limit (a hard reward's
    target or `max_latency_ms`), "predictor" otherwise (no target, or a soft reward). Measured on
    NAS-Bench-Macro with this CPU's latency (50 seeds, 100 trials; docs/design/nbmacro.md): boundary
    leads Optuna's TPE by 6-8 standard errors under hard targets at the 25th/50th/75th latency
    percentiles, and the predictor by 5 without a target, where MnasNet's PPO trails TPE."""
    return "boundary" if latency_limit_ms(reward, limits if limits is not None else Constraints()) is not None \
        else "predictor"


def _make_strategy(strategy: str | Strategy, options: dict[str, Any] | None, space: SearchSpace,
                   seed: int) -> tuple[Strategy, str]:
    if isinstance(strategy, Strategy):
        if options:
            raise ValueError("strategy_options go with a strategy name; a Strategy object holds its own")
        return strategy, strategy.name
    return get_strategy(strategy, space, seed, **(options or {})), strategy


def difference(stored: Any, given: Any, path: str = "") -> str:
    """Where two stored settings differ, in one short phrase: 'settings.width_mult: 0.25, given 0.5'
    (the first difference, not the whole dict)."""
    if isinstance(stored, dict) and isinstance(given, dict):
        for key in [*stored, *(k for k in given if k not in stored)]:  # stored order: a space's settings first
            if stored.get(key) != given.get(key):
                return difference(stored.get(key), given.get(key), f"{path}.{key}" if path else str(key))
    if isinstance(stored, str) and isinstance(given, str) and stored.startswith("{") and given.startswith("{"):
        import json

        try:  # a JSON key (a latency backend's): compare its fields
            return difference(json.loads(stored), json.loads(given), path)
        except json.JSONDecodeError:
            pass

    def short(value: Any) -> str:
        text = repr(value)
        return text if len(text) <= 60 else text[:57] + "..."

    return f"{path + ': ' if path else ''}{short(stored)}, given {short(given)}"


def space_identity(space: SearchSpace) -> dict[str, Any]:
    return {"class": f"{type(space).__module__}.{type(space).__qualname__}", "settings": space.settings(),
            "num_choices": space.num_choices}


def _rebuild_space(identity: dict[str, Any]) -> SearchSpace | None:
    """The stored space, rebuilt from its class and settings; None when that is not possible (a
    class defined in a script, or settings that are not its constructor's arguments)."""
    try:
        module, _, qualname = str(identity["class"]).rpartition(".")
        cls = getattr(importlib.import_module(module), qualname)
        space = cls(**identity.get("settings", {}))
    except Exception:  # noqa: BLE001 - any reason means "ask the user for the space"
        return None
    return space if space_identity(space) == identity else None


def _check_decode(space: SearchSpace, seed: int) -> None:
    """Fail before any trial when the space does not decode to an architecture the loop can use."""
    from mnas.loop.runner import _accepts_architecture

    tokens = space.sample_tokens(np.random.default_rng(seed))
    try:
        arch = space.decode(tokens)
    except Exception as exc:  # noqa: BLE001
        raise ValueError(f"{type(space).__name__}.decode({tokens}) failed: {type(exc).__name__}: {exc}") from exc
    if not _accepts_architecture(arch):
        raise ValueError(f"{type(space).__name__}.decode returned {type(arch).__name__}: a search space must decode "
                         "tokens to an architecture of a registered family (mnas.space.families())")


def _same_reward(stored: Any, reward: Reward) -> bool:
    try:
        return Reward.from_dict(stored).to_dict() == reward.to_dict()  # old dicts load; compare normalised forms
    except (ValueError, TypeError):
        return stored == reward.to_dict()


def create_study(storage: Storage | str | os.PathLike[str] | None = None, *, space: SearchSpace,
                 reward: Reward, seed: int = 0, load_if_exists: bool = False,
                 constraints: Constraints | None = None) -> SearchStudy:
    """A new study in `storage` (a path, a 'sqlite:///' URL, a Storage, or None: in memory) for
    `space` under `reward` (e.g. `mnas.Reward.soft(target_ms=20)`), seeded `seed` (strategy and every
    candidate's training). If the storage already holds a study: with `load_if_exists`, that study
    when it was made with the same space, reward and seed (ValueError otherwise); without, ValueError
    (open it with `mnas.load_study`). An empty file counts as no study. `constraints`
    (`mnas.Constraints(max_params=1.5e6, ...)`) are hard limits stored with the study: a candidate
    whose counts break one is recorded as a failed trial without being trained, and `best()` and
    the Pareto front only hold trials within them; a resumed study must be given the same limits."""
    if not isinstance(space, SearchSpace):
        raise ValueError(f"space: expected a mnas.space.SearchSpace, got {type(space).__name__}")
    if not isinstance(reward, Reward):
        raise ValueError(f"reward: expected a mnas.Reward (e.g. mnas.Reward.soft(target_ms=20)), got {type(reward).__name__}")
    _check_decode(space, seed)
    if constraints is not None and not isinstance(constraints, Constraints):
        raise ValueError(f"constraints: expected a mnas.Constraints, got {type(constraints).__name__}")
    limits = (constraints or Constraints()).to_dict()
    with _cleanup_if_new(storage) as store:
        config = store.get_meta("config")
        if config is None and store.count_trials():
            raise ValueError("the storage holds trials but no search config: use a new storage")
        identity = {"space": space_identity(space), "seed": seed}
        if config is not None:
            if not load_if_exists:
                raise ValueError(f"{store!r} already holds a study: open it with mnas.load_study, "
                                 "or pass load_if_exists=True")
            for key, value in identity.items():
                if config.get(key) != value:
                    raise ValueError(f"the storage holds a study made with a different {key}"
                                     f" ({difference(config.get(key), value)}):"
                                     " use the same settings to resume it, or another storage for a new study")
            if (config.get("constraints") or {}) != limits:
                raise ValueError(f"the storage holds a study made with other constraints ({config.get('constraints') or {}}"
                                 f", given {limits}): use the same limits to resume it, or another storage for a new study")
            if not _same_reward(config.get("reward"), reward):
                raise ValueError("the storage holds a study made with a different reward"
                                 f" ({difference(config.get('reward'), reward.to_dict())}):"
                                 " use the same settings to resume it, or another storage for a new study")
            return SearchStudy(store, space, reward, seed)
        store.set_meta("config", {**identity, "reward": reward.to_dict(), "target_ms": reward.target_ms,
                                  **({"constraints": limits} if limits else {})})
        store.set_meta("target_ms", reward.target_ms)
        if limits:
            store.set_meta("constraints", limits)
    return SearchStudy(store, space, reward, seed)


def load_study(storage: Storage | str | os.PathLike[str], *, space: SearchSpace | None = None) -> SearchStudy:
    """Open the study in `storage` to read or resume it (`optimize`). Its space is rebuilt from the
    stored class and settings; pass `space` when that is not possible (a space defined in a script):
    it must be the study's. Studies made by earlier versions of mnas open the same way."""
    store = get_storage(storage)
    config = store.get_meta("config")
    if not isinstance(config, dict) or "reward" not in config:
        raise ValueError(f"no study in {store!r} (nothing stored yet): make one with mnas.create_study")
    identity = config.get("space") or {}
    if space is not None and space_identity(space) != identity:
        raise ValueError(f"space {type(space).__name__} is not this study's ({identity.get('class')}, "
                         f"settings {identity.get('settings')}): pass the space it was made with")
    return SearchStudy(store, space if space is not None else _rebuild_space(identity),
                       Reward.from_dict(config["reward"]), int(config.get("seed", 0)))


@contextlib.contextmanager
def _cleanup_if_new(storage: Storage | str | os.PathLike[str] | None):
    """Open `storage`; if it was a file that held no study and the search fails before its first
    trial, remove it, so a search that cannot start leaves no empty study behind."""
    path = None
    if isinstance(storage, (str, os.PathLike)) and not isinstance(storage, Storage):
        store = get_storage(storage)
        if isinstance(store, SQLiteStorage) and store.path != ":memory:":
            path = Path(store.path)
    else:
        store = get_storage(storage)
    fresh = path is not None and store.get_meta("config") is None and not store.count_trials()
    try:
        yield store
    except BaseException:
        if fresh and not store.count_trials():
            store.close()
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    Path(f"{path}{suffix}").unlink()
        raise


def _resolve_reward(reward: Reward | None, target: Target | str | float | None, evaluator: Evaluator,
                    space: SearchSpace) -> Reward:
    if reward is not None:
        if target is not None:
            raise ValueError("give either reward= or target=, not both (a Reward holds its target)")
        return reward
    if target is None:
        extra = " or Reward.accuracy() for no target" if hasattr(Reward, "accuracy") else ""
        raise ValueError("the search needs a latency target: target='20ms', target='mobilenetv2' or "
                         f"reward=Reward.soft(20){extra}")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        return Reward.soft(float(target))
    target = target if isinstance(target, Target) else Target.parse(str(target))
    return Reward.soft(target.resolve(lambda name: evaluator.reference_latency(name, space)))


def search(space: SearchSpace, data: Any = None, latency: Any = None, reward: Reward | None = None, *,
           target: Target | str | float | None = None, strategy: str | Strategy = "auto",
           strategy_options: dict[str, Any] | None = None, budget: Budget | None = None,
           storage: Storage | str | os.PathLike[str] | None = None, executor: str | Executor = "local",
           workers: int | None = None, ray_address: str | None = None, proxy: Any = None,
           evaluate: Callable | Evaluator | None = None, seed: int = 0,
           callbacks: Sequence[Callback] = (), constraints: Constraints | None = None) -> SearchStudy:
    """Create (or resume) a study and run it, in one call; returns the study (`study.last_run` says
    how the run ended). The same as::

        study = mnas.create_study(storage, space=space, reward=reward, seed=seed, load_if_exists=True)
        study.optimize(evaluator, strategy=strategy, budget=budget, executor=executor, callbacks=callbacks)

    with `evaluator = ProxyEvaluator(data, latency, proxy)`, or `evaluate` (an Evaluator, or
    `fn(arch) -> {"accuracy", "latency_ms", ...}`). The target is a `reward` or a `target` ("20ms",
    20, "mobilenetv2", "0.8x mnasnet_b1": the soft MnasNet reward); a resumed study keeps its own.
    """
    if evaluate is not None:
        evaluator = evaluate if isinstance(evaluate, Evaluator) else UserEvaluator(evaluate)
    else:
        if data is None or latency is None:
            raise ValueError("built-in evaluation needs data= and latency= (or pass evaluate=fn)")
        evaluator = ProxyEvaluator(data, latency, proxy)
    evaluator.check_space(space)
    if strategy != "auto":  # "auto" is resolved with the study's reward and limits
        _make_strategy(strategy, strategy_options, space, seed)  # bad options fail before any file is made
    with _cleanup_if_new(storage) as store:
        stored = (store.get_meta("config") or {}).get("reward")
        if reward is None and target is None and stored:
            reward = Reward.from_dict(stored)  # resuming: the stored target, not a re-measured one
        if constraints is None and (store.get_meta("config") or {}).get("constraints"):
            constraints = Constraints.from_dict(store.get_meta("config")["constraints"])  # resuming: the stored limits
        reward = _resolve_reward(reward, target, evaluator, space)
        study = create_study(store, space=space, reward=reward, seed=seed, load_if_exists=True, constraints=constraints)
        study.optimize(evaluator, strategy=strategy, strategy_options=strategy_options, budget=budget,
                       executor=executor, workers=workers, ray_address=ray_address, callbacks=callbacks)
    return study
