"""`Storage`: the contract every study storage keeps, `InMemoryStorage`, and `get_storage`."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from mnas.study.trial import (
    FLOAT_ATTRS,
    INT_ATTRS,
    Trial,
    TrialState,
    check_arch,
    check_attrs,
    check_tokens,
    dumps_json,
)

__all__ = ["InMemoryStorage", "Storage", "StatesArg", "StudyBusyError", "get_storage"]

StatesArg = str | TrialState | Iterable[str | TrialState] | None
_ATTRS = FLOAT_ATTRS + INT_ATTRS + ("extra",)
REQUEUE_REASON = "requeued: the search stopped while this trial was running"
WRITER_TTL = 60.0  # seconds without a heartbeat after which a writer on another host counts as dead


class StudyBusyError(ValueError):
    """Another live process holds the study's writer lease (one writer per study)."""


class Storage:
    """Where a study keeps its trials, the strategy's state and its metadata.

    Contract (every implementation; `mnas.study.testing` checks it):

    * Trials are numbered 0, 1, 2, ... in creation order; numbers are never reused.
    * `create_trial` stores a trial in state RUNNING. The only transitions are RUNNING -> COMPLETE
      (`complete_trial`), RUNNING -> FAILED (`fail_trial`) and RUNNING -> REQUEUED
      (`requeue_running`, on resume: the trial is kept for the record and its architecture is
      re-evaluated as a new trial). A finished trial (COMPLETE, FAILED, REQUEUED) never changes:
      any write to it is a ValueError. `update_trial` may add attributes to a RUNNING trial.
    * `extra` dicts are merged (new keys win); every other attribute written replaces the old one.
    * Every write is atomic and durable on return: a killed process loses at most the trials that
      were RUNNING, which `requeue_running` recovers.
    * Values are copied in and out (JSON round trip): mutating what you passed or got back never
      changes the store. NumPy scalars and arrays are stored as numbers and lists.
    * Threads: calls are serialised by a lock, so one process may call from any thread. There is
      one writer per study (the search driver); readers (a report command, a notebook) may open
      the same study and read while a search writes.
    * One writer: a search holds the study's writer lease (`acquire_writer`, renewed by
      `heartbeat`, given up by `release_writer`). While a live process holds it, acquiring it is a
      `StudyBusyError` naming that process; a holder that died (its process is gone on this host,
      or no heartbeat for `ttl` seconds) is replaced at once.
    """

    strategy_history = 3  # how many strategy-state versions a storage keeps

    # -- trials: writes (validated here, stored by the subclass) ---------------------------------
    def create_trial(self, tokens: Sequence[int], arch: Any, **attrs: Any) -> int:
        """Store a new RUNNING trial and return its number. `arch` is the canonical text (an
        `Arch` is converted with `str`); `attrs` are any of the trial's optional attributes."""
        values = check_attrs(attrs, _ATTRS)
        values.setdefault("started_at", time.time())
        return self._create_trial(check_tokens(tokens), check_arch(arch), values)

    def update_trial(self, number: int, **attrs: Any) -> None:
        """Add attributes to a RUNNING trial (e.g. its latency before training ends)."""
        self._update_running(number, None, check_attrs(attrs, _ATTRS))

    def complete_trial(
        self, number: int, accuracy: float, latency_ms: float, reward: float, *,
        strategy_state: Mapping[str, Any] | None = None, n_told: int | None = None, **attrs: Any,
    ) -> None:
        """RUNNING -> COMPLETE with its results; `finished_at` defaults to now. Given
        `strategy_state` and `n_told`, the strategy's state is saved in the same transaction, so a
        kill can never leave a result stored but untold (or told but not stored)."""
        required = {"accuracy": accuracy, "latency_ms": latency_ms, "reward": reward}
        for key, value in required.items():
            if value is None:
                raise ValueError(f"complete_trial({number}) needs {key}: fail the trial if there is none")
        values = check_attrs({**attrs, **required}, _ATTRS)
        values.setdefault("finished_at", time.time())
        self._update_running(number, TrialState.COMPLETE, values, _strategy_arg(strategy_state, n_told))

    def fail_trial(
        self, number: int, reason: str, *,
        strategy_state: Mapping[str, Any] | None = None, n_told: int | None = None, **attrs: Any,
    ) -> None:
        """RUNNING -> FAILED with a reason (one line is best); partial results may be given too, and
        the strategy's state as in `complete_trial`."""
        values = check_attrs(attrs, _ATTRS)
        values["failure"] = str(reason).strip() or "unknown failure"
        values.setdefault("finished_at", time.time())
        self._update_running(number, TrialState.FAILED, values, _strategy_arg(strategy_state, n_told))

    def requeue_running(self) -> list[Trial]:
        """Mark every RUNNING trial REQUEUED (a crashed or killed search left them) and return them,
        ordered by number, so the driver re-evaluates their tokens first as new trials."""
        raise NotImplementedError

    # -- trials: reads --------------------------------------------------------------------------
    def get_trial(self, number: int) -> Trial:
        """The trial with this number; ValueError if there is none."""
        raise NotImplementedError

    def get_trials(self, states: StatesArg = None) -> list[Trial]:
        """All trials (or those in `states`), ordered by number."""
        return self._get_trials(_parse_states(states))

    def find_complete(self, arch: Any) -> Trial | None:
        """The first COMPLETE trial of this architecture (dedup), or None."""
        raise NotImplementedError

    def count_trials(self, states: StatesArg = None) -> int:
        return len(self.get_trials(states))

    # -- strategy state and metadata ------------------------------------------------------------
    def save_strategy_state(self, state: Mapping[str, Any], n_told: int) -> None:
        """Store the strategy's state after it was told `n_told` results. Saving an older version
        than the stored one is a ValueError; saving the same `n_told` again replaces it."""
        self._save_strategy_state(*_strategy_arg(state, n_told))

    def load_strategy_state(self) -> tuple[dict[str, Any], int] | None:
        """The latest saved strategy state and its `n_told`, or None if none was saved."""
        found = self._load_strategy_state()
        return None if found is None else (json.loads(found[0]), found[1])

    def set_meta(self, key: str, value: Any) -> None:
        """Set a study-level JSON value (search config, space settings, reward, target, device)."""
        if not isinstance(key, str) or not key:
            raise ValueError(f"a metadata key must be a non-empty string, got {key!r}")
        self._set_meta(key, dumps_json(value, f"metadata {key!r}"))

    def get_meta(self, key: str, default: Any = None) -> Any:
        text = self._get_meta(key)
        return default if text is None else json.loads(text)

    def get_all_meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self._all_meta().items()}

    # -- one writer per study ---------------------------------------------------------------------
    def acquire_writer(self, ttl: float = WRITER_TTL, *, name: str = "mnas search") -> str:
        """Take the writer lease and return its id; StudyBusyError if a live process holds it."""
        me = {"id": uuid.uuid4().hex, "pid": os.getpid(), "host": socket.gethostname(), "name": name,
              "since": time.time(), "heartbeat": time.time(), "ttl": float(ttl)}

        def take(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is not None and writer_alive(current):
                raise StudyBusyError(busy_message(self, current))
            return me

        self._swap_writer(take)
        return me["id"]

    def heartbeat(self, lease: str) -> bool:
        """Renew the lease; False if it was lost (another process took the study over)."""
        held = []

        def renew(current: dict[str, Any] | None) -> dict[str, Any] | None:
            if current is None or current.get("id") != lease:
                return current
            held.append(True)
            return {**current, "heartbeat": time.time()}

        self._swap_writer(renew)
        return bool(held)

    def release_writer(self, lease: str) -> None:
        """Give the lease up (if this holder still has it)."""
        self._swap_writer(lambda current: None if current is not None and current.get("id") == lease else current)

    def get_writer(self) -> dict[str, Any] | None:
        """Who holds the writer lease (pid, host, since, heartbeat), or None."""
        found = []
        self._swap_writer(lambda current: found.append(current) or current, write=False)
        return found[0] if found else None

    def _swap_writer(self, fn: Any, write: bool = True) -> None:
        """Atomically replace the writer record by `fn(current)` (None: no writer)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release resources; the storage is not used afterwards."""

    def __enter__(self) -> Storage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what implementations provide -----------------------------------------------------------
    def _create_trial(self, tokens: tuple[int, ...], arch: str, values: dict[str, Any]) -> int:
        raise NotImplementedError

    def _update_running(
        self, number: int, state: TrialState | None, values: dict[str, Any], strategy: tuple[str, int] | None = None
    ) -> None:
        """Atomically: check the trial is RUNNING, write `values` (merging `extra`), set `state`,
        and save `strategy` (state text, n_told) if given — all of it or none of it."""
        raise NotImplementedError

    def _get_trials(self, states: tuple[TrialState, ...] | None) -> list[Trial]:
        raise NotImplementedError

    def _save_strategy_state(self, text: str, n_told: int) -> None:
        raise NotImplementedError

    def _load_strategy_state(self) -> tuple[str, int] | None:
        raise NotImplementedError

    def _set_meta(self, key: str, text: str) -> None:
        raise NotImplementedError

    def _get_meta(self, key: str) -> str | None:
        raise NotImplementedError

    def _all_meta(self) -> dict[str, str]:
        raise NotImplementedError


def _strategy_arg(state: Mapping[str, Any] | None, n_told: int | None) -> tuple[str, int] | None:
    if state is None and n_told is None:
        return None
    if not isinstance(state, Mapping):
        raise ValueError(f"a strategy state must be a dict, got {type(state).__name__}")
    if isinstance(n_told, bool) or not isinstance(n_told, int) or n_told < 0:
        raise ValueError(f"n_told={n_told!r}: expected the number of results told, an integer >= 0")
    return dumps_json(dict(state), "the strategy state"), n_told


def _parse_states(states: StatesArg) -> tuple[TrialState, ...] | None:
    if states is None:
        return None
    if isinstance(states, str):
        states = [states]
    return tuple(TrialState.parse(s) for s in states)


def writer_alive(record: dict[str, Any], now: float | None = None) -> bool:
    """Whether the process in a writer record still holds its lease: its heartbeat is recent and,
    when it runs on this host, its process exists (so a killed writer is replaced at once)."""
    now = time.time() if now is None else now
    if now - float(record.get("heartbeat", 0.0)) > float(record.get("ttl", WRITER_TTL)):
        return False
    if record.get("host") == socket.gethostname():
        return pid_alive(int(record.get("pid", -1)))
    return True


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    except OSError:
        return False
    try:  # a zombie (killed, not yet reaped by its parent) is dead for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def busy_message(storage: Any, record: dict[str, Any]) -> str:
    since = time.strftime("%H:%M:%S", time.localtime(float(record.get("since", 0.0))))
    ago = max(0.0, time.time() - float(record.get("heartbeat", 0.0)))
    return (f"study {storage!r} is being written by another search ({record.get('name', 'mnas search')}, pid "
            f"{record.get('pid')} on {record.get('host')}, since {since}, last heartbeat {ago:.0f} s ago): "
            "one writer per study; wait for it or stop it (a writer that died is detected at once on this host, "
            f"after {float(record.get('ttl', WRITER_TTL)):.0f} s without a heartbeat elsewhere)")


def finished_error(number: int, state: TrialState) -> ValueError:
    return ValueError(f"trial {number} is {state.value}: a finished trial never changes")


def missing_error(number: int) -> ValueError:
    return ValueError(f"no trial {number} in this study")


def older_state_error(n_told: int, stored: int) -> ValueError:
    return ValueError(f"strategy state for n_told={n_told} is older than the stored one (n_told={stored})")


class InMemoryStorage(Storage):
    """A storage in this process's memory, for tests and notebooks; gone when the process ends."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._trials: list[Trial] = []
        self._first_complete: dict[str, int] = {}
        self._states: dict[int, str] = {}
        self._meta: dict[str, str] = {}
        self._writer: dict[str, Any] | None = None

    def _swap_writer(self, fn: Any, write: bool = True) -> None:
        with self._lock:
            new = fn(None if self._writer is None else dict(self._writer))
            if write:
                self._writer = None if new is None else dict(new)

    def _create_trial(self, tokens: tuple[int, ...], arch: str, values: dict[str, Any]) -> int:
        with self._lock:
            number = len(self._trials)
            self._trials.append(Trial(number, TrialState.RUNNING, tokens, arch, **values))
            return number

    def _update_running(
        self, number: int, state: TrialState | None, values: dict[str, Any], strategy: tuple[str, int] | None = None
    ) -> None:
        with self._lock:
            old = self._get(number)
            if old.state is not TrialState.RUNNING:
                raise finished_error(number, old.state)
            if strategy is not None:
                self._save_strategy_state(*strategy)  # checks first, so a refusal changes nothing
            if "extra" in values:
                values = {**values, "extra": {**old.extra, **values["extra"]}}
            new = replace(old, **values, state=state or old.state)
            self._trials[number] = new
            if new.state is TrialState.COMPLETE:
                self._first_complete.setdefault(new.arch, number)

    def requeue_running(self) -> list[Trial]:
        with self._lock:
            now = time.time()
            out = []
            for t in self._trials:
                if t.state is TrialState.RUNNING:
                    new = replace(t, state=TrialState.REQUEUED, finished_at=now, failure=REQUEUE_REASON)
                    self._trials[t.number] = new
                    out.append(_copy(new))
            return out

    def get_trial(self, number: int) -> Trial:
        with self._lock:
            return _copy(self._get(number))

    def _get(self, number: int) -> Trial:
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < len(self._trials):
            raise missing_error(number)
        return self._trials[number]

    def _get_trials(self, states: tuple[TrialState, ...] | None) -> list[Trial]:
        with self._lock:
            return [_copy(t) for t in self._trials if states is None or t.state in states]

    def find_complete(self, arch: Any) -> Trial | None:
        with self._lock:
            number = self._first_complete.get(check_arch(arch))
            return None if number is None else _copy(self._trials[number])

    def _save_strategy_state(self, text: str, n_told: int) -> None:
        with self._lock:
            if self._states and n_told < max(self._states):
                raise older_state_error(n_told, max(self._states))
            self._states[n_told] = text
            for old in sorted(self._states)[: -self.strategy_history]:
                del self._states[old]

    def _load_strategy_state(self) -> tuple[str, int] | None:
        with self._lock:
            if not self._states:
                return None
            n_told = max(self._states)
            return self._states[n_told], n_told

    def _set_meta(self, key: str, text: str) -> None:
        with self._lock:
            self._meta[key] = text

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            return self._meta.get(key)

    def _all_meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._meta)

    def __repr__(self) -> str:
        return f"InMemoryStorage({len(self._trials)} trials)"


def _copy(trial: Trial) -> Trial:
    # Trials are frozen; only `extra` is mutable, so that is all that needs copying.
    return replace(trial, extra=json.loads(json.dumps(trial.extra)))


_MEMORY = ("memory", "memory://", ":memory:", "inmemory")


def get_storage(url: Storage | str | os.PathLike[str] | None) -> Storage:
    """A storage from a URL: None or "memory://" -> InMemoryStorage; "sqlite:///relative/x.db",
    "sqlite:////absolute/x.db" or a plain file path -> SQLiteStorage; a Storage is returned as is."""
    if url is None:
        return InMemoryStorage()
    if isinstance(url, Storage):
        return url
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise ValueError(f"storage must be a URL, a path, a Storage or None, got {type(url).__name__}")
    from mnas.study.sqlite import SQLiteStorage

    text = url.strip()
    if text.lower() in _MEMORY:
        return InMemoryStorage()
    scheme, sep, _ = text.partition("://")
    if not sep:
        scheme, sep, _ = text.partition(":")
        # "C:\runs\x.db" and "runs/x.db" are paths; "postgres:..." is an unknown scheme.
        if not sep or len(scheme) == 1 or not scheme.isalnum():
            return SQLiteStorage(text)
    if scheme.lower() == "sqlite":
        return SQLiteStorage(text)
    raise ValueError(
        f"unknown storage URL scheme {scheme!r} in {url!r}: use 'sqlite:///path/to/study.db', a file path,"
        " or None for an in-memory study"
    )
