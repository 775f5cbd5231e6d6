"""`mnas search` CLI: --max-* limits, an unreachable --url, --resume without --trials."""

from __future__ import annotations

import json
import socket

import pytest

from mnas.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAST = ["--data", "digits", "--reward", "accuracy", "--backend", "torch", "--strategy", "random", "--epochs", "0.05",
        "--quiet"]


def test_limits_no_candidate_meets_them_none_trained(tmp_path, capsys):
    db = tmp_path / "s.db"
    code = main(["search", *FAST, "--trials", "1", "--max-params", "1k", "--storage", str(db)])
    _, err = capsys.readouterr()
    assert code == 1 and "no trial meets the limits (params <= 1000)" in err and "none trained" in err
    code = main(["search", *FAST, "--trials", "1", "--max-macs", "lots", "--storage", str(tmp_path / "x.db")])
    _, err = capsys.readouterr()
    assert code == 2 and "--max-*" in err and len(err.strip().splitlines()) == 1


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is: nothing listens there


def test_unreachable_url_exits_2_with_one_line(tmp_path, capsys):
    here = [a for i, a in enumerate(FAST) if a != "--backend" and (i == 0 or FAST[i - 1] != "--backend")]
    code = main(["search", *here, "--trials", "1", "--url", f"http://127.0.0.1:{_closed_port()}", "--token", "t",
                 "--storage", str(tmp_path / "u.db")])
    _, err = capsys.readouterr()
    assert code == 2 and "cannot reach" in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow  # trains one candidate: ~15 s on a busy 2-core machine
def test_resume_without_trials_keeps_the_stored_budget(tmp_path, capsys):
    db = str(tmp_path / "r.db")
    code = main(["search", *FAST, "--trials", "1", "--storage", db, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["trials"] == 1
    code = main(["search", *FAST[:-1], "--resume", "--storage", db])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "trials: 1 " in out and "the study is complete" in out and "budget is 1" in out
