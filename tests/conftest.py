from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


@pytest.fixture
def cifar_subset() -> Path:
    path = SHARED_DATA / "cifar10_10k.npz"
    if not path.is_file():
        pytest.skip("../shared/data/cifar10_10k.npz is absent")
    return path


@pytest.fixture
def one_torch_thread():
    """Tiny models train fastest on one thread, and two spin against each other on a busy 2-core
    machine; the setting is restored afterwards."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
