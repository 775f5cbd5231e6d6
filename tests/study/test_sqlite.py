"""SQLite specifics: files, URLs, schema versions, readers beside a writer, and kill -9 safety."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mnas.study import SCHEMA_VERSION, InMemoryStorage, SQLiteStorage, Study, TrialState, get_storage

WRITER = Path(__file__).with_name("_crash_writer.py")


def test_everything_survives_reopening(tmp_path):
    path = tmp_path / "deep" / "dir" / "study.db"  # parent directories are created
    with SQLiteStorage(path) as s:
        n = s.create_trial([1, 2], "a", extra={"k": 1})
        s.complete_trial(n, 0.5, 2.0, 0.4, params=7)
        s.fail_trial(s.create_trial([3], "b"), "oom")
        s.create_trial([4], "c")
        s.save_strategy_state({"theta": [1.0]}, n_told=1)
        s.set_meta("target_ms", 20)
        before = s.get_trials()
    with SQLiteStorage(f"sqlite:///{path}") as s:
        assert s.get_trials() == before
        assert s.load_strategy_state() == ({"theta": [1.0]}, 1)
        assert s.get_meta("target_ms") == 20
        assert s.find_complete("a").number == 0
        assert [t.number for t in s.requeue_running()] == [2]
        assert s.create_trial([5], "d") == 3


def test_wal_journal_and_schema_version(tmp_path):
    SQLiteStorage(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")} >= {"trials_arch_state"}
    conn.close()


def test_newer_schema_is_refused(tmp_path):
    SQLiteStorage(tmp_path / "s.db").close()
    conn = sqlite3.connect(tmp_path / "s.db")
    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match=rf"schema version {SCHEMA_VERSION + 1}, newer .*upgrade mnas"):
        SQLiteStorage(tmp_path / "s.db")


def test_files_that_are_not_studies(tmp_path):
    (tmp_path / "junk.db").write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(ValueError, match="cannot read study .*junk.db"):
        SQLiteStorage(tmp_path / "junk.db")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE users (name TEXT)")
    other.commit()
    other.close()
    with pytest.raises(ValueError, match="not an mnas study"):
        SQLiteStorage(tmp_path / "other.db")
    with pytest.raises(ValueError, match="cannot open study"):
        SQLiteStorage(tmp_path)  # a directory
    with pytest.raises(ValueError, match="no study at"):
        SQLiteStorage(tmp_path / "missing.db", read_only=True)
    assert not (tmp_path / "missing.db").exists()


def test_a_file_its_writer_has_not_filled_yet_is_reported_as_empty_not_foreign(tmp_path):
    # CI once polled a study the instant `mnas search` had created the file but not its tables, and the
    # reader called it "not an mnas study: use a new file name": wrong advice for a study being created.
    from mnas.study import StudyNotReadyError

    (tmp_path / "zero.db").touch()
    wal = sqlite3.connect(tmp_path / "wal.db")
    wal.execute("PRAGMA journal_mode=WAL")  # what the writer does first, before its schema transaction
    wal.close()
    for name in ("zero.db", "wal.db"):
        with pytest.raises(StudyNotReadyError, match=r"is empty: nothing has been written to it yet.*retry"):
            SQLiteStorage(tmp_path / name, read_only=True)
        writer = SQLiteStorage(tmp_path / name)  # a writer makes the empty file a study, as before
        writer.create_trial([1], "a")
        writer.close()
        assert SQLiteStorage(tmp_path / name, read_only=True).count_trials() == 1


def test_reader_reads_while_writer_writes(tmp_path):
    writer = SQLiteStorage(tmp_path / "s.db")
    reader = SQLiteStorage(tmp_path / "s.db", read_only=True)
    n = writer.create_trial([1], "a")
    assert reader.get_trial(n).state is TrialState.RUNNING
    writer.complete_trial(n, 0.5, 2.0, 0.4)
    assert reader.find_complete("a").reward == 0.4
    assert Study(reader).best().number == n
    with pytest.raises(ValueError, match="read-only"):
        reader.create_trial([2], "b")
    reader.close()
    writer.close()


def test_get_storage_urls(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert isinstance(get_storage(None), InMemoryStorage)
    assert isinstance(get_storage("memory://"), InMemoryStorage)
    mem = InMemoryStorage()
    assert get_storage(mem) is mem
    urls = [("sqlite:///runs/x.db", tmp_path / "runs" / "x.db"), (f"sqlite:///{tmp_path}/a.db", tmp_path / "a.db"),
            ("plain/y.db", tmp_path / "plain" / "y.db"), (tmp_path / "p.db", tmp_path / "p.db")]
    for url, file in urls:
        storage = get_storage(url)
        assert isinstance(storage, SQLiteStorage) and file.is_file(), url
        storage.close()
    assert get_storage("sqlite://").create_trial([1], "a") == 0  # SQLite in memory
    for url, message in [("postgresql://host/db", "unknown storage URL scheme 'postgresql'"),
                         ("redis:x", "unknown storage URL scheme 'redis'"), ("sqlite://rel.db", "bad SQLite URL"),
                         (42, "storage must be")]:
        with pytest.raises(ValueError, match=message):
            get_storage(url)


def _check_study(path: Path) -> list[int]:
    """Integrity after a kill: every complete trial intact, strategy state consistent. Returns the
    numbers that were left running."""
    with SQLiteStorage(path, read_only=True) as reader:  # a report may open it first
        seen = reader.get_trials()
    storage = SQLiteStorage(path)
    assert storage.integrity_check() == "ok"
    trials = storage.get_trials()
    assert trials == seen
    assert [t.number for t in trials] == list(range(len(trials)))
    finished = set()
    for t in trials:
        assert t.arch == f"arch-{t.number}" and t.tokens == (1, 2, 3)
        if t.state is TrialState.COMPLETE:
            n = t.number
            assert (t.accuracy, t.latency_ms, t.reward, t.params) == (n / 1000, 1.0 + n, n / 2000, 10 * n)
            assert t.extra == {"n": n, "pad": "x" * (n % 50)} and t.latency_seconds == 0.5
            assert t.finished_at >= t.started_at
        if t.state in (TrialState.COMPLETE, TrialState.FAILED):
            finished.add(t.number)
        if t.state is TrialState.FAILED:
            assert t.failure == f"failure {t.number}" and t.number % 5 == 4
    running = [t.number for t in trials if t.state is TrialState.RUNNING]
    assert len(running) <= 1  # the writer runs one trial at a time
    loaded = storage.load_strategy_state()
    if loaded is not None:
        state, n_told = loaded
        assert n_told == len(state["told"]) and set(state["told"]) <= finished
        missing = finished - set(state["told"])  # only a kill between the two steps leaves one out
        assert missing <= {max(finished)} and all(n % 5 == 3 for n in missing)
    else:
        assert finished == set()
    assert [t.number for t in storage.requeue_running()] == running
    assert storage.get_trials("running") == []
    storage.close()
    return running


def test_kill_9_loses_at_most_the_running_trial(tmp_path):
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed={seed}")  # shown on failure, to replay the same kill moments
    path = tmp_path / "runs" / "crash.db"
    total_requeued = 0
    for _ in range(4):
        proc = subprocess.Popen([sys.executable, str(WRITER), str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "ready"
            for _ in range(rng.randrange(30)):  # let it write a random number of trials first
                proc.stdout.readline()
            with SQLiteStorage(path, read_only=True) as reader:  # reading beside the writer
                assert reader.count_trials() >= 0 and reader.integrity_check() == "ok"
            time.sleep(rng.uniform(0.0, 0.05))
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert proc.returncode == -signal.SIGKILL
        total_requeued += len(_check_study(path))
    with SQLiteStorage(path) as storage:
        trials = storage.get_trials()
        assert len(storage.get_trials("requeued")) == total_requeued
        assert len(trials) > 0 and len(storage.get_trials("complete")) > 0
