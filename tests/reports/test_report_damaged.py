"""Issue 13 item 16: `mnas report`/`mnas export` on damaged studies exit 2 with one line, and leave no -wal/-shm."""

from __future__ import annotations

import sqlite3

import pytest
from test_report_cli import fill

from mnas.cli import main
from mnas.study import SQLiteStorage

pytest.importorskip("matplotlib")


def _study(tmp_path, n=30):
    path = tmp_path / "s.db"
    with SQLiteStorage(path) as storage:
        fill(storage, n)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.db"]
    return path


def _run(capsys, *argv):
    rc = main(list(argv))
    return rc, capsys.readouterr().err


def test_read_only_commands_leave_no_wal_or_shm(tmp_path, capsys):
    path = _study(tmp_path)
    assert _run(capsys, "report", str(path), "--out", str(tmp_path / "r"))[0] == 0
    assert _run(capsys, "export", str(path), "--format", "json", "--out", str(tmp_path / "b.json"))[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.json", "r", "s.db"]


def test_a_live_writer_is_still_read(tmp_path, capsys):
    """While a search holds the study (its -wal exists) the report reads the live file, WAL included."""
    path = _study(tmp_path)
    with SQLiteStorage(path) as writer:
        writer.create_trial([99], "r1_k3_s11_e1_i8_o8 | s1_h8_d0.0_relu")
        assert (tmp_path / "s.db-wal").exists()
        rc, err = _run(capsys, "report", str(path), "--out", str(tmp_path / "r"), "--json")
        assert rc == 0, err


def test_damaged_pages_exit_2_with_one_line(tmp_path, capsys):
    path = _study(tmp_path, 600)
    data = path.read_bytes()
    codes = []
    pages = list(range(3, len(data) // 4096))
    for page in pages[::max(1, len(pages) // 6)]:  # six pages spread over the file: the whole file took ~50 s
        broken = bytearray(data)
        for i in range(page * 4096 + 100, page * 4096 + 4000, 5):
            broken[i] ^= 0xA5
        bad = tmp_path / f"p{page}.db"
        bad.write_bytes(bytes(broken))
        for argv in (["report", str(bad), "--out", str(tmp_path / "r")],
                     ["export", str(bad), "--format", "json", "--out", str(tmp_path / "e.json")]):
            rc, err = _run(capsys, *argv)
            assert rc in (0, 2) and "internal error" not in err, (page, err)
            assert rc == 0 or len(err.strip().splitlines()) == 1
            codes.append(rc)
    assert 2 in codes  # some pages hold trials: those are reported as damage
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(("-wal", "-shm"))]


def test_wrong_column_types(tmp_path, capsys):
    path = _study(tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE trials SET accuracy = 'abc' WHERE number = 1")
    conn.execute("UPDATE trials SET latency_ms = x'00ff' WHERE number = 2")
    conn.execute("UPDATE trials SET params = 'many', reward = 'x' WHERE number = 3")
    conn.commit()
    conn.close()
    for extra in ("-wal", "-shm"):
        (tmp_path / f"s.db{extra}").unlink(missing_ok=True)
    rc, err = _run(capsys, "report", str(path), "--out", str(tmp_path / "r"))
    assert rc == 0 and "3 trial(s) hold values of the wrong type" in err
    rc, err = _run(capsys, "export", str(path), "--format", "json", "--out", str(tmp_path / "e.json"))
    assert rc in (0, 2) and "internal error" not in err
    conn = sqlite3.connect(path)
    conn.execute("UPDATE trials SET tokens = 'not json' WHERE number = 4")
    conn.commit()
    conn.close()
    rc, err = _run(capsys, "report", str(path), "--out", str(tmp_path / "r"))
    assert rc == 2 and "holds a value mnas did not write" in err


@pytest.mark.parametrize("content", [b"", b"x" * 100, b"SQLite format 3\x00" + b"\x00" * 84])
def test_not_a_study(tmp_path, capsys, content):
    path = tmp_path / "x.db"
    path.write_bytes(content)
    rc, err = _run(capsys, "report", str(path), "--out", str(tmp_path / "r"))
    assert rc == 2 and "internal error" not in err and len(err.strip().splitlines()) == 1
