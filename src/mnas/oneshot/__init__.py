"""Layer 4: weight sharing. Dynamic (entangled) ops and the supernet of a search space
(`build_supernet`, `Supernet.set_active`, `Supernet.subnet` -> a plain module equal to
`build_model`'s), warm start from a trained model, supernet training and evaluation, ENAS's alternating search,
DARTS/GDAS on the cell spaces, and FBNet-style latency-aware search on the block spaces.

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
    # warm start and ENAS
    "warm_start": "mnas.oneshot.warmstart",
    "search_enas": "mnas.oneshot.enas", "EnasConfig": "mnas.oneshot.enas", "EnasResult": "mnas.oneshot.enas",
    # sub-network sampling (mnas.oneshot.sampling, helper oneshot-train)
    "StratifiedSampler": "mnas.oneshot.sampling", "UniformSampler": "mnas.oneshot.sampling",
    "estimate_macs": "mnas.oneshot.sampling", "make_predictor": "mnas.oneshot.sampling",
    # supernet training, evaluation, rank check (helper oneshot-train); DDP helpers stay in mnas.oneshot.ddp
    "SupernetTrainConfig": "mnas.oneshot.train", "train_supernet": "mnas.oneshot.train",
    "load_supernet": "mnas.oneshot.train",
    "SubnetResult": "mnas.oneshot.evaluate", "evaluate_subnet": "mnas.oneshot.evaluate",
    "evaluate_subnets": "mnas.oneshot.evaluate", "recalibrate_bn": "mnas.oneshot.evaluate",
    "rank_stats": "mnas.oneshot.rank", "choose_archs": "mnas.oneshot.rank", "reference_archs": "mnas.oneshot.rank",
    "train_standalone": "mnas.oneshot.rank", "rank_check": "mnas.oneshot.rank", "rank_report": "mnas.oneshot.rank",
    "DEFAULT_CALIBRATION_IMAGES": "mnas.oneshot.evaluate",
    # differentiable search on the cell spaces (DARTS, GDAS)
    "DartsConfig": "mnas.oneshot.darts", "DartsResult": "mnas.oneshot.darts", "search_darts": "mnas.oneshot.darts",
    "derive": "mnas.oneshot.darts",
    "MixedOp": "mnas.oneshot.mixed", "NB201SearchNet": "mnas.oneshot.mixed", "DartsSearchNet": "mnas.oneshot.mixed",
    # latency-aware gradient search on the block supernets (FBNet / ProxylessNAS style)
    "FBNetConfig": "mnas.oneshot.fbnet", "FBNetResult": "mnas.oneshot.fbnet", "search_fbnet": "mnas.oneshot.fbnet",
    "expected_latency_model": "mnas.oneshot.fbnet_latency",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnas.oneshot' has no attribute {name!r}")
