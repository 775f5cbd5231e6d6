"""`mnas search --val-fraction 0`: every candidate is scored on the validation split (proxy training and
--supernet alike), so the search is refused in one line (exit 2) once the data is loaded, before the target
is measured or a study is written. Before, the reference was measured, the study created and every trial
failed ('the val split is empty'), exit 1."""

from __future__ import annotations

import pytest
from _cli_helpers import one_line, run_cli, tiny_npz

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_no_validation_images_is_refused_before_the_search(tmp_path, capsys):
    npz, db = str(tiny_npz(tmp_path)), tmp_path / "s.db"
    code, _, err = run_cli(capsys, "search", "--data", npz, "--val-fraction", "0", "--strategy", "random",
                           "--trials", "1", "--epochs", "1", "--width-mult", "0.25", "--backend", "torch",
                           "--storage", str(db), "--quiet")
    one_line(code, err, "--val-fraction")
    assert "validation" in err and not db.exists()
