"""mnas: platform-aware neural architecture search (MnasNet and beyond)."""

__version__ = "0.1.0"

from mnas.space import Arch, BlockSpec, get_arch  # noqa: E402

__all__ = ["Arch", "BlockSpec", "__version__", "get_arch"]
