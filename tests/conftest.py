from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def cifar_subset() -> Path:
    path = SHARED_DATA / "cifar10_10k.npz"
    if not path.is_file():
        pytest.skip("../shared/data/cifar10_10k.npz is absent")
    return path
