"""mnas: platform-aware neural architecture search (MnasNet and beyond).

    import mnas
    space = mnas.MnasNetSpace(num_classes=10, input_size=32)
    data = mnas.data.load("digits")
    study = mnas.search(space, data=data, latency=mnas.latency.OnnxRuntime(threads=1),
                        reward=mnas.Reward.soft(target_ms=1.0), strategy="ppo",
                        budget=mnas.Budget(trials=50), storage="sqlite:///runs/digits.db")
    mnas.export(study.best().arch, "model.onnx", input_size=8, num_classes=10, in_chans=1)

Names are imported on first use, so `import mnas` stays light (no torch until a model is built).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Arch": "mnas.space", "BlockSpec": "mnas.space", "SearchSpace": "mnas.space", "Decision": "mnas.space",
    "MnasNetSpace": "mnas.space", "get_arch": "mnas.space",
    "Reward": "mnas.objectives", "Target": "mnas.objectives", "pareto_front": "mnas.objectives",
    "Budget": "mnas.search", "search": "mnas.search",
    "Study": "mnas.study",
    "build_model": "mnas.models", "profile": "mnas.models",
    "get_strategy": "mnas.strategies",
}
_SUBMODULES = ("data", "latency", "export", "reports", "train", "space", "models", "study", "strategies",
               "objectives", "execution", "evaluate")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"mnas.{name}")
    raise AttributeError(f"module 'mnas' has no attribute {name!r}")
