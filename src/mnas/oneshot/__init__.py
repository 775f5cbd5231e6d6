"""Layer 4: weight sharing. Dynamic (entangled) ops and the supernet of a search space
(`build_supernet`, `Supernet.set_active`, `Supernet.subnet` -> a plain module equal to
`build_model`'s), warm start from a trained model, and ENAS's alternating search.

Names are imported on first use, so `import mnas.oneshot` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # the supernet (mnas.oneshot.supernet, mnas.oneshot.layerwise_supernet)
    "Supernet": "mnas.oneshot.supernet", "MnasNetSupernet": "mnas.oneshot.supernet",
    "build_supernet": "mnas.oneshot.supernet", "arch_macs": "mnas.oneshot.supernet",
    "LayerwiseSupernet": "mnas.oneshot.layerwise_supernet",
    # sub-network sampling (mnas.oneshot.sampling, helper oneshot-train)
    "StratifiedSampler": "mnas.oneshot.sampling", "UniformSampler": "mnas.oneshot.sampling",
    "estimate_macs": "mnas.oneshot.sampling", "make_predictor": "mnas.oneshot.sampling",
    # supernet training, evaluation, rank check, DDP (helper oneshot-train): add their names here
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnas.oneshot' has no attribute {name!r}")
