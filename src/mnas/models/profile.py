"""Parameter and MAC counts. MACs are PyTorch's FlopCounterMode FLOPs / 2 (REFERENCE.md's rule)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from mnas.space import Arch

__all__ = ["Profile", "count_macs", "count_params", "profile"]


@dataclass(frozen=True)
class Profile:
    params: int
    macs: int
    input_size: int

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "input_size": self.input_size}


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int | tuple[int, int] = 224, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1 and the given resolution."""
    h, w = (input_size, input_size) if isinstance(input_size, int) else input_size
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, in_chans, h, w))
    finally:
        model.train(was_training)
    return counter.get_total_flops() // 2


def profile(model_or_arch: nn.Module | Arch | str, input_size: int = 224, num_classes: int = 1000,
            in_chans: int = 3) -> Profile:
    """Params and MACs of a model, or of an architecture built for `num_classes`."""
    model = model_or_arch
    if not isinstance(model, nn.Module):
        from mnas.models.builder import build_model
        model = build_model(model_or_arch, num_classes=num_classes, in_chans=in_chans)
    return Profile(count_params(model), count_macs(model, input_size, in_chans), input_size)
