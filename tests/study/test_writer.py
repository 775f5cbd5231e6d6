"""One writer per study across processes (issue 13 item 6): a second search is refused with a message
naming the first, and a writer killed with kill -9 is replaced at once."""

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mnas.study import SQLiteStorage, StudyBusyError

DATA = Path(__file__).resolve().parents[1] / "search" / "data"

HOLDER = textwrap.dedent("""
    import sys, time
    from mnas.study import SQLiteStorage
    from mnas.loop.lease import WriterLease
    with WriterLease(SQLiteStorage(sys.argv[1])):
        print("held", flush=True)
        time.sleep(120)
""")


def test_a_second_writer_is_refused_and_a_killed_one_replaced(tmp_path):
    db = tmp_path / "w.db"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        storage = SQLiteStorage(db)
        with pytest.raises(StudyBusyError, match=f"pid {proc.pid} on"):
            storage.acquire_writer()
        from mnas.loop import Budget, search

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "search"))
        from _search_helpers import SPACE, synthetic

        with pytest.raises(StudyBusyError, match="being written by another search"):
            search(SPACE, evaluate=synthetic, target=20, strategy="random", budget=Budget(trials=2), storage=str(db))
        assert storage.count_trials() == 0  # refused before touching a trial
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        started = time.monotonic()
        study = search(SPACE, evaluate=synthetic, target=20, strategy="random", budget=Budget(trials=2), storage=str(db))
        assert len(study.complete_trials) == 2
        assert time.monotonic() - started < 30  # not the 60 s lease: the dead pid is seen at once
        assert study.storage.get_writer() is None  # released at the end
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_study_from_before_the_lease_opens_read_only_and_takes_one(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript((DATA / "study_0_1_0.sql").read_text())
    with SQLiteStorage(db, read_only=True) as ro:
        assert ro.get_writer() is None and ro.count_trials() == 6
    with SQLiteStorage(db) as rw:
        rw.release_writer(rw.acquire_writer())
        assert rw.integrity_check() == "ok"
