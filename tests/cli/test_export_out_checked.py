"""`mnas export --out` is checked before the export's work: a folder, a path under a file or an
unwritable folder is one line and exit 2, never an internal error after a long conversion."""

import os

import pytest

from mnas.cli import main

ARGS = ["export", "--arch", "mnasnet_small", "--input-size", "32", "--num-classes", "10", "--untrained",
        "--format", "onnx"]


def _refused(capsys, out):
    code = main([*ARGS, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "--out" in err and "internal error" not in err
    return err


def test_out_is_a_folder(tmp_path, capsys):
    assert "is a folder" in _refused(capsys, tmp_path)


def test_out_under_a_file(tmp_path, capsys):
    (tmp_path / "notadir").write_text("x")
    assert "is not a folder" in _refused(capsys, tmp_path / "notadir" / "x.onnx")


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write in a read-only folder")
def test_out_in_an_unwritable_folder(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert "cannot write in" in _refused(capsys, ro / "x.onnx")
    finally:
        ro.chmod(0o700)
