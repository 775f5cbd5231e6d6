"""`SQLiteStorage`: a study in one SQLite file (standard library `sqlite3`, WAL journal).

Every state change is its own committed transaction (synchronous=FULL), so `kill -9` at any
moment loses at most the trials that were running. WAL lets readers (a report command) read while
the search writes. Schema (version 1)::

    schema_version(version INTEGER, created_at REAL, library TEXT)      -- one row
    trials(number INTEGER PRIMARY KEY, state TEXT, tokens TEXT (JSON list), arch TEXT,
           accuracy, latency_ms, reward REAL, params, macs INTEGER,
           started_at, finished_at, train_seconds, latency_seconds REAL,
           failure TEXT, extra TEXT (JSON object))                      -- index on (arch, state)
    strategy_state(n_told INTEGER PRIMARY KEY, state TEXT (JSON), saved_at REAL)
    meta(key TEXT PRIMARY KEY, value TEXT (JSON))
    writer(slot INTEGER PRIMARY KEY, value TEXT (JSON))                 -- the writer lease; added to
                                                                        -- older files when a writer opens them
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from mnas import __version__
from mnas.study.storage import REQUEUE_REASON, Storage, finished_error, missing_error, older_state_error
from mnas.study.trial import Trial, TrialState, check_arch

__all__ = ["SCHEMA_VERSION", "SQLiteStorage"]

SCHEMA_VERSION = 1

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    library TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS trials (
    number INTEGER PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ({", ".join(repr(s.value) for s in TrialState)})),
    tokens TEXT NOT NULL,
    arch TEXT NOT NULL,
    accuracy REAL,
    latency_ms REAL,
    reward REAL,
    params INTEGER,
    macs INTEGER,
    started_at REAL,
    finished_at REAL,
    train_seconds REAL,
    latency_seconds REAL,
    failure TEXT,
    extra TEXT NOT NULL DEFAULT '{{}}'
);
CREATE INDEX IF NOT EXISTS trials_arch_state ON trials (arch, state);
CREATE INDEX IF NOT EXISTS trials_state ON trials (state);
CREATE TABLE IF NOT EXISTS strategy_state (
    n_told INTEGER PRIMARY KEY,
    state TEXT NOT NULL,
    saved_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
# Not part of version 1's first files, so it is created whenever a writer opens a study.
_WRITER_TABLE = "CREATE TABLE IF NOT EXISTS writer (slot INTEGER PRIMARY KEY CHECK (slot = 0), value TEXT NOT NULL)"

_COLUMNS = tuple(Trial.__dataclass_fields__)  # the trials table's columns, in the dataclass's order
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM trials"


def _path_from_url(url: str | os.PathLike[str]) -> str:
    """'sqlite:///rel/x.db' -> 'rel/x.db', 'sqlite:////abs/x.db' -> '/abs/x.db', 'sqlite://' -> memory."""
    text = os.fspath(url)
    if text.lower().startswith("sqlite:"):
        rest = text[len("sqlite:") :]
        if rest in ("", "//", "///:memory:"):
            return ":memory:"
        if not rest.startswith("///"):
            raise ValueError(f"bad SQLite URL {text!r}: expected 'sqlite:///relative/path.db' or 'sqlite:////abs/path.db'")
        return rest[3:]
    return text


def _snapshot(path: str) -> sqlite3.Connection | None:
    """An in-memory copy of a study no writer holds, so that read-only commands (report, export)
    leave no -wal/-shm files behind; None while a writer may be connected (WAL mode keeps a -wal
    file from a connection's first write until the last one closes), and the live file is read."""
    if os.path.exists(path + "-wal"):
        return None
    image = bytearray(Path(path).read_bytes())
    if not image or os.path.exists(path + "-wal"):  # empty, or a writer started while we read: the file
        return None
    if image[18:20] == b"\x02\x02":
        image[18:20] = b"\x01\x01"  # WAL header -> rollback journal: in-memory databases have no WAL
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.deserialize(bytes(image))
    except sqlite3.Error:
        conn.close()
        raise
    return conn


class StudyNotReadyError(ValueError):
    """A read-only open found the file but no tables yet: its writer is still creating it. Retrying
    in a moment succeeds; a `ValueError`, so callers that report bad paths report this too."""


class SQLiteStorage(Storage):
    """A study in a SQLite file. `path` is a file path or a 'sqlite:///...' URL; parent directories
    are created. `read_only=True` opens an existing study without ever writing to it."""

    def __init__(self, path: str | os.PathLike[str], *, read_only: bool = False, timeout: float = 30.0) -> None:
        self.path = _path_from_url(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        memory = self.path == ":memory:"
        try:
            if read_only:
                if memory or not Path(self.path).is_file():
                    raise ValueError(f"no study at '{self.path}' to open read-only: check the path")
                target, uri = Path(self.path).resolve().as_uri() + "?mode=ro", True
            else:
                if not memory:
                    self.path = os.path.expanduser(self.path)
                    Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                target, uri = self.path, False
            snapshot = _snapshot(self.path) if read_only else None
            self._conn = snapshot if snapshot is not None else sqlite3.connect(
                target, timeout=timeout, isolation_level=None, check_same_thread=False, uri=uri
            )
        except (OSError, sqlite3.Error) as exc:
            raise ValueError(f"cannot open study '{self.path}': {exc}") from None
        try:
            self._open_schema()
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise ValueError(f"cannot read study '{self.path}': {exc} (is it an mnas SQLite study?)") from None
        except BaseException:
            self._conn.close()
            raise

    def _open_schema(self) -> None:
        conn = self._conn
        if not self.read_only:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "schema_version" not in tables:
            if not tables and self.read_only:  # a writer creates the file a moment before its tables
                raise StudyNotReadyError(
                    f"study '{self.path}' is empty: nothing has been written to it yet (a search that is"
                    " starting creates its tables in a moment: retry; otherwise check the path)"
                )
            if tables:
                raise ValueError(
                    f"'{self.path}' is not an mnas study (no schema_version table): use a new file name"
                )
            with self._write() as c:
                for statement in _SCHEMA.split(";"):  # executescript() would commit early
                    if statement.strip():
                        c.execute(statement)
                if c.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                    row = (SCHEMA_VERSION, time.time(), f"mnas {__version__}")
                    c.execute("INSERT INTO schema_version VALUES (?, ?, ?)", row)
        version = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version is None or version > SCHEMA_VERSION:
            raise ValueError(
                f"study '{self.path}' has schema version {version}, newer than this mnas supports"
                f" ({SCHEMA_VERSION}): upgrade mnas to open it"
            )
        if not self.read_only:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "writer" not in tables:
                with self._write() as c:
                    c.execute(_WRITER_TABLE)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One committed transaction; BEGIN IMMEDIATE takes the write lock up front."""
        if self.read_only:
            raise ValueError(f"study '{self.path}' was opened read-only: open it without read_only to write")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- trials -----------------------------------------------------------------------------------
    def _create_trial(self, tokens: tuple[int, ...], arch: str, values: dict[str, Any]) -> int:
        row = {**values, "state": TrialState.RUNNING.value, "tokens": json.dumps(list(tokens)), "arch": arch}
        if "extra" in row:
            row["extra"] = json.dumps(row["extra"], sort_keys=True)
        cols = list(row)
        with self._write() as c:
            number = c.execute("SELECT COALESCE(MAX(number) + 1, 0) FROM trials").fetchone()[0]
            c.execute(
                f"INSERT INTO trials (number, {', '.join(cols)}) VALUES (?{', ?' * len(cols)})",
                (number, *row.values()),
            )
        return number

    def _update_running(
        self, number: int, state: TrialState | None, values: dict[str, Any], strategy: tuple[str, int] | None = None
    ) -> None:
        with self._write() as c:
            found = c.execute("SELECT state, extra FROM trials WHERE number = ?", (_number(number),)).fetchone()
            if found is None:
                raise missing_error(number)
            if found[0] != TrialState.RUNNING.value:
                raise finished_error(number, TrialState(found[0]))
            row = dict(values)
            if "extra" in row:
                row["extra"] = json.dumps({**json.loads(found[1]), **row["extra"]}, sort_keys=True)
            if state is not None:
                row["state"] = state.value
            if row:
                sets = ", ".join(f"{k} = ?" for k in row)  # keys come from a fixed list, not from users
                c.execute(f"UPDATE trials SET {sets} WHERE number = ?", (*row.values(), number))
            if strategy is not None:
                self._insert_strategy_state(c, *strategy)

    def requeue_running(self) -> list[Trial]:
        with self._write() as c:
            running = [_trial(r) for r in c.execute(f"{_SELECT} WHERE state = 'running' ORDER BY number")]
            now = time.time()
            c.execute(
                "UPDATE trials SET state = ?, finished_at = ?, failure = ? WHERE state = 'running'",
                (TrialState.REQUEUED.value, now, REQUEUE_REASON),
            )
        return [self._requeued(t, now) for t in running]

    @staticmethod
    def _requeued(trial: Trial, now: float) -> Trial:
        return replace(trial, state=TrialState.REQUEUED, finished_at=now, failure=REQUEUE_REASON)

    def get_trial(self, number: int) -> Trial:
        with self._lock:
            row = self._conn.execute(f"{_SELECT} WHERE number = ?", (_number(number),)).fetchone()
        if row is None:
            raise missing_error(number)
        return _trial(row)

    def _get_trials(self, states: tuple[TrialState, ...] | None) -> list[Trial]:
        sql, args = _SELECT, ()
        if states is not None:
            sql += f" WHERE state IN ({', '.join('?' * len(states))})"
            args = tuple(s.value for s in states)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY number", args).fetchall()
        return [_trial(r) for r in rows]

    def count_trials(self, states: Any = None) -> int:
        if states is not None:
            return super().count_trials(states)
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def find_complete(self, arch: Any) -> Trial | None:
        with self._lock:
            row = self._conn.execute(
                f"{_SELECT} WHERE arch = ? AND state = 'complete' ORDER BY number LIMIT 1", (check_arch(arch),)
            ).fetchone()
        return None if row is None else _trial(row)

    # -- strategy state and metadata --------------------------------------------------------------
    def _save_strategy_state(self, text: str, n_told: int) -> None:
        with self._write() as c:
            self._insert_strategy_state(c, text, n_told)

    def _insert_strategy_state(self, c: sqlite3.Connection, text: str, n_told: int) -> None:
        stored = c.execute("SELECT MAX(n_told) FROM strategy_state").fetchone()[0]
        if stored is not None and n_told < stored:
            raise older_state_error(n_told, stored)
        c.execute("INSERT OR REPLACE INTO strategy_state VALUES (?, ?, ?)", (n_told, text, time.time()))
        c.execute(
            "DELETE FROM strategy_state WHERE n_told NOT IN"
            " (SELECT n_told FROM strategy_state ORDER BY n_told DESC LIMIT ?)",
            (self.strategy_history,),
        )

    def _load_strategy_state(self) -> tuple[str, int] | None:
        with self._lock:
            row = self._conn.execute("SELECT state, n_told FROM strategy_state ORDER BY n_told DESC LIMIT 1").fetchone()
        return None if row is None else (row[0], row[1])

    def _set_meta(self, key: str, text: str) -> None:
        with self._write() as c:
            c.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, text))

    def _get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _all_meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta ORDER BY key").fetchall())

    def _swap_writer(self, fn: Any, write: bool = True) -> None:
        if not write:
            with self._lock:
                try:
                    row = self._conn.execute("SELECT value FROM writer WHERE slot = 0").fetchone()
                except sqlite3.OperationalError:  # an older file opened read-only: no lease table yet
                    row = None
            fn(None if row is None else json.loads(row[0]))
            return
        with self._write() as c:
            row = c.execute("SELECT value FROM writer WHERE slot = 0").fetchone()
            new = fn(None if row is None else json.loads(row[0]))
            if new is None:
                c.execute("DELETE FROM writer WHERE slot = 0")
            else:
                c.execute("INSERT OR REPLACE INTO writer VALUES (0, ?)", (json.dumps(new, sort_keys=True),))

    def integrity_check(self) -> str:
        """SQLite's own check of the file: 'ok' when the database is intact."""
        with self._lock:
            return "; ".join(r[0] for r in self._conn.execute("PRAGMA integrity_check"))

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.path!r})"


def _number(number: Any) -> int:
    if isinstance(number, bool) or not isinstance(number, int):
        raise missing_error(number)
    return number


def _trial(row: tuple[Any, ...]) -> Trial:
    data = dict(zip(_COLUMNS, row, strict=True))
    data["state"] = TrialState(data["state"])
    data["tokens"] = tuple(json.loads(data["tokens"]))
    data["extra"] = json.loads(data["extra"])
    return Trial(**data)
