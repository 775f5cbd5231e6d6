"""The search loop: strategy proposes tokens, the space decodes, candidates are evaluated, the study
records every trial as it starts and ends, and the strategy is told the reward.

Crash safety: a trial is stored as running before any work on it, and its result is stored in the
same transaction as the strategy's state after being told, so a kill at any moment loses at most the
running trials. Resuming (the same storage again) re-queues them, restores the strategy and goes on.
Everything that can go wrong with one candidate's result (a bad figure, a reward that cannot be
computed, a value that cannot be stored) is checked before the strategy is told, and fails that trial
with its reason: no trial is left running by an exception the loop could have caught.

What the strategy is told besides the reward (`strategy_infos`): the trial's figures and its violation
of the study's *hard* constraints only: the target of a hard reward (`Reward.is_hard`) and the study's
limits (`Constraints`). A soft reward's target is part of the reward, not a constraint: under it every
trial is told feasible, so the strategies that rank feasible candidates first (evolution, replay,
predictor, tpe, gp, nsga2) optimise the reward itself (issue 22). The loop also gives the strategy the
latency no candidate may exceed (`latency_limit_ms`; None under a soft reward without a latency limit).
"""

from __future__ import annotations

import inspect
import math
import statistics
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mnas._util import get_logger
from mnas.evaluate import RESULT_KEYS, Evaluator, check_result, trial_seed
from mnas.evaluate.constrained import _infeasible
from mnas.execution import Executor
from mnas.loop.budget import Budget
from mnas.loop.lease import WriterLease
from mnas.objectives import Constraints, Reward
from mnas.space import Arch, SearchSpace
from mnas.strategies import Strategy
from mnas.strategies.base import check_infos
from mnas.study import Storage, Study, Trial
from mnas.study.trial import FLOAT_ATTRS, INT_ATTRS, check_attrs

__all__ = ["RunResult", "SearchEvent", "latency_limit_ms", "strategy_infos"]

log = get_logger("search")

_STORED = ("params", "macs", "train_seconds", "latency_seconds")
_UNSEEN_DRAWS = 100  # random draws per slot when looking for an architecture the study has not seen


@dataclass
class SearchEvent:
    """Passed to callbacks after every started, finished or answered-from-study trial."""

    kind: str  # "complete", "failed", "repeat", "start"
    study: Study
    trial: Trial | None
    elapsed: float
    budget: Budget
    reward: Reward
    running: int = 0
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """How one `optimize` run ended. `stop` is "trials" (the budget's trials are in the study),
    "time" (its hours), "exhausted" (no architecture left that the study has not evaluated) or
    "complete" (the study already held its budget when the run began); `early` is True when the
    study holds fewer trials than the budget asked for."""

    stop: str
    reason: str
    early: bool
    new_trials: int
    complete: int
    failed: int
    trials: int
    explored: int = 0  # trials drawn at random because the strategy kept proposing known networks

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def __str__(self) -> str:
        return f"{'stopped early: ' if self.early else ''}{self.reason}"


def latency_limit_ms(reward: Reward, limits: Constraints | None = None) -> float | None:
    """The latency (ms) no candidate may exceed: the target of a hard reward and the limits'
    `max_latency_ms`, the smaller when both are set; None when latency is only part of the reward."""
    found = [v for v in (reward.target_ms if reward.is_hard else None, limits.max_latency_ms if limits else None)
             if v is not None]
    return min(found) if found else None


def strategy_infos(reward: Reward, limits: Constraints | None, accuracy: float | None, latency_ms: float | None,
                   params: Any = None, macs: Any = None, peak_memory: Any = None) -> dict[str, Any]:
    """What a strategy is told about one result besides its reward (`Strategy.tell`'s infos): the figures,
    and `violation`, the relative excess over the study's hard constraints: `max(0, LAT/T - 1)` under a
    hard reward (`reward.is_hard`), plus `limits.violation` of the known figures. A soft reward's target
    is no constraint: under it (and without limits) every result is feasible and the strategy optimises
    the reward. Unknown figures (a failed trial) break nothing."""
    violation = 0.0
    if reward.is_hard and reward.target_ms is not None and latency_ms is not None:
        violation += max(0.0, float(latency_ms) / reward.target_ms - 1.0)
    if limits:
        metrics = {"params": params, "macs": macs, "peak_memory": peak_memory, "latency_ms": latency_ms}
        violation += limits.violation({k: v for k, v in metrics.items() if v is not None}, partial=True)
    return {"accuracy": accuracy, "latency_ms": latency_ms, "params": params, "macs": macs, "peak_memory": peak_memory,
            "feasible": violation == 0.0, "violation": violation}


def _number_or_none(value: Any) -> float | None:
    """A figure the loop does not otherwise check (peak memory from a user's evaluator): a finite number, or None."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return float(value) if number and math.isfinite(value) else None


def _accepts_architecture(obj: Any) -> bool:
    """An `Arch` (the block chain); other families count once `mnas.space` says they are architectures."""
    if isinstance(obj, Arch):
        return True
    import mnas.space as space_mod

    check = getattr(space_mod, "is_architecture", None)
    return bool(check(obj)) if callable(check) else False


def retrained_count(trials: Sequence[Trial]) -> int:
    """How many of `trials` are standalone retrainings of search trials (not the search's own)."""
    return sum(1 for t in trials if t.state == "complete" and t.accuracy_source == "standalone")


class Runner:
    """State of one run of the loop (kept out of `optimize` so that the loop reads flat)."""

    def __init__(self, space: SearchSpace, strategy: Strategy, storage: Storage, study: Study, evaluator: Evaluator,
                 reward: Reward, budget: Budget, callbacks: Sequence[Callable[[SearchEvent], None]], seed: int,
                 lease: WriterLease | None = None):
        self.space, self.strategy, self.storage, self.study = space, strategy, storage, study
        self.evaluator, self.reward, self.budget, self.callbacks = evaluator, reward, budget, callbacks
        self.seed, self.lease = seed, lease
        self.queue: deque[list[int]] = deque()
        self.explore: deque[list[int]] = deque()  # unseen architectures drawn after too many repeats
        self.pending: dict[Future, tuple[int, list[int], str, dict[str, Any]]] = {}
        self.waiting: dict[str, list[list[int]]] = {}  # arch in flight -> other proposals of it
        self.durations: list[float] = []
        self.repeats = self.explored = self.new_trials = 0
        self.started = time.monotonic()
        self.stop, self.stop_reason = "", ""
        self.exhausted = False
        trials = storage.get_trials()
        self.seen = {t.arch for t in trials}
        # standalone retrainings (mnas.loop.retrain) are added after a search, never during one: they
        # are not search trials and do not use the search's trial budget
        self.retrained = retrained_count(trials)
        self.tell_infos = "infos" in inspect.signature(strategy.tell).parameters
        # The study's hard limits (a plain `Study` has them too; anything else: none).
        limits = getattr(study, "limits", None)
        self.limits = limits if isinstance(limits, Constraints) else Constraints()
        set_limit = getattr(strategy, "set_latency_limit", None)
        if callable(set_limit):  # e.g. the predictor models latency against it
            set_limit(latency_limit_ms(reward, self.limits))

    # -- budget ----------------------------------------------------------------------------
    def _can_start(self) -> bool:
        used = self.storage.count_trials(("running", "complete", "failed")) - self.retrained
        if self.budget.trials is not None and used >= self.budget.trials:
            self.stop, self.stop_reason = "trials", f"{self.budget.trials} trials done"
            return False
        elapsed = time.monotonic() - self.started
        expected = statistics.median(self.durations) if self.durations else 0.0
        if elapsed + expected > self.budget.seconds:
            self.stop, self.stop_reason = "time", f"time budget of {self.budget.hours:g} h reached"
            return False
        if self.exhausted:
            self.stop = "exhausted"
            self.stop_reason = (f"the strategy proposed {self.repeats} already-evaluated architectures in a row and "
                                f"{_UNSEEN_DRAWS} random draws found none the study has not seen (the space looks exhausted)")
            return False
        return True

    def result(self) -> RunResult:
        counts = {s: self.storage.count_trials(s) for s in ("complete", "failed")}
        used = self.storage.count_trials(("running", "complete", "failed")) - self.retrained
        early = self.budget.trials is not None and used < self.budget.trials
        return RunResult(self.stop or "trials", self.stop_reason or "nothing left to run", early, self.new_trials,
                         counts["complete"], counts["failed"], used, self.explored)

    def _emit(self, kind: str, trial: Trial | None, **info: Any) -> None:
        event = SearchEvent(kind, self.study, trial, time.monotonic() - self.started, self.budget, self.reward,
                            len(self.pending), info)
        for callback in self.callbacks:
            callback(event)

    # -- the loop --------------------------------------------------------------------------
    def run(self, pool: Executor) -> RunResult:
        capacity = max(1, int(getattr(pool, "max_workers", 1) or 1))
        while True:
            while len(self.pending) < capacity and self._can_start():
                if self.lease is not None:
                    self.lease.check()
                if self.explore:
                    self._start(self.explore.popleft(), pool, explored=True)
                    continue
                if not self.queue:
                    self.queue.extend(self.strategy.ask(capacity - len(self.pending)))
                self._start(self.queue.popleft(), pool)
            if not self.pending:
                break
            done, _ = wait(list(self.pending), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(future)
        result = self.result()
        (log.warning if result.early else log.info)("search stopped: %s", result)
        return result

    def _decode(self, tokens: list[int]) -> Arch:
        try:
            arch = self.space.decode(tokens)
        except Exception as exc:  # noqa: BLE001 - a broken space is the user's to fix: say where
            raise ValueError(f"{type(self.space).__name__}.decode({tokens}) failed: {type(exc).__name__}: {exc}") from exc
        if not _accepts_architecture(arch):
            raise ValueError(f"{type(self.space).__name__}.decode returned {type(arch).__name__}: a search space must "
                             "decode tokens to an architecture of a registered family (mnas.space.families())")
        return arch

    def _unseen(self) -> list[int] | None:
        """Random tokens of an architecture the study has not seen, drawn from the study's seed and
        its size (so a resumed search draws the same), or None after `_UNSEEN_DRAWS` tries."""
        rng = np.random.default_rng([self.seed, len(self.seen), 7])
        for _ in range(_UNSEEN_DRAWS):
            tokens = self.space.sample_tokens(rng)
            if str(self._decode(tokens)) not in self.seen:
                return tokens
        return None

    def _start(self, tokens: list[int], pool: Executor, explored: bool = False) -> None:
        arch = self._decode(tokens)
        key = str(arch)
        if key in self.waiting:  # the same network is being evaluated: answer when it finishes
            self.waiting[key].append(tokens)
            self._repeated()
            return
        hit = self.storage.find_complete(key)
        if hit is not None:
            peak = _number_or_none((hit.extra or {}).get("peak_memory"))
            self._tell([tokens], [hit.reward], [self._info(hit.accuracy, hit.latency_ms, hit.params, hit.macs, peak)])
            self.storage.save_strategy_state(self.strategy.state_dict(), self.strategy.num_told)
            self._emit("repeat", hit)
            self._repeated()
            return
        if not explored:
            self.repeats = 0
        self.explored += explored
        number = self.storage.create_trial(tokens, key)
        self.seen.add(key)
        self.new_trials += 1
        self._emit("start", self.storage.get_trial(number))
        seed = trial_seed(self.seed, key)
        try:
            # The job is asked for first: the study's hard limits are checked there (ConstrainedEvaluator),
            # so a candidate that breaks one fails now, before it costs a latency measurement or a worker.
            fn, args = self.evaluator.job(arch, seed)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a job that cannot be made is a failed trial
            self._fail(number, tokens, key, f"{type(exc).__name__}: {exc}")
            return
        if fn is _infeasible:
            self._fail(number, tokens, key, str(args[0]), fn(*args), {"extra": {"seed": seed}})
            return
        info: dict[str, Any] = {}
        if self.evaluator.latency_in_driver:
            try:
                latency_ms, latency_s, details = self.evaluator.measure_latency(arch)
            except (KeyboardInterrupt, SystemExit, ConnectionError):
                raise  # a device that cannot be reached stops the search; resume re-queues this trial
            except Exception as exc:  # noqa: BLE001 - a device that fails is a failed trial, not a crash
                self._fail(number, tokens, key, f"latency: {type(exc).__name__}: {exc}")
                return
            info = {"latency_ms": latency_ms, "latency_seconds": latency_s, "extra": dict(details or {})}
        info.setdefault("extra", {})["seed"] = seed
        try:
            future = pool.submit(fn, *args)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - e.g. arguments that do not pickle for a process pool
            self._fail(number, tokens, key, f"{type(exc).__name__}: {exc}")
            return
        self.waiting[key] = []
        self.pending[future] = (number, tokens, key, info)

    def _repeated(self) -> None:
        self.repeats += 1
        if self.repeats >= self.budget.max_repeats and not self.explore:
            # A converged (or stuck) strategy: rather than stopping below the budget, evaluate an
            # architecture the study has not seen; the strategy is told its result like any other.
            found = self._unseen()
            if found is None:
                self.exhausted = True
            else:
                self.explore.append(found)

    def _info(self, accuracy: float | None, latency_ms: float | None, params: Any = None, macs: Any = None,
              peak_memory: Any = None) -> dict:
        return strategy_infos(self.reward, self.limits, accuracy, latency_ms, params, macs, peak_memory)

    def _tell(self, told: list[list[int]], rewards: list[float | None], infos: list[dict]) -> None:
        if self.tell_infos:
            self.strategy.tell(told, rewards, infos=infos)
        else:
            self.strategy.tell(told, rewards)

    def _prepare(self, result: Any, info: dict[str, Any]) -> tuple[dict[str, Any], float, dict[str, Any], dict]:
        """Validate a job's result and compute the reward: (figures, reward, stored attributes, what the
        strategy is told). Raises (ValueError, or whatever the reward raises) before anything is told or stored."""
        checked = check_result(result, need_latency=not self.evaluator.latency_in_driver,
                               who=f"the evaluator ({type(self.evaluator).__name__})")
        merged = {**checked, **{k: v for k, v in info.items() if k != "extra"}}
        if not checked["ok"]:
            return merged, math.nan, {}, {}
        reward = float(self.reward(merged["accuracy"], merged["latency_ms"]))
        if not math.isfinite(reward):
            raise ValueError(f"the reward of accuracy {merged['accuracy']!r} at {merged['latency_ms']!r} ms is {reward}")
        # "feasible" in the stored trial: whether it meets the reward's target (True without one), as before.
        extra = {**info.get("extra", {}), **{k: v for k, v in merged.items() if k not in RESULT_KEYS},
                 "accuracy_source": self.evaluator.accuracy_source, "feasible": bool(self.reward.feasible(merged["latency_ms"]))}
        attrs = check_attrs({**{k: merged.get(k) for k in _STORED}, "extra": extra}, FLOAT_ATTRS + INT_ATTRS + ("extra",))
        told = self._info(merged["accuracy"], merged["latency_ms"], merged.get("params"), merged.get("macs"),
                          _number_or_none(merged.get("peak_memory")))
        check_infos([told], 1)  # a figure the strategy cannot take fails this trial, not the search
        return merged, reward, attrs, told

    def _finish(self, future: Future) -> None:
        number, tokens, key, info = self.pending.pop(future)
        try:
            result = future.result()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - worker errors become failed trials
            self._fail(number, tokens, key, f"{type(exc).__name__}: {exc}")
            return
        try:
            merged, reward, attrs, figures = self._prepare(result, info)
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - a result that cannot be scored or stored fails its trial
            self._fail(number, tokens, key, f"{type(exc).__name__}: {exc}", result, info)
            return
        if not merged["ok"]:
            self._fail(number, tokens, key, str(merged.get("failure") or "training failed"), result, info)
            return
        told = [tokens] + self.waiting.pop(key, [])
        self._tell(told, [reward] * len(told), [figures] * len(told))
        self.storage.complete_trial(number, merged["accuracy"], merged["latency_ms"], reward,
                                    strategy_state=self.strategy.state_dict(), n_told=self.strategy.num_told, **attrs)
        self.durations.append(float(merged.get("train_seconds") or 0.0) + float(merged.get("latency_seconds") or 0.0))
        trial = self.storage.get_trial(number)
        log.info("trial %d complete: accuracy %.4f, latency %.4g ms, reward %.4f", number, trial.accuracy,
                 trial.latency_ms, trial.reward)
        self._emit("complete", trial)

    def _fail(self, number: int, tokens: list[int], key: str, reason: str, result: Any = None,
              info: dict[str, Any] | None = None) -> None:
        told = [tokens] + self.waiting.pop(key, [])
        self._tell(told, [None] * len(told), [self._info(None, None)] * len(told))
        state = {"strategy_state": self.strategy.state_dict(), "n_told": self.strategy.num_told}
        extra = {"accuracy_source": self.evaluator.accuracy_source, **(info or {}).get("extra", {})}
        attrs = {k: result.get(k) for k in ("params", "macs", "train_seconds")} if isinstance(result, Mapping) else {}
        if info and info.get("latency_ms") is not None:
            attrs.update(latency_ms=info["latency_ms"], latency_seconds=info.get("latency_seconds"))
        try:
            attrs = check_attrs({**attrs, "extra": extra}, FLOAT_ATTRS + INT_ATTRS + ("extra",))
        except ValueError:  # the partial figures are what is broken: keep only the reason
            attrs = {}
        self.storage.fail_trial(number, reason[:2000] or "unknown failure", **state, **attrs)
        log.warning("trial %d failed: %s", number, reason.splitlines()[0] if reason else "")
        self._emit("failed", self.storage.get_trial(number))
