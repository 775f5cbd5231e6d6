"""The search loop: strategy proposes tokens, the space decodes, candidates are evaluated, the study
records every trial as it starts and ends, and the strategy is told the reward.

Crash safety: a trial is stored as running before any work on it, and its result is stored in the
same transaction as the strategy's state after being told, so a kill at any moment loses at most the
running trials. Resuming (the same storage again) re-queues them, restores the strategy and goes on.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from mnas._util import get_logger
from mnas.evaluate import Evaluator, UserEvaluator, resolve_reference
from mnas.execution import Executor, get_executor
from mnas.objectives import Reward, Target
from mnas.search.budget import Budget
from mnas.space import SearchSpace
from mnas.strategies import Strategy, get_strategy
from mnas.study import Storage, Study, Trial, get_storage

__all__ = ["SearchEvent", "search"]

log = get_logger("search")

# What must match for a study to be resumed with these settings.
_IDENTITY_KEYS = ("space", "strategy", "strategy_options", "seed", "reward", "evaluator")


@dataclass
class SearchEvent:
    """Passed to callbacks after every finished (or answered-from-study) trial."""

    kind: str  # "complete", "failed", "repeat", "start"
    study: Study
    trial: Trial | None
    elapsed: float
    budget: Budget
    reward: Reward
    running: int = 0
    info: dict[str, Any] = field(default_factory=dict)


def _resolve_reward(reward: Reward | None, target: Target | str | float | None, latency: Any,
                    input_size: int, num_classes: int, in_chans: int) -> Reward:
    if reward is not None:
        if target is not None:
            raise ValueError("give either reward= or target=, not both (a Reward holds its target)")
        return reward
    if target is None:
        raise ValueError("the search needs a latency target: target='20ms', target='mobilenetv2' or reward=Reward.soft(20)")
    if isinstance(target, (int, float)) and not isinstance(target, bool):
        return Reward.soft(float(target))
    target = target if isinstance(target, Target) else Target.parse(str(target))
    ms = target.resolve(lambda name: resolve_reference(name, latency, input_size, num_classes, in_chans))
    return Reward.soft(ms)


def _space_identity(space: SearchSpace) -> dict[str, Any]:
    return {"class": f"{type(space).__module__}.{type(space).__qualname__}", "settings": space.settings(),
            "num_choices": space.num_choices}


def _check_resumable(storage: Storage, config: dict[str, Any]) -> bool:
    """True if the storage holds a study to resume; ValueError if it was made with other settings."""
    stored = storage.get_meta("config")
    if stored is None:
        if storage.count_trials():
            raise ValueError("the storage holds trials but no search config: use a new --storage")
        return False
    for key in _IDENTITY_KEYS:
        if stored.get(key) != config.get(key):
            raise ValueError(f"the storage holds a study made with a different {key} ({stored.get(key)!r}):"
                             " use the same settings to resume it, or another --storage for a new study")
    return True


def search(space: SearchSpace, data: Any = None, latency: Any = None, reward: Reward | None = None, *,
           target: Target | str | float | None = None, strategy: str | Strategy = "ppo",
           strategy_options: dict[str, Any] | None = None, budget: Budget | None = None,
           storage: Storage | str | None = None, executor: str | Executor = "local", workers: int | None = None,
           ray_address: str | None = None, proxy: Any = None, evaluate: Callable | None = None,
           seed: int = 0, callbacks: Sequence[Callable[[SearchEvent], None]] = ()) -> Study:
    """Run (or resume) a search and return its `Study`.

    Built-in evaluation needs `data` (a `mnas.data` Dataset) and `latency` (a LatencyBackend);
    `proxy` is the proxy-training `TrainConfig` (default: `mnas.train.ProxyConfig()`). Or pass
    `evaluate=fn`, `fn(arch) -> {"accuracy", "latency_ms", ...}`, to replace both. The target is a
    `reward` or a `target` ("20ms", 20, "mobilenetv2", "0.8x mnasnet_b1": soft MnasNet reward).
    """
    budget = budget or Budget()
    if evaluate is not None:
        evaluator: Evaluator | UserEvaluator = UserEvaluator(evaluate)
        input_size = getattr(space, "input_size", 224)
        num_classes = getattr(space, "num_classes", 1000)
    else:
        if data is None or latency is None:
            raise ValueError("built-in evaluation needs data= and latency= (or pass evaluate=fn)")
        if proxy is None:
            from mnas.train import ProxyConfig
            proxy = ProxyConfig()
        evaluator = Evaluator(data, latency, proxy)
        input_size, num_classes = evaluator.input_size, data.num_classes
        space_classes = getattr(space, "num_classes", num_classes)
        if space_classes != num_classes:
            raise ValueError(f"the space is for {space_classes} classes but the data has {num_classes}")

    storage = get_storage(storage)
    study = Study(storage)
    stored_reward = (storage.get_meta("config") or {}).get("reward")
    if reward is None and target is None and stored_reward:
        reward = Reward.from_dict(stored_reward)  # resuming: the stored target, not a re-measured one
    in_chans = getattr(data, "channels", 3)
    reward = _resolve_reward(reward, target, latency, input_size, num_classes, in_chans)
    if isinstance(strategy, Strategy):
        strat, strategy_name = strategy, strategy.name
    else:
        strategy_name = strategy
        strat = get_strategy(strategy, space, seed, **(strategy_options or {}))
    config = {"space": _space_identity(space), "strategy": strategy_name,
              "strategy_options": strat.hyperparameters(), "seed": seed, "reward": reward.to_dict(),
              "evaluator": evaluator.identity(), "evaluation": evaluator.describe(),
              "budget": budget.to_dict(), "target_ms": reward.target_ms}
    resumed = _check_resumable(storage, config)
    if resumed:
        saved = storage.load_strategy_state()
        if saved is not None:
            strat.load_state_dict(saved[0])
    storage.set_meta("config", config)
    storage.set_meta("target_ms", reward.target_ms)

    runner = _Runner(space, strat, storage, study, evaluator, reward, budget, callbacks)
    runner.queue.extend(list(t.tokens) for t in storage.requeue_running())
    pool = get_executor(executor, workers=workers, ray_address=ray_address)
    try:
        runner.run(pool)
    except BaseException:
        for future in runner.pending:
            future.cancel()
        pool.shutdown(cancel=True, wait=False)
        raise
    pool.shutdown()
    return study


class _Runner:
    """State of one run of the loop (kept out of `search` so that the loop reads flat)."""

    def __init__(self, space: SearchSpace, strategy: Strategy, storage: Storage, study: Study, evaluator: Any,
                 reward: Reward, budget: Budget, callbacks: Sequence[Callable[[SearchEvent], None]]):
        self.space, self.strategy, self.storage, self.study = space, strategy, storage, study
        self.evaluator, self.reward, self.budget, self.callbacks = evaluator, reward, budget, callbacks
        self.queue: deque[list[int]] = deque()
        self.pending: dict[Future, tuple[int, list[int], str, dict[str, Any]]] = {}
        self.waiting: dict[str, list[list[int]]] = {}  # arch in flight -> other proposals of it
        self.durations: list[float] = []
        self.repeats = 0
        self.started = time.monotonic()
        self.stop_reason = ""

    # -- budget ----------------------------------------------------------------------------
    def _can_start(self) -> bool:
        used = self.storage.count_trials(("running", "complete", "failed"))
        if self.budget.trials is not None and used >= self.budget.trials:
            self.stop_reason = f"{self.budget.trials} trials done"
            return False
        elapsed = time.monotonic() - self.started
        expected = statistics.median(self.durations) if self.durations else 0.0
        if elapsed + expected > self.budget.seconds:
            self.stop_reason = f"time budget of {self.budget.hours:g} h reached"
            return False
        if self.repeats >= self.budget.max_repeats:
            self.stop_reason = f"the strategy proposed {self.repeats} already-evaluated architectures in a row"
            return False
        return True

    def _emit(self, kind: str, trial: Trial | None, **info: Any) -> None:
        event = SearchEvent(kind, self.study, trial, time.monotonic() - self.started, self.budget, self.reward,
                            len(self.pending), info)
        for callback in self.callbacks:
            callback(event)

    # -- the loop --------------------------------------------------------------------------
    def run(self, pool: Executor) -> None:
        capacity = max(1, int(getattr(pool, "max_workers", 1) or 1))
        while True:
            while len(self.pending) < capacity and self._can_start():
                if not self.queue:
                    self.queue.extend(self.strategy.ask(capacity - len(self.pending)))
                self._start(self.queue.popleft(), pool)
            if not self.pending:
                break
            done, _ = wait(list(self.pending), timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                self._finish(future)
        log.info("search stopped: %s", self.stop_reason or "nothing left to run")

    def _start(self, tokens: list[int], pool: Executor) -> None:
        arch = self.space.decode(tokens)
        key = str(arch)
        if key in self.waiting:  # the same network is being evaluated: answer when it finishes
            self.waiting[key].append(tokens)
            self.repeats += 1
            return
        hit = self.storage.find_complete(key)
        if hit is not None:
            self.repeats += 1
            self.strategy.tell([tokens], [hit.reward])
            self.storage.save_strategy_state(self.strategy.state_dict(), self.strategy.num_told)
            self._emit("repeat", hit)
            return
        self.repeats = 0
        number = self.storage.create_trial(tokens, key)
        self._emit("start", self.storage.get_trial(number))
        info: dict[str, Any] = {}
        if isinstance(self.evaluator, Evaluator):
            try:
                latency_ms, latency_s, details = self.evaluator.measure_latency(arch)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - a device that fails is a failed trial, not a crash
                self._fail(number, tokens, key, f"latency: {type(exc).__name__}: {exc}")
                return
            info = {"latency_ms": latency_ms, "latency_seconds": latency_s, "extra": details}
        fn, args = self.evaluator.job(arch)
        self.waiting[key] = []
        self.pending[pool.submit(fn, *args)] = (number, tokens, key, info)

    def _finish(self, future: Future) -> None:
        number, tokens, key, info = self.pending.pop(future)
        try:
            result = future.result()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - worker errors become failed trials
            self._fail(number, tokens, key, f"{type(exc).__name__}: {exc}")
            return
        if not result.get("ok", True):
            self._fail(number, tokens, key, result.get("failure") or "training failed", result)
            return
        merged = {**result, **{k: v for k, v in info.items() if k != "extra"}}
        try:  # a user evaluator's figures were validated in the worker (check_user_result)
            reward = self.reward(merged["accuracy"], merged["latency_ms"])
        except ValueError as exc:
            self._fail(number, tokens, key, str(exc), result)
            return
        told = [tokens] + self.waiting.pop(key, [])
        self.strategy.tell(told, [reward] * len(told))
        known = {"params", "macs", "train_seconds", "latency_seconds"}
        extra = {**info.get("extra", {}), **{k: v for k, v in merged.items()
                                             if k not in known | {"ok", "accuracy", "latency_ms", "failure"}}}
        self.storage.complete_trial(number, merged["accuracy"], merged["latency_ms"], reward,
                                    strategy_state=self.strategy.state_dict(), n_told=self.strategy.num_told,
                                    extra=extra, **{k: merged[k] for k in known if merged.get(k) is not None})
        self.durations.append(float(merged.get("train_seconds", 0.0)) + float(merged.get("latency_seconds", 0.0)))
        self._emit("complete", self.storage.get_trial(number))

    def _fail(self, number: int, tokens: list[int], key: str, reason: str, result: dict | None = None) -> None:
        told = [tokens] + self.waiting.pop(key, [])
        self.strategy.tell(told, [None] * len(told))
        attrs = {k: result[k] for k in ("params", "macs", "train_seconds") if result and result.get(k) is not None}
        self.storage.fail_trial(number, reason[:2000], strategy_state=self.strategy.state_dict(),
                                n_told=self.strategy.num_told, **attrs)
        log.warning("trial %d failed: %s", number, reason.splitlines()[0] if reason else "")
        self._emit("failed", self.storage.get_trial(number))
