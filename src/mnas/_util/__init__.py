"""Layer 0: seeding, logging and lazy optional imports. Imports nothing from mnas."""

from __future__ import annotations

import importlib
import logging
import random
from collections.abc import Callable, Iterable
from types import ModuleType

import numpy as np

__all__ = ["as_rng", "check_keys", "get_logger", "make_divisible", "require", "seed_everything"]

# Which pip extra provides each optional module (pyproject.toml [project.optional-dependencies]).
_EXTRAS = {
    "onnx": "onnx",
    "onnxruntime": "onnx",
    "onnxscript": "onnx",
    "ray": "ray",
    "matplotlib": "report",
    "sklearn": "data",
    "PIL": "data",
    "scipy": "latency",
    "rich": "ui",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _EXTRAS.get(module.split(".")[0], "all")
        raise ImportError(
            f"{purpose} needs the optional package '{module}': pip install 'mnas[{extra}]'"
        ) from exc


def as_rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """A NumPy generator from a seed, or the generator itself (never the global state)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and (if imported) PyTorch, for reproducible runs."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return
    torch.manual_seed(seed)


def get_logger(name: str) -> logging.Logger:
    """A logger under the 'mnas' namespace; handlers are the application's business."""
    return logging.getLogger(name if name.startswith("mnas") else f"mnas.{name}")


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of `divisor`, never below 90% of `value` (TF/timm rule)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def check_keys(data: Iterable[str], known: Iterable[str], message: Callable[[str], str]) -> None:
    """The unknown-key check of the `from_dict` methods: ValueError(message(key)) for the first key of
    `data` (in sorted order) not in `known`, each caller keeping its own one-line message."""
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(message(unknown[0]))
