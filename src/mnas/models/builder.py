"""`build_model(arch)`: an `Arch` to a plain PyTorch module.

The builder owns the walk over blocks: it carries input filters forward, gives the stride only to
a block's first layer, and hands each layer resolved arguments. The returned module depends on
nothing in mnas beyond the layer classes in this package.
"""

from __future__ import annotations

import torch
from torch import nn

from mnas.models.blocks import make_layer
from mnas.models.layers import ConvBnAct, get_act_layer
from mnas.models.profile import check_size
from mnas.space import Arch, BlockSpec, as_arch

__all__ = ["MnasNetModel", "build_block", "build_model"]

# MnasNet's batch norm (REFERENCE.md): TF momentum 0.99 is PyTorch's 0.01; epsilon 1e-3.
BN_MOMENTUM = 0.01
BN_EPS = 1e-3


def build_block(spec: BlockSpec, act: str = "relu", repeats: int | None = None) -> nn.Sequential:
    """The layers of one block; the first takes the block's stride and input filters."""
    act_layer = get_act_layer(act)
    layers = []
    for i in range(spec.repeats if repeats is None else repeats):
        layers.append(make_layer(
            spec.op, spec.in_chs if i == 0 else spec.out_chs, spec.out_chs, spec.kernel_size,
            spec.stride if i == 0 else 1, spec.exp_ratio, spec.se_ratio, spec.skip, act_layer,
        ))
    return nn.Sequential(*layers)


class MnasNetModel(nn.Module):
    """Stem, blocks, head conv, global average pool, dropout, linear classifier."""

    def __init__(self, arch: Arch, num_classes: int = 1000, in_chans: int = 3):
        super().__init__()
        act_layer = get_act_layer(arch.act)
        self.arch_string = str(arch)
        self.conv_stem = ConvBnAct(in_chans, arch.stem_chs, 3, arch.stem_stride, act_layer=act_layer)
        self.blocks = nn.Sequential(*(build_block(b, arch.act) for b in arch.blocks))
        last = arch.blocks[-1].out_chs
        self.conv_head = ConvBnAct(last, arch.head_chs, 1, act_layer=act_layer) if arch.head_chs else nn.Identity()
        self.num_features = arch.head_chs or last
        self.dropout = nn.Dropout(arch.dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_head(self.blocks(self.conv_stem(x)))  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_features(x).mean((2, 3))  # (B, C)
        return self.classifier(self.dropout(x))


def _init_weights(model: nn.Module, bn_momentum: float, bn_eps: float) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            m.momentum, m.eps = bn_momentum, bn_eps
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.uniform_(m.weight, -1.0 / m.in_features**0.5, 1.0 / m.in_features**0.5)
            nn.init.zeros_(m.bias)


def build_model(arch: Arch | str, num_classes: int = 1000, in_chans: int = 3,
                bn_momentum: float = BN_MOMENTUM, bn_eps: float = BN_EPS) -> MnasNetModel:
    """Build `arch` (an architecture of any family, its text, or a zoo name) for `num_classes` outputs.
    `bn_momentum` and `bn_eps` apply to the block chain; cell families keep their papers' batch norm."""
    if isinstance(arch, str):
        from mnas.space.zoo import get_arch, is_zoo_name
        arch = get_arch(arch) if is_zoo_name(arch) else as_arch(arch)
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes={num_classes!r}: expected a positive integer")
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans={in_chans!r}: expected a positive integer")
    if not isinstance(arch, Arch):  # another family (cells, a user's own): its registered builder
        from mnas.models.family import build
        return build(arch, num_classes, in_chans)
    check_size(arch, num_classes, in_chans)  # refuse absurd sizes before allocating anything
    model = MnasNetModel(arch, num_classes, in_chans)
    _init_weights(model, bn_momentum, bn_eps)
    return model
