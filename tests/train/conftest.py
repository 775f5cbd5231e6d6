"""Shared fixtures for the training tests: a tiny architecture and small data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

# Two small blocks and a 32-filter head: trains on 8x8 digits in well under a second per epoch.
TINY_ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16 | s1_h32_d0.1_relu"

CIFAR_NPZ = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cifar10_10k.npz"


@pytest.fixture(scope="session")
def digits():
    pytest.importorskip("sklearn")
    from mnas.data import load

    return load("digits", val_fraction=0.1, seed=0)


@pytest.fixture(scope="session")
def tiny_arch() -> str:
    return TINY_ARCH


@pytest.fixture(scope="session")
def cifar_npz() -> Path:
    if not CIFAR_NPZ.is_file():
        pytest.skip(f"{CIFAR_NPZ} not present")
    return CIFAR_NPZ


@pytest.fixture
def synthetic():
    """A factory of random uint8 NHWC arrays with balanced labels (x_train, y_train, x_test, y_test)."""
    return synthetic_arrays


def synthetic_arrays(n_train: int = 60, n_test: int = 20, size: int = 8, channels: int = 3, classes: int = 3,
                     seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, size, size, channels), dtype=np.uint8),
        "y_train": np.arange(n_train, dtype=np.int64) % classes,
        "x_test": rng.integers(0, 256, (n_test, size, size, channels), dtype=np.uint8),
        "y_test": np.arange(n_test, dtype=np.int64) % classes,
    }
