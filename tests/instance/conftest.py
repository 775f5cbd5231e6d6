"""Tiny data and a tiny meta-graph for the instance tests: 16x16 images, width 0.25."""

from __future__ import annotations

import numpy as np
import pytest

from mnas.train.datasets import from_arrays

TINY = dict(width=0.25, pretrain_epochs=1, search_epochs=2, finetune_epochs=0.5, batch_size=16,
            controller_width=4, window_end=1.0)


def tiny_arrays(n_train: int = 96, n_test: int = 32, size: int = 16, seed: int = 0):
    """Four classes told apart by brightness, so a few steps learn something."""
    rng = np.random.default_rng(seed)
    y = np.arange(n_train + n_test) % 4
    x = (rng.integers(0, 60, (len(y), size, size, 3)) + (y * 60)[:, None, None, None]).astype(np.uint8)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@pytest.fixture
def tiny_data():
    x, y, xt, yt = tiny_arrays()
    return from_arrays("tiny", x, y, xt, yt, class_names=["a", "b", "c", "d"], val_fraction=0.25, seed=0)


@pytest.fixture
def tiny_npz(tmp_path):
    x, y, xt, yt = tiny_arrays()
    path = tmp_path / "tiny.npz"
    np.savez(path, x_train=x, y_train=y, x_test=xt, y_test=yt, class_names=np.array(["a", "b", "c", "d"]))
    return path
