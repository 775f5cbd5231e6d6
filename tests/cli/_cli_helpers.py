"""Helpers the CLI tests share: a tiny 3-class 8x8 .npz, running `mnas` in-process, and the one-line
refusal check (exit 2, one line, no traceback)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mnas.cli import main


def tiny_npz(root: Path) -> Path:
    """A 3-class 8x8x3 .npz (96 training, 16 test images) in `root`, named tiny.npz."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 112)
    x = (rng.integers(0, 60, (112, 8, 8, 3)) + y[:, None, None, None] * 60).astype(np.uint8)
    path = Path(root) / "tiny.npz"
    np.savez(path, x_train=x[:96], y_train=y[:96], x_test=x[96:], y_test=y[96:])
    return path


def run_cli(capsys, *argv):
    """(exit code, stdout, stderr) of `mnas ARGV`; argparse's own refusals count as their exit code."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, words):
    """A refusal: exit 2 and one line on stderr holding `words`, no traceback."""
    assert code == 2, err
    assert words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
