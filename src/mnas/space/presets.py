"""Named spaces: one that reproduces a published benchmark's networks exactly, and the layer-wise space
on a hand-designed network's skeleton.

`nas_bench_macro_space` is NAS-Bench-Macro's space (Su et al., CVPR 2021: "Prioritized Architecture
Sampling with Monte-Carlo Tree Search"; the benchmark's ``train/model.py``) as a `LayerwiseSpace`:

- stem: 3x3 conv, 32 filters, stride 1, BN, ReLU;
- 8 searchable layers in three stages of 2, 3 and 3 layers with 64, 128 and 256 filters; the first
  layer of each stage has stride 2 (and doubles the filters);
- each layer is one of ``skip`` (the identity, or where the shape changes a 1x1 conv + BN with the
  layer's stride: the space's ``proj`` layer), ``k3e3`` (MobileNetV2 block, kernel 3, expansion 3)
  or ``k5e6`` (kernel 5, expansion 6); expansion multiplies the layer's *input* filters, an MBConv
  has the residual where stride is 1 and filters are unchanged, no squeeze-excite, ReLU throughout;
- head: 1x1 conv to 1280, BN, ReLU, global average pool, linear classifier (no dropout).

Token ``i`` of a layer is the benchmark's digit ``i`` (``0`` identity, ``1`` k3e3, ``2`` k5e6), so the
benchmark key ``"02012100"`` is ``space.decode([0, 2, 0, 1, 2, 1, 0, 0])``. Parameter counts equal the
benchmark file's for all 6,561 keys (``benchmarks/nbmacro_parity.py``). Because an identity layer in a
stride-1 position is order-free, keys that differ only in where a stage's identity layers sit are
the same network (6,561 keys, 3,969 distinct architectures); `mnas.space.ground_truth` merges them.

`width_mult` scales the stem and stage filters (not the head), for a cheaper supernet of the same
decisions: its token sequences are the benchmark's keys, so a width-0.5 supernet ranks the
full-width networks by token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mnas.space.layerwise import DEFAULT_LAYER_OPS, LayerwiseSpace

__all__ = ["NAS_BENCH_MACRO_OPS", "nas_bench_macro_space", "skeleton_space"]

NAS_BENCH_MACRO_OPS = ("skip", "k3e3", "k5e6")  # token i = the benchmark's digit i
_STAGES = ((64, 2, 2), (128, 3, 2), (256, 3, 2))


def nas_bench_macro_space(num_classes: int = 10, input_size: int = 32, *, width_mult: float = 1.0) -> LayerwiseSpace:
    """NAS-Bench-Macro's layer-wise space (see the module docstring); at ``width_mult=1`` its networks
    are the benchmark's, parameter for parameter."""
    return LayerwiseSpace(num_classes, input_size, width_mult=width_mult, stem_chs=32, stem_stride=1,
                          stages=_STAGES, strides=(1, 2, 2, 2), head_chs=1280, dropout=0.0, act="relu",
                          ops=NAS_BENCH_MACRO_OPS)


def skeleton_space(skeleton: Any, num_classes: int = 1000, input_size: int = 224, *, width_mult: float = 1.0,
                   strides: Sequence[int] | None = None, head_chs: int | None = None,
                   ops: Sequence[str] = DEFAULT_LAYER_OPS, min_feature_size: int = 4) -> LayerwiseSpace:
    """The layer-wise space on the macro skeleton of `skeleton` (a zoo name such as ``mnasnet_b1``, or an
    `Arch`): its stem filters and stride, one stage per block with the block's output filters, repeats
    and first stride, its head filters, dropout and activation. Every layer then chooses one of `ops`,
    so the space holds the network's channel plan with any op per layer; the network itself is in it
    when each of its blocks is one of `ops` (MnasNet-B1: all but its first, depthwise-separable layer,
    which is in it with ``k3e1`` added to `ops`). Filters are the skeleton's times `width_mult` (give
    the zoo's base name, e.g. ``mnasnet_b1`` with ``width_mult=0.5`` for MnasNet-B1 x0.5's plan).
    `strides=None` adapts them to `input_size` as every block space does."""
    from mnas.space.zoo import get_arch

    arch = get_arch(skeleton) if isinstance(skeleton, str) else skeleton
    blocks = getattr(arch, "blocks", None)
    if not blocks:
        raise ValueError(f"skeleton {skeleton!r}: expected a zoo name (e.g. mnasnet_b1) or an architecture with blocks")
    stages = tuple((b.out_chs, b.repeats, b.stride) for b in blocks)
    return LayerwiseSpace(num_classes, input_size, width_mult=width_mult, stem_chs=blocks[0].in_chs,
                          stem_stride=arch.stem_stride, stages=stages, strides=strides, min_feature_size=min_feature_size,
                          head_chs=arch.head_chs if head_chs is None else head_chs, dropout=arch.dropout, act=arch.act,
                          ops=ops)
