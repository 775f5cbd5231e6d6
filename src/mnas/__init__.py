"""mnas: platform-aware neural architecture search (MnasNet and beyond).

    import mnas
    space = mnas.MnasNetSpace(num_classes=10, input_size=8, width_mult=0.35, head_chs=256)
    data = mnas.data.load("digits")
    study = mnas.create_study("runs/digits.db", space=space, reward=mnas.Reward.soft(target_ms=1.0), seed=0)
    study.optimize(mnas.ProxyEvaluator(data, mnas.latency.OnnxRuntime(threads=1)), strategy="ppo",
                   budget=mnas.Budget(trials=50))
    study = mnas.load_study("runs/digits.db")      # later: read it, or resume it with study.optimize(...)
    mnas.export(study.best().arch, "model.onnx", input_size=8, num_classes=10, in_chans=1)  # untrained

`mnas.search(space, data=..., latency=..., target=...)` does create + optimize in one call. Names are
imported on first use, so `import mnas` stays light (no torch until a model is built); every name
here is the same object whatever was imported before (no name is both a module and a function).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "Arch": "mnas.space", "BlockSpec": "mnas.space", "SearchSpace": "mnas.space", "Decision": "mnas.space",
    "MnasNetSpace": "mnas.space", "get_arch": "mnas.space",
    "LayerwiseSpace": "mnas.space",
    "Reward": "mnas.objectives", "Constraints": "mnas.objectives", "Target": "mnas.objectives", "pareto_front": "mnas.objectives",
    "Budget": "mnas.loop", "search": "mnas.loop", "create_study": "mnas.loop", "load_study": "mnas.loop",
    "SearchStudy": "mnas.loop", "RunResult": "mnas.loop", "SearchEvent": "mnas.loop", "ProgressPrinter": "mnas.loop",
    "Evaluator": "mnas.evaluate", "ProxyEvaluator": "mnas.evaluate", "UserEvaluator": "mnas.evaluate",
    "Study": "mnas.study",
    "build_model": "mnas.models", "profile": "mnas.models",
    "get_strategy": "mnas.strategies",
    "export": "mnas.deploy",
}
_SUBMODULES = ("data", "latency", "deploy", "reports", "train", "space", "models", "study", "strategies",
               "objectives", "execution", "evaluate", "loop")

__all__ = ["__version__", *_LAZY, *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip __getattr__; importing a submodule never rebinds it
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"mnas.{name}")
    raise AttributeError(f"module 'mnas' has no attribute {name!r}")
