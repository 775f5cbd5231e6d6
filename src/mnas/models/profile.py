"""Parameter, MAC and activation-memory counts of a block-chain `Arch`.

Two ways to count, which agree exactly (tests/models/test_profile.py checks every zoo model and
random samples of the MnasNet space):

- `arch_profile(arch, input_size, ...)` walks the architecture's layers in pure Python: no model
  is built and no tensor allocated, so it costs microseconds and works for networks too large to
  build. This is what `mnas models`, `mnas arch show` and candidate limits use.
- `count_params(model)` and `count_macs(model, ...)` measure a built module (MACs are PyTorch's
  FlopCounterMode FLOPs / 2, REFERENCE.md's rule: convolutions and the classifier; batch norm,
  activations, pooling, the SE gate's multiply and residual adds are not counted).

`check_size` refuses architectures beyond `MAX_PARAMS` before anything is allocated; `build_model`
calls it, so a grammatical but absurd block string (``r1_k3_s11_e64_i100000_o100000``, 6.4e11
parameters) is a one-line ValueError instead of an allocator crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mnas.space import Arch, BlockSpec, as_arch

if TYPE_CHECKING:
    from torch import nn

__all__ = ["MAX_PARAMS", "ArchProfile", "Profile", "arch_profile", "check_size", "count_macs", "count_params", "profile"]

# The largest network `build_model` agrees to build: 2e9 parameters are 8 GB of float32 weights
# (16 GB with gradients), beyond any CNN this project searches (MnasNet-A1 has 3.9e6).
MAX_PARAMS = 2_000_000_000
BYTES_PER_VALUE = 4  # float32


@dataclass(frozen=True)
class Profile:
    params: int
    macs: int
    input_size: int

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs, "input_size": self.input_size}


@dataclass(frozen=True)
class ArchProfile(Profile):
    """`Profile` plus the peak activation memory at batch 1 in bytes (float32), see `arch_profile`."""

    peak_memory: int = 0
    num_classes: int = 1000
    in_chans: int = 3

    def to_dict(self) -> dict:
        return {**super().to_dict(), "peak_memory": self.peak_memory}


def _conv(in_chs: int, out_chs: int, k: int, groups: int = 1, bias: bool = False) -> int:
    return out_chs * (in_chs // groups) * k * k + (out_chs if bias else 0)


class _Walk:
    """Accumulates params and MACs, and the peak of live activation values, over the layer order."""

    def __init__(self) -> None:
        self.params = self.macs = self.peak = 0

    def live(self, *sizes: int) -> None:
        self.peak = max(self.peak, sum(sizes))

    def conv_bn(self, in_chs: int, out_chs: int, k: int, res: tuple[int, int], groups: int = 1) -> None:
        """A bias-free conv then batch norm (2 parameters per output channel); MACs at output `res`."""
        self.params += _conv(in_chs, out_chs, k, groups) + 2 * out_chs
        self.macs += res[0] * res[1] * _conv(in_chs, out_chs, k, groups)


def _out(res: tuple[int, int], stride: int) -> tuple[int, int]:
    # 'same'-padded odd kernel (and the 3x3 pool of the pool skip): (n - 1) // stride + 1
    return ((res[0] - 1) // stride + 1, (res[1] - 1) // stride + 1)


def _layer(w: _Walk, spec: BlockSpec, in_chs: int, stride: int, res: tuple[int, int]) -> tuple[int, int]:
    """One layer of `spec` (see mnas.models.blocks) at input resolution `res`; returns the output's."""
    out_chs, k = spec.out_chs, spec.kernel_size
    out_res = _out(res, stride)
    hw_in, hw_out = res[0] * res[1], out_res[0] * out_res[1]
    identity = spec.skip == "identity" and stride == 1 and in_chs == out_chs
    pool = spec.skip == "pool"
    keep = in_chs * hw_in if identity or pool else 0  # the layer's input, alive until the add
    x = in_chs * hw_in

    def se(chs: int, hw: int, size: int) -> None:  # squeeze-excite on a (chs, hw) tensor
        if spec.se_ratio <= 0:
            return
        rd = max(1, int(in_chs * spec.se_ratio))  # relative to the layer's input filters (TF reference)
        w.params += _conv(chs, rd, 1, bias=True) + _conv(rd, chs, 1, bias=True)
        w.macs += _conv(chs, rd, 1) + _conv(rd, chs, 1)
        w.live(size, chs, size, keep)  # input, gate vector, gated output (and the layer input, if kept)

    if spec.op == "conv":
        w.conv_bn(in_chs, out_chs, k, out_res)
        body = out_chs * hw_out
        w.live(x, body)
        se(out_chs, hw_out, body)
    elif spec.op == "ds":
        w.conv_bn(in_chs, in_chs, k, out_res, groups=in_chs)
        dw = in_chs * hw_out
        w.live(x, dw)
        se(in_chs, hw_out, dw)
        w.conv_bn(in_chs, out_chs, 1, out_res)
        body = out_chs * hw_out
        w.live(dw, body, keep)
    elif spec.op == "proj":  # 1x1 conv with the layer's stride, BN, no activation
        w.conv_bn(in_chs, out_chs, 1, out_res)
        body = out_chs * hw_out
        w.live(x, body)
    elif spec.op == "mbconv":
        mid = in_chs * spec.exp_ratio
        w.conv_bn(in_chs, mid, 1, res)
        expanded = mid * hw_in
        w.live(x, expanded)
        w.conv_bn(mid, mid, k, out_res, groups=mid)
        dw = mid * hw_out
        w.live(expanded, dw, keep)
        se(mid, hw_out, dw)
        w.conv_bn(mid, out_chs, 1, out_res)
        body = out_chs * hw_out
        w.live(dw, body, keep)
    else:
        raise ValueError(f"arch_profile does not know op {spec.op!r} (block '{spec}'): count it with count_params/count_macs")
    if identity:
        w.live(body, keep, body)  # out + x -> a new tensor
    elif pool:
        pooled = in_chs * hw_out
        w.live(keep, body, pooled)  # 3x3 average pool of the input, body output waiting
        short = pooled
        if in_chs != out_chs:
            w.conv_bn(in_chs, out_chs, 1, out_res)
            short = out_chs * hw_out
            w.live(pooled, short, body)
        w.live(body, short, body)
    return out_res


def arch_profile(arch: Arch | str, input_size: int | tuple[int, int] = 224, num_classes: int = 1000,
                 in_chans: int = 3) -> ArchProfile:
    """Params, MACs and peak activation memory of `arch` built by `build_model`, from the text alone.

    Params and MACs equal `count_params(build_model(arch, num_classes, in_chans))` and `count_macs`
    of that model at `input_size` exactly. No tensor is allocated; the cost is a walk over the layers.

    ``peak_memory`` (bytes, float32 values, batch 1, inference) counts activations as MCUNet does: in
    the order the model runs, each operation holds its input and its output, plus any tensor kept
    alive for a later use — a layer's input while its body runs when an identity or pool shortcut
    will add it back, the body's output while the pool shortcut is computed. Operations: each
    conv + batch norm + activation (folded, as deployed), the SE gate (input, its C-value gate vector,
    output), the pool shortcut's 3x3 pool and 1x1 projection, the residual add (both operands and a
    new output), the global pool and the classifier. The input image counts; weights do not.
    """
    arch = as_arch(arch)
    for name, value in (("num_classes", num_classes), ("in_chans", in_chans)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")
    res = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
    if len(res) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in res):
        raise ValueError(f"input_size={input_size!r}: expected a positive integer or (height, width)")
    height = res[0]
    w = _Walk()
    chs = arch.stem_chs
    out = _out(res, arch.stem_stride)
    w.conv_bn(in_chans, chs, 3, out)
    w.live(in_chans * res[0] * res[1], chs * out[0] * out[1])
    res = out
    for spec in arch.blocks:
        for i in range(spec.repeats):
            res = _layer(w, spec, spec.in_chs if i == 0 else spec.out_chs, spec.stride if i == 0 else 1, res)
        chs = spec.out_chs
    hw = res[0] * res[1]
    if arch.head_chs:
        w.conv_bn(chs, arch.head_chs, 1, res)
        w.live(chs * hw, arch.head_chs * hw)
        chs = arch.head_chs
    w.live(chs * hw, chs)  # global average pool
    w.params += chs * num_classes + num_classes
    w.macs += chs * num_classes
    w.live(chs, num_classes)
    return ArchProfile(w.params, w.macs, height, w.peak * BYTES_PER_VALUE, num_classes, in_chans)


def check_size(arch: Arch | str, num_classes: int = 1000, in_chans: int = 3, max_params: int = MAX_PARAMS) -> int:
    """The parameter count of `arch`; ValueError if above `max_params` (checked before building)."""
    params = arch_profile(arch, 1, num_classes, in_chans).params
    if params > max_params:
        raise ValueError(f"architecture has {params:,} parameters ({params * BYTES_PER_VALUE / 1e9:,.0f} GB of"
                         f" float32), above the {max_params:,.0f} this mnas builds: reduce its filters or expansion")
    return params


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_size: int | tuple[int, int] = 224, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass at batch 1 and the given resolution (measured)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

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
    """Params and MACs of a model (measured), or of an architecture (counted, see `arch_profile`)."""
    from torch import nn

    if isinstance(model_or_arch, nn.Module):
        return Profile(count_params(model_or_arch), count_macs(model_or_arch, input_size, in_chans), input_size)
    arch = model_or_arch
    if isinstance(arch, str):
        from mnas.space.zoo import get_arch, is_zoo_name

        arch = get_arch(arch) if is_zoo_name(arch) else as_arch(arch)
    if isinstance(arch, Arch):
        return arch_profile(arch, input_size, num_classes, in_chans)
    from mnas.models.builder import build_model  # another architecture family: build it and measure

    model = build_model(arch, num_classes=num_classes, in_chans=in_chans)
    return Profile(count_params(model), count_macs(model, input_size, in_chans), input_size)
