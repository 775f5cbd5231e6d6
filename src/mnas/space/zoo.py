"""Reference architectures (REFERENCE.md) as `Arch` values, with depth (width) multipliers.

A multiplier scales every filter count, the stem included, rounded to a multiple of 8 and never
below 90% of the unrounded value; repeats are not scaled. MnasNet keeps its 1280-filter head at
every multiplier (torchvision and timm agree); MobileNetV2 widens the head only above 1.0.
Names: ``mnasnet_a1``, ``mnasnet_b1``, ``mnasnet_small``, ``mobilenetv2``, optionally with a
multiplier suffix such as ``mnasnet_b1_x0.5``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from mnas._util import make_divisible
from mnas.space.arch import Arch, decode_arch

__all__ = ["ZOO", "ZOO_LISTING", "adapt_strides", "closest_zoo_name", "for_space", "get_arch", "is_zoo_name",
           "looks_like_zoo_name", "scale_arch", "unknown_model_message"]

_A1 = ("r1_k3_s11_e1_i32_o16_noskip, r2_k3_s22_e6_i16_o24, r3_k5_s22_e3_i24_o40_se0.25,"
       " r4_k3_s22_e6_i40_o80, r2_k3_s11_e6_i80_o112_se0.25, r3_k5_s22_e6_i112_o160_se0.25,"
       " r1_k3_s11_e6_i160_o320")
_B1 = ("r1_k3_s11_e1_i32_o16_noskip, r3_k3_s22_e3_i16_o24, r3_k5_s22_e3_i24_o40,"
       " r3_k5_s22_e6_i40_o80, r2_k3_s11_e6_i80_o96, r4_k5_s22_e6_i96_o192,"
       " r1_k3_s11_e6_i192_o320_noskip")
# REFERENCE.md writes the first block as i16, a nominal value the TF builder ignores: the real
# network's stem has 8 filters, so the block takes 8 (and, with 8 -> 8 at stride 1, has a residual).
_SMALL = ("r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16, r2_k3_s22_e6_i16_o16,"
          " r4_k5_s22_e6_i16_o32_se0.25, r3_k3_s11_e6_i32_o32_se0.25,"
          " r3_k5_s22_e6_i32_o88_se0.25, r1_k3_s11_e6_i88_o144 | s2_h1280_d0.0_relu")
_MBV2 = ("r1_k3_s11_e1_i32_o16, r2_k3_s22_e6_i16_o24, r3_k3_s22_e6_i24_o32,"
         " r4_k3_s22_e6_i32_o64, r3_k3_s11_e6_i64_o96, r3_k3_s22_e6_i96_o160,"
         " r1_k3_s11_e6_i160_o320 | s2_h1280_d0.2_relu6")


def scale_arch(arch: Arch, multiplier: float, scale_head: Callable[[int, float], int] | None = None) -> Arch:
    """Scale every filter count of `arch` by `multiplier` (rounded to multiples of 8)."""
    if not 0 < multiplier <= 10:
        raise ValueError(f"multiplier {multiplier!r} out of range: expected a number in (0, 10]")
    if multiplier == 1.0:
        return arch
    scale = lambda c: make_divisible(c * multiplier, 8)  # noqa: E731
    blocks = tuple(replace(b, in_chs=scale(b.in_chs), out_chs=scale(b.out_chs)) for b in arch.blocks)
    head = scale_head(arch.head_chs, multiplier) if scale_head else arch.head_chs
    return replace(arch, blocks=blocks, head_chs=head)


def _mbv2_head(head: int, multiplier: float) -> int:
    return make_divisible(head * max(1.0, multiplier), 8)


ZOO: dict[str, Callable[[float], Arch]] = {
    "mnasnet_a1": lambda m=1.0: scale_arch(decode_arch(_A1), m),
    "mnasnet_b1": lambda m=1.0: scale_arch(decode_arch(_B1), m),
    "mnasnet_small": lambda m=1.0: scale_arch(decode_arch(_SMALL), m),
    "mobilenetv2": lambda m=1.0: scale_arch(decode_arch(_MBV2), m, _mbv2_head),
}

# What `mnas models` lists: every published variant in REFERENCE.md, plus the x0.5 MobileNetV2 the
# training benchmarks use.
ZOO_LISTING = (
    "mnasnet_a1_x0.5", "mnasnet_a1_x0.75", "mnasnet_a1", "mnasnet_a1_x1.4",
    "mnasnet_b1_x0.5", "mnasnet_b1_x0.75", "mnasnet_b1", "mnasnet_b1_x1.3", "mnasnet_b1_x1.4",
    "mnasnet_small", "mobilenetv2_x0.5", "mobilenetv2",
)

_BLOCK_TOKEN = re.compile(r"([rkseio][0-9]+|se[0-9.]+|noskip|poolskip|conv|proj)\Z")
_NAME = re.compile(r"(?P<base>[a-z0-9_]+?)(?:_x(?P<mult>[0-9]*\.?[0-9]+))?\Z")


def is_zoo_name(name: str) -> bool:
    m = _NAME.match(name)
    return bool(m) and m.group("base") in ZOO


def closest_zoo_name(name: str) -> str | None:
    """The zoo name nearest to a mistyped `name` (difflib), keeping its multiplier; None if none is close."""
    m = _NAME.match(name.strip().lower()) if isinstance(name, str) else None
    if not m:
        return None
    base = difflib.get_close_matches(m.group("base"), list(ZOO), n=1, cutoff=0.6)
    if base:
        return base[0] + (f"_x{m.group('mult')}" if m.group("mult") else "")
    found = difflib.get_close_matches(name.strip().lower(), list(ZOO_LISTING), n=1, cutoff=0.6)
    return found[0] if found else None


def unknown_model_message(name: str) -> str:
    """"unknown model 'x', did you mean 'y'?" (or the list of zoo models when nothing is close)."""
    close = closest_zoo_name(name)
    hint = f", did you mean {close!r}?" if close else f": expected one of {', '.join(ZOO)} (optionally _x<multiplier>)"
    return f"unknown model {name!r}{hint} (see 'mnas models')"


def looks_like_zoo_name(text: str) -> bool:
    """True for text shaped like a model name rather than block strings (no block tokens, no separators)."""
    if not isinstance(text, str) or any(c in text for c in ", |\t\n"):
        return False
    text = text.strip().lower()
    return bool(_NAME.match(text)) and not any(_BLOCK_TOKEN.match(t) for t in text.split("_"))


def get_arch(name: str, multiplier: float | None = None) -> Arch:
    """The zoo architecture `name` (e.g. ``mnasnet_b1`` or ``mnasnet_b1_x0.5``)."""
    m = _NAME.match(name) if isinstance(name, str) else None
    if not m or m.group("base") not in ZOO:
        raise ValueError(unknown_model_message(str(name)))
    mult = float(m.group("mult")) if m.group("mult") else 1.0
    if multiplier is not None:
        mult *= multiplier
    return ZOO[m.group("base")](mult)


def adapt_strides(arch: Arch, input_size: int, min_feature_size: int = 4) -> Arch:
    """`arch` with its earliest stride-2 stages set to stride 1 until the final feature map is at
    least `min_feature_size` pixels — the same rule `MnasNetSpace` applies to small inputs, so a
    zoo model at 32x32 is comparable with the space's candidates."""
    strides = [arch.stem_stride] + [b.stride for b in arch.blocks]
    down = [i for i, s in enumerate(strides) if s > 1]
    size = input_size
    for s in strides:
        size = -(-size // s)
    while down and size < min_feature_size:
        strides[down.pop(0)] = 1
        size = input_size
        for s in strides:
            size = -(-size // s)
    blocks = tuple(replace(b, stride=s) for b, s in zip(arch.blocks, strides[1:], strict=True))
    return replace(arch, stem_stride=strides[0], blocks=blocks)


def for_space(arch: Arch, input_size: int, strides: Sequence[int] | None = None) -> Arch:
    """A zoo model laid out as a space's candidates are at `input_size`: the space's stem and block
    `strides` where it has one per block (a space built with ``strides=`` downsamples where the user
    said, and "as fast as MobileNetV2" must mean MobileNetV2 downsampling there too), else
    `adapt_strides`. With a space's default strides both give the same model."""
    arch = adapt_strides(arch, input_size)
    if strides is None or len(strides) != len(arch.blocks) + 1:
        return arch
    return replace(arch, stem_stride=int(strides[0]),
                   blocks=tuple(replace(b, stride=int(s)) for b, s in zip(arch.blocks, strides[1:], strict=True)))
