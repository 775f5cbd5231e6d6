"""A damaged study file given to `mnas search --storage` is refused in one line before anything else
(the data loaded, the target measured): hostile probe, stop 29."""

from __future__ import annotations

from mnas.cli import main
from mnas.study import SQLiteStorage


def test_a_truncated_study_is_refused_before_the_data_loads(tmp_path, capsys):
    whole = tmp_path / "s.db"
    with SQLiteStorage(whole) as storage:
        storage.set_meta("config", {"space": {}})
        for i in range(200):
            n = storage.create_trial([i], f"arch{i}" * 50)
            storage.complete_trial(n, 0.5, 1.0, 0.5)
    data = whole.read_bytes()
    damaged = tmp_path / "t.db"
    damaged.write_bytes(data[: len(data) // 2])
    # the data does not exist either: before the fix, that was what the search said first
    rc = main(["search", "--storage", str(damaged), "--data", str(tmp_path / "none.npz"), "--trials", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "--storage" in err and "malformed" in err and "restore the study from a copy" in err
    assert damaged.read_bytes() == data[: len(data) // 2]  # untouched
