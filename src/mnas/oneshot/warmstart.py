"""Warm start: initialise a supernet from a trained standalone model of (or fitting) its space.

The source is a `build_model` module, its state dict with the architecture, or a file written by
`mnas train` (``model.pt``, format ``mnas.model/1``, or ``checkpoint.pt``, ``mnas.checkpoint/1``).
Its weights go into the slices its architecture uses (`Supernet.load_subnet_weights`); every other
weight keeps its value. The architecture need not be a member of the space, only fit the supernet's
positions: a zoo model (e.g. ``mobilenetv2_x0.5`` with `mnas.space.adapt_strides` for the input
size) fits an `MnasNetSpace` of the same width, activation and head, since its blocks follow the
same seven stages. Published weights reach the supernet the same way once loaded into the zoo build
(`mnas.models.published.load_timm_weights`: timm's ImageNet weights, mapped tensor by tensor).

What it gives: the trained model's own sub-network starts at the trained model's function (exactly,
BN statistics included), and every sub-network sharing its slices (smaller kernels are its
kernels' centres, narrower layers its first channels) starts from trained filters, not noise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnas.oneshot.supernet import Supernet
from mnas.space import Arch, as_arch

__all__ = ["warm_start"]

_FILE_FORMATS = {"mnas.model/1": "state_dict", "mnas.checkpoint/1": "model"}


def warm_start(supernet: Supernet, source: nn.Module | dict[str, Any] | str | Path, arch: Arch | str | None = None,
               *, classifier: bool | None = None) -> dict[str, Any]:
    """Copy `source`'s weights into `supernet`; returns {"arch", "tensors", "classifier"}.

    `classifier=None` copies the classifier only when the class counts agree (a model trained on
    other classes keeps the supernet's classifier); True insists, False never copies it.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"warm start: {path} is not a file: expected a model.pt or checkpoint.pt from mnas train")
        data = torch.load(path, map_location="cpu", weights_only=True)
        key = _FILE_FORMATS.get(data.get("format")) if isinstance(data, dict) else None
        if key is None:
            raise ValueError(f"warm start: {path} is not a mnas model or checkpoint file (expected format "
                             f"{' or '.join(_FILE_FORMATS)})")
        arch = arch if arch is not None else data["arch"]
        source = data[key]
    if isinstance(source, dict):
        classes = source.get("classifier.weight")
        classes = int(classes.shape[0]) if classes is not None else supernet.num_classes
    elif isinstance(source, nn.Module) and isinstance(getattr(source, "classifier", None), nn.Linear):
        classes = source.classifier.out_features
    else:
        raise ValueError(f"warm start: expected a model from mnas.models.build_model, its state dict or a file path,"
                         f" got {type(source).__name__}")
    if classifier is None:
        classifier = classes == supernet.num_classes
    n = supernet.load_subnet_weights(source, arch, classifier=classifier)
    used = as_arch(arch) if arch is not None else as_arch(source.arch_string)
    return {"arch": str(used), "tensors": n, "classifier": bool(classifier)}
