"""Layer 6: InstaNAS — a controller picks, per image, a route through a one-shot meta-graph.

Names are imported on first use, so ``mnas.instance.runner`` (numpy + onnxruntime only) and
``mnas.instance.routes`` load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "MetaGraph": "mnas.instance.metagraph", "MetaGraphConfig": "mnas.instance.metagraph",
    "RoutedNet": "mnas.instance.metagraph", "Controller": "mnas.instance.controller",
    "InstanceConfig": "mnas.instance.train", "train_instance": "mnas.instance.train",
    "load_instance": "mnas.instance.train", "LatencyTable": "mnas.instance.latency",
    "build_table": "mnas.instance.latency", "route_policies": "mnas.instance.runtime",
    "evaluate_instance": "mnas.instance.runtime", "export_instance": "mnas.instance.export",
    "InstanceRunner": "mnas.instance.runner", "parse_route": "mnas.instance.routes",
    "route_string": "mnas.instance.routes", "fixed_routes": "mnas.instance.routes",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mnas.instance' has no attribute {name!r}")
