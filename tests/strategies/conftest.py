import pytest

from mnas.space import Decision, MnasNetSpace, SearchSpace


class TinySpace(SearchSpace):
    """A token-only space (strategies never decode): decisions of the given sizes."""

    def __init__(self, sizes=(3, 2, 4, 3, 2, 3)):
        self.decisions = tuple(Decision(f"d{i}", tuple(range(k))) for i, k in enumerate(sizes))


@pytest.fixture
def tiny_space_cls():
    return TinySpace


@pytest.fixture
def tiny():
    return TinySpace()


@pytest.fixture(scope="session")
def mnasnet_space():
    return MnasNetSpace(num_classes=10, input_size=224)


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """The controller is tiny: one thread is fastest, and the caller owns the setting (as here)."""
