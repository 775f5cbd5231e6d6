"""Atomic files (model.pt, checkpoint.pt, metrics.json) get the mode a plain open() would give them:
mkstemp made every one 0600, so a trained model could not be read by anyone else who may read its folder."""

from __future__ import annotations

import os
import stat

import pytest

from mnas.train.checkpoint import atomic_save, atomic_write_json, atomic_write_text


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_new_files_follow_the_umask_and_a_replaced_file_keeps_its_mode(tmp_path):
    atomic_save({"x": 1}, tmp_path / "model.pt")
    atomic_write_json({"a": 1}, tmp_path / "metrics.json")
    atomic_write_text("hi", tmp_path / "note.txt")
    for name in ("model.pt", "metrics.json", "note.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
    (tmp_path / "note.txt").chmod(0o640)
    atomic_write_text("again", tmp_path / "note.txt")
    assert stat.S_IMODE((tmp_path / "note.txt").stat().st_mode) == 0o640
    assert os.umask(0o022) == 0o022  # the umask read is put back


@pytest.mark.usefixtures("umask_022")
def test_an_exported_file_follows_the_umask_too(tmp_path):
    """`mnas export` wrote best.json / best.onnx through its own mkstemp copy: 0600 whatever the umask."""
    from mnas.deploy import export

    export("mobilenetv2_x0.25", tmp_path / "arch.json")
    assert stat.S_IMODE((tmp_path / "arch.json").stat().st_mode) == 0o644


def test_the_umask_is_read_without_being_changed(monkeypatch):
    """Review: reading the umask by setting it to 022 and back let another thread's file get 022 meanwhile."""
    from mnas.train import checkpoint

    old = os.umask(0o077)
    try:
        calls = []
        real = os.umask
        monkeypatch.setattr(checkpoint.os, "umask", lambda m: calls.append(m) or real(m))
        if os.path.exists("/proc/self/status"):
            assert checkpoint._umask() == 0o077 and calls == []
    finally:
        os.umask(old)
