"""Probe one-writer-per-study and worker cleanup (issue 13, items 6 and 7) with real processes.

    python benchmarks/probe_study.py --rounds 5

Three probes, each a bounded number of rounds with real `kill -9`:

* orphans: a search on a process pool is killed with SIGKILL while its workers run a task; handled
  when every worker process and the resource tracker have exited within `--grace` seconds.
* two-writers: two searches are started at the same moment on one study (new, then resumed,
  alternately); handled when exactly one runs, the other is refused with a message naming the
  first's pid, and no architecture was evaluated twice.
* recovery: a search is killed with SIGKILL and another started at once on the same study; handled
  when the second one takes the study over without waiting and finishes new trials.
* resume-cli (issue 21): `mnas search --resume` (the real CLI) started while another `mnas search
  --resume` runs on the same study, at three moments: while the first is still setting up (before it
  holds the writer lease), while it holds the lease, and just after it gave the lease up. The writer
  record is sampled every 20 ms, so each outcome is explained: handled when one writer at a time held
  the study, a search that found it held was refused (exit 2, naming the holder's pid), no
  architecture was evaluated twice and the budget was not overrun. `--cli-rounds 0` skips it.

Prints counts (tried / handled) and the measured times; `PYTHONPATH=<old checkout>/src` probes an
older mnas (before the writer lease the refusals are simply absent).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDY_BUSY_RC = 3


def _sleepy(arch) -> dict:
    """A candidate that takes a while (a kill lands while workers are busy)."""
    time.sleep(float(os.environ.get("PROBE_SLEEP", "0.2")))
    return _figures(arch)


def _figures(arch) -> dict:
    h = sum(ord(c) for c in str(arch))
    return {"accuracy": 0.5 + (h % 400) / 1000.0, "latency_ms": 5.0 + (h % 300) / 10.0}


def driver(db: str, executor: str) -> int:
    """One search on `db`; exit STUDY_BUSY_RC with the message when another writer holds it."""
    try:
        from mnas.loop import Budget, search
    except ImportError:  # an mnas from before the rename
        from mnas.search import Budget, search
    from mnas.space import MnasNetSpace

    try:
        search(MnasNetSpace(10, 224), evaluate=_sleepy, target=20, strategy="random", budget=Budget(trials=10_000),
               storage=db, executor=executor, workers=2 if executor == "process" else None, seed=0)
    except ValueError as exc:
        if "being written by another search" in str(exc):
            print(str(exc), file=sys.stderr, flush=True)
            return STUDY_BUSY_RC
        raise
    return 0


def _spawn(db: Path, executor: str = "local", sleep: float = 0.2) -> subprocess.Popen:
    # stderr goes to a file, not a pipe: orphaned workers would hold a pipe open after the driver died.
    env = {**os.environ, "PROBE_SLEEP": str(sleep), "OMP_NUM_THREADS": "1"}
    log = open(f"{db}.{time.monotonic_ns()}.err", "w+")  # noqa: SIM115 - read back by _stderr
    proc = subprocess.Popen([sys.executable, __file__, "--driver", str(db), executor], stdout=subprocess.DEVNULL,
                            stderr=log, text=True, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def _stderr(proc: subprocess.Popen) -> str:
    proc.log.seek(0)  # type: ignore[attr-defined]
    return proc.log.read()  # type: ignore[attr-defined]


def _count(db: Path, state: str | None = None) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            sql = "SELECT COUNT(*) FROM trials" + (" WHERE state = ?" if state else "")
            return conn.execute(sql, (state,) if state else ()).fetchone()[0]
    except sqlite3.Error:
        return 0


def _duplicates(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT COUNT(*) - COUNT(DISTINCT arch) FROM trials WHERE state = 'complete'").fetchone()[0]


def _wait_for(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def probe_orphans(root: Path, rounds: int, grace: float) -> tuple[int, int, list[float]]:
    handled, times = 0, []
    for r in range(rounds):
        db = root / f"orphans{r}.db"
        proc = _spawn(db, "process", sleep=30.0)
        # Workers (2) and the resource tracker are children of the driver once a trial runs.
        ok = _wait_for(lambda db=db, proc=proc: _count(db, "running") >= 2 and len(_children(proc.pid)) >= 3, 120)
        kids = _children(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        killed = time.monotonic()
        gone = _wait_for(lambda kids=kids: not any(_alive(k) for k in kids), grace)
        times.append(time.monotonic() - killed)
        handled += ok and gone
        for k in kids:  # leave nothing behind, whatever happened
            if _alive(k):
                os.kill(k, signal.SIGKILL)
        print(f"  orphans round {r}: {len(kids)} children, {'all exited' if gone else 'STILL ALIVE'} "
              f"{times[-1]:.1f} s after the kill", flush=True)
    return rounds, handled, times


def probe_two_writers(root: Path, rounds: int) -> tuple[int, int]:
    handled = 0
    for r in range(rounds):
        db = root / f"two{r}.db"
        resumed = r % 2 == 1
        if resumed:  # a study with a few trials, as `--resume` would find it
            first = _spawn(db)
            _wait_for(lambda db=db: _count(db, "complete") >= 3, 60)
            first.send_signal(signal.SIGINT)
            first.wait(timeout=60)
        a, b = _spawn(db), _spawn(db)
        time.sleep(4.0)
        busy = []
        for proc in (a, b):
            if proc.poll() == STUDY_BUSY_RC:
                busy.append(proc)
        running = [p for p in (a, b) if p.poll() is None]
        messages = [_stderr(p) for p in busy]
        for p in running:
            _kill(p)
        other = {a.pid: b.pid, b.pid: a.pid}
        named = all(f"pid {other[p.pid]}" in m for p, m in zip(busy, messages, strict=True))
        dups = _duplicates(db)
        ok = len(busy) == 1 and len(running) == 1 and named and dups == 0
        handled += ok
        print(f"  two-writers round {r} ({'resumed' if resumed else 'new'} study): refused {len(busy)}, ran "
              f"{len(running)}, message names the other: {named}, duplicate evaluations {dups}", flush=True)
    return rounds, handled


def probe_recovery(root: Path, rounds: int) -> tuple[int, int, list[float]]:
    handled, times = 0, []
    for r in range(rounds):
        db = root / f"recover{r}.db"
        first = _spawn(db)
        _wait_for(lambda db=db: _count(db, "complete") >= 3, 60)
        _kill(first)
        before = _count(db, "complete")
        started = time.monotonic()
        second = _spawn(db)
        progressed = _wait_for(lambda db=db, n=before + 2, p=second: _count(db, "complete") >= n or p.poll() is not None, 60)
        times.append(time.monotonic() - started)
        ok = progressed and second.poll() is None
        _kill(second)
        handled += ok
        print(f"  recovery round {r}: {'took over' if ok else f'FAILED (rc {second.returncode})'}, two new trials "
              f"{times[-1]:.1f} s after the restart", flush=True)
    return rounds, handled, times


def _writer_pid(db: Path) -> int | None | str:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            row = conn.execute("SELECT value FROM writer WHERE slot = 0").fetchone()
    except sqlite3.Error:
        return "?"
    return None if row is None else int(json.loads(row[0])["pid"])


CLI_SEARCH = ["--quiet", "--strategy", "random", "--epochs", "1", "--max-train-seconds", "2", "--seed", "0"]


def _cli(db: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(f"{db}.{time.monotonic_ns()}.err", "w+")  # noqa: SIM115 - read back by _stderr
    proc = subprocess.Popen([sys.executable, "-m", "mnas.cli", "search", "--storage", str(db), *CLI_SEARCH, *extra],
                            stdout=subprocess.DEVNULL, stderr=log, text=True, env=env)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def probe_resume_cli(root: Path, rounds: int, extra_trials: int = 3) -> tuple[int, int]:
    """`mnas search --resume` twice on one study; the second started at a chosen moment of the first."""
    handled = 0
    moments = ("setup", "holding", "released")
    for r in range(rounds):
        moment = moments[r % 3]
        db = root / f"resume{r}.db"
        made = _cli(db, "--trials", "2")
        made.wait(timeout=600)
        if made.returncode != 0:
            print(f"  resume-cli round {r}: could not make the study (rc {made.returncode}): "
                  f"{_stderr(made).strip()[-200:]}", flush=True)
            continue
        budget = 2 + extra_trials
        t0 = time.monotonic()
        a = _cli(db, "--resume", "--trials", str(budget))
        timeline: list[tuple[float, object]] = []
        b: subprocess.Popen | None = None
        b_started, b_writer_when_started, a_held, a_held_when_b_started = 0.0, None, False, False
        deadline = t0 + 600
        while time.monotonic() < deadline:
            now = time.monotonic() - t0
            w = _writer_pid(db)
            if not timeline or timeline[-1][1] != w:
                timeline.append((now, w))
            a_held = a_held or w == a.pid
            start = b is None and ((moment == "setup" and now >= 0.2) or (moment == "holding" and w == a.pid)
                                   or (moment == "released" and a_held and w != a.pid) or a.poll() is not None)
            if start:
                b, b_started = _cli(db, "--resume"), now
                b_writer_when_started, a_held_when_b_started = w, a_held
            if b is not None and a.poll() is not None and b.poll() is not None:
                break
            time.sleep(0.02)
        for p in (a, b):
            if p is not None and p.poll() is None:
                _kill(p)
        assert b is not None
        name = {a.pid: "A", b.pid: "B"}
        line = [(round(t, 2), name.get(w, w)) for t, w in timeline]
        # one writer at a time: the record never switched straight from one holder to the other
        switched = any(x in name and y in name and x != y for (_, x), (_, y) in zip(timeline, timeline[1:], strict=False))
        refused = {p: p.returncode == 2 and "being written by another search" in _stderr(p)
                   and f"pid {(b if p is a else a).pid}" in _stderr(p) for p in (a, b)}
        if b_writer_when_started == a.pid:
            why = "B started while A held the lease"
            ok = refused[b] and a.returncode == 0
        elif a_held_when_b_started:
            why = "B started after A gave the lease up (A's search had finished)"
            ok = b.returncode == 0 and a.returncode == 0
        else:
            first = next((name[w] for _, w in timeline if w in name), None)
            why = f"B started while A was still setting up; {first or 'nobody'} reached the lease first"
            ok = (a.returncode == 0 and refused[b]) if first == "A" else (b.returncode == 0 and refused[a])
        dups, n = _duplicates(db), _count(db, "complete") + _count(db, "failed")
        ok = ok and not switched and dups == 0 and n <= budget
        handled += ok
        print(f"  resume-cli round {r} (B at {moment}, started {b_started:.1f} s): {why}; A rc {a.returncode}, "
              f"B rc {b.returncode}; {'ok' if ok else 'BAD'}; trials {n}/{budget}, duplicates {dups}; "
              f"writer timeline {line}{'' if ok else '; B: ' + _stderr(b).strip()[-160:]}",
              flush=True)
    return rounds, handled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--grace", type=float, default=15.0, help="seconds workers may take to exit (default 15)")
    parser.add_argument("--cli-rounds", type=int, default=3,
                        help="rounds of the resume-cli probe (real `mnas search` runs, ~1 min each; default 3)")
    parser.add_argument("--only", choices=("orphans", "two-writers", "recovery", "resume-cli"), action="append",
                        help="run only these probes (repeatable; default all)")
    parser.add_argument("--driver", nargs=2, metavar=("DB", "EXECUTOR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.driver:
        sys.exit(driver(*args.driver))
    import mnas

    print(f"mnas {mnas.__version__} from {Path(mnas.__file__).parent}; load: {os.getloadavg()}", flush=True)
    only = set(args.only or ("orphans", "two-writers", "recovery", "resume-cli"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if "orphans" in only:
            n, ok, times = probe_orphans(root, args.rounds, args.grace)
            print(f"orphans: tried {n}, handled {ok}; exit after kill: median {sorted(times)[len(times) // 2]:.1f} s, "
                  f"max {max(times):.1f} s", flush=True)
        if "two-writers" in only:
            n2, ok2 = probe_two_writers(root, args.rounds)
            print(f"two-writers: tried {n2}, handled {ok2}", flush=True)
        if "recovery" in only:
            n3, ok3, times3 = probe_recovery(root, args.rounds)
            print(f"recovery after kill -9: tried {n3}, handled {ok3}; two new trials after the restart: median "
                  f"{sorted(times3)[len(times3) // 2]:.1f} s", flush=True)
        if "resume-cli" in only and args.cli_rounds > 0:
            n4, ok4 = probe_resume_cli(root, args.cli_rounds)
            print(f"resume-cli (a second mnas search --resume while the first runs): tried {n4}, handled {ok4}",
                  flush=True)
    print(f"load after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
