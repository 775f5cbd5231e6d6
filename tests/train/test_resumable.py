"""Issue 21 item 7: `train_full` and `train_instance` share one resumable-run implementation
(`mnas.train.resumable`) instead of each keeping a copy of the checkpoint-and-epoch code."""

from __future__ import annotations

import ast
import inspect

import pytest


def _defined(module) -> set[str]:
    tree = ast.parse(inspect.getsource(module))
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}


def test_full_and_instance_training_use_the_shared_resumable_run():
    import mnas.instance.train as instance
    import mnas.train.full as full

    for module in (full, instance):
        assert "_check_resumable" not in _defined(module), module.__name__  # before: one copy in each
        source = inspect.getsource(module)
        for name in ("EpochRun", "check_same_run", "checkpoint_path", "restore_loop", "loop_state"):
            assert name in source, (module.__name__, name)
        assert "stop_after is not None and epoch + 1" not in source  # the stop rule lives in EpochRun


def test_checkpoint_path_refusals(tmp_path):
    from mnas.train.resumable import checkpoint_path

    assert checkpoint_path(tmp_path / "new", False) == tmp_path / "new" / "checkpoint.pt"
    with pytest.raises(FileNotFoundError, match="nothing to resume: no checkpoint.pt in"):
        checkpoint_path(tmp_path, True)
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match="already holds a training checkpoint: resume it"):
        checkpoint_path(tmp_path, False)
    assert checkpoint_path(tmp_path, True).name == "checkpoint.pt"


def test_check_same_run_names_the_first_difference(tmp_path):
    from mnas.train.resumable import check_same_run

    data = {"name": "digits", "train": 100}
    state = {"format": "f/1", "arch": "a", "data": data, "config": {"lr": 0.1, "threads": 1}}
    check_same_run(state, tmp_path, format="f/1", what="x", data=data, config={"lr": 0.1, "threads": 4},
                   free={"threads"}, arch="a")
    for kwargs, match in (({"format": "g/1"}, "not a mnas x checkpoint"), ({"arch": "b"}, "different architecture"),
                          ({"data": {"name": "other", "train": 1}}, "different data \\(digits, 100"),
                          ({"config": {"lr": 0.2, "threads": 1}}, "lr=0.1, now lr=0.2")):
        given = {"format": "f/1", "what": "x", "data": data, "config": {"lr": 0.1, "threads": 1}, "arch": "a", **kwargs}
        with pytest.raises(ValueError, match=match):
            check_same_run(state, tmp_path, **given)


def test_epoch_run_records_saves_and_stops(tmp_path):
    from mnas.train.checkpoint import load_file
    from mnas.train.resumable import EpochRun

    run = EpochRun(tmp_path / "c.pt", total=4, stop_after=2)
    saved = []
    for epoch in run.epochs():
        run.end_epoch(epoch, {"epoch": epoch + 1}, 1.5, lambda done: saved.append(done) or
                      {"epoch": done, "history": run.history, "seconds": run.seconds})
        if (stopped := run.stopped(epoch)) is not None:
            break
    assert saved == [1, 2] and stopped["epoch"] == 2 and stopped["epochs"] == 4 and stopped["stopped"]
    state = load_file(tmp_path / "c.pt")
    assert state["seconds"] == 3.0 and [h["seconds"] for h in state["history"]] == [1.5, 3.0]
    again = EpochRun(tmp_path / "c.pt", total=4, stop_after=None)
    again.resume(state["epoch"], state)
    assert list(again.epochs()) == [2, 3] and again.seconds == 3.0 and again.stopped(3) is None
