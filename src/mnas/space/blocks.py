"""One stage of a network (`BlockSpec`) and its canonical block string.

The grammar extends the TensorFlow MnasNet reference's block strings (REFERENCE.md) with the op
types and skip ops the reference lacks. Tokens always come in this order::

    [conv_|proj_]r<repeats>_k<kernel>_s<stride><stride>[_e<expansion>]_i<in>_o<out>[_se<ratio>][_noskip|_poolskip]

with stride 1 or 2 (``s11``, ``s22``), as in the reference and every space.

- no prefix and ``e1``: depthwise-separable conv (dw kxk, BN, act, [SE], pw 1x1, BN) — exactly what
  the reference means by an ``e1`` block;
- no prefix and ``e>=2``: mobile inverted bottleneck (MBConv) with that expansion;
- ``conv_`` prefix (no ``e``): a regular kxk conv, BN, act, [SE];
- ``proj_`` prefix (no ``e``, always ``k1``, no SE): a 1x1 conv and BN with no activation — the
  layer-wise space's skip where the identity cannot apply (stride or filters change);
- skip: identity residual by default (applied only where stride is 1 and in == out, as in the
  reference), ``_poolskip`` for a pooled shortcut, ``_noskip`` for none.

The decoder accepts only canonical strings, so ``encode(decode(s)) == s`` for every string it
accepts; anything else raises ``ValueError`` naming the offending token and what was expected.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["OPS", "SKIPS", "BlockSpec", "decode_block", "encode_block", "format_float", "parse_float"]

OPS = ("conv", "ds", "mbconv", "proj")
SKIPS = ("identity", "pool", "none")
_SKIP_TOKEN = {"identity": None, "pool": "poolskip", "none": "noskip"}
_INT = re.compile(r"[1-9][0-9]*\Z")
_PREFIXED = ("conv", "proj")  # ops written as a prefix token, with no expansion token


def format_float(x: float) -> str:
    """The one canonical text form of a float (Python's shortest round-trip repr)."""
    return repr(float(x))


def parse_float(text: str, what: str, token: str, lo: float, hi: float) -> float:
    """Parse a canonical float in [lo, hi]; ValueError naming `token` otherwise."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not lo <= value <= hi or format_float(value) != text:
        raise ValueError(
            f"bad {what} in token '{token}': expected a number in [{lo}, {hi}] written canonically"
            f" (e.g. '{format_float((lo + hi) / 2)}')"
        )
    return value


def _parse_int(text: str, what: str, token: str, lo: int = 1, hi: int = 100_000) -> int:
    if not _INT.match(text) or not lo <= int(text) <= hi:
        raise ValueError(
            f"bad {what} in token '{token}': expected an integer in [{lo}, {hi}] without leading zeros"
        )
    return int(text)


@dataclass(frozen=True)
class BlockSpec:
    """A stage of identical layers; only the first layer may change stride or channels.

    ``exp_ratio`` is 1 for ``conv`` and ``ds`` and at least 2 for ``mbconv``. ``se_ratio`` is
    relative to the block's input channels (TF reference convention), 0 for no squeeze-excite.
    """

    op: str = "mbconv"
    repeats: int = 1
    kernel_size: int = 3
    stride: int = 1
    exp_ratio: int = 6
    in_chs: int = 16
    out_chs: int = 16
    se_ratio: float = 0.0
    skip: str = "identity"

    def __post_init__(self) -> None:
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}: expected one of {', '.join(OPS)}")
        if self.skip not in SKIPS:
            raise ValueError(f"unknown skip {self.skip!r}: expected one of {', '.join(SKIPS)}")
        for name, lo, hi in (("repeats", 1, 64), ("stride", 1, 2), ("in_chs", 1, 100_000),
                             ("out_chs", 1, 100_000), ("exp_ratio", 1, 64)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"BlockSpec.{name}={value!r}: expected an integer in [{lo}, {hi}]")
        k = self.kernel_size
        if isinstance(k, bool) or not isinstance(k, int) or k < 1 or k > 15 or k % 2 == 0:
            raise ValueError(f"BlockSpec.kernel_size={k!r}: expected an odd integer in [1, 15]")
        if self.op == "mbconv" and self.exp_ratio < 2:
            raise ValueError("an MBConv with expansion 1 is a depthwise-separable conv: use op='ds'")
        if self.op != "mbconv" and self.exp_ratio != 1:
            raise ValueError(f"op {self.op!r} has no expansion: exp_ratio must be 1")
        if self.op == "proj" and k != 1:
            raise ValueError(f"a proj layer is a 1x1 conv: kernel_size must be 1, got {k}")
        se = self.se_ratio
        if not isinstance(se, (int, float)) or not math.isfinite(se) or not 0.0 <= se <= 1.0:
            raise ValueError(f"BlockSpec.se_ratio={se!r}: expected a number in [0, 1]")
        if self.op == "proj" and se > 0:
            raise ValueError("a proj layer has no squeeze-excite: se_ratio must be 0")
        object.__setattr__(self, "se_ratio", float(se))

    @property
    def mid_chs(self) -> int:
        """Channels inside the block (after expansion)."""
        return self.in_chs * self.exp_ratio

    def __str__(self) -> str:
        return encode_block(self)


def encode_block(spec: BlockSpec) -> str:
    """The canonical block string of `spec`."""
    parts = [spec.op] if spec.op in _PREFIXED else []
    parts += [f"r{spec.repeats}", f"k{spec.kernel_size}", f"s{spec.stride}{spec.stride}"]
    if spec.op not in _PREFIXED:
        parts.append(f"e{spec.exp_ratio}")
    parts += [f"i{spec.in_chs}", f"o{spec.out_chs}"]
    if spec.se_ratio > 0:
        parts.append(f"se{format_float(spec.se_ratio)}")
    if _SKIP_TOKEN[spec.skip]:
        parts.append(_SKIP_TOKEN[spec.skip])
    return "_".join(parts)


def decode_block(text: str) -> BlockSpec:
    """Parse a canonical block string; ValueError naming the offending token otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"a block string must be text, got {type(text).__name__}")
    if not text:
        raise ValueError("empty block string: expected e.g. 'r2_k3_s22_e6_i16_o24'")
    tokens = text.split("_")
    pos = 0

    def take(prefix: str, what: str, example: str) -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError(f"block '{text}' ends early: expected {what} ('{example}') next")
        tok = tokens[pos]
        if not tok.startswith(prefix) or tok == prefix:
            raise ValueError(f"bad token '{tok}' in block '{text}': expected {what} ('{example}')")
        pos += 1
        return tok

    op = "mbconv"
    if tokens[0] in _PREFIXED:
        op, pos = tokens[0], 1
    tok = take("r", "repeats", "r2")
    repeats = _parse_int(tok[1:], "repeats", tok, 1, 64)
    tok = take("k", "kernel size", "k3")
    kernel = _parse_int(tok[1:], "kernel size", tok, 1, 15)
    if kernel % 2 == 0:
        raise ValueError(f"bad kernel size in token '{tok}': expected an odd integer (k3, k5, k7)")
    tok = take("s", "stride written twice", "s22")
    half = tok[1:]
    if len(half) % 2 or half[: len(half) // 2] != half[len(half) // 2:]:
        raise ValueError(f"bad stride token '{tok}': expected the stride written twice (s11, s22)")
    if half[: len(half) // 2] not in ("1", "2"):
        raise ValueError(f"bad stride in token '{tok}': a block's stride is 1 or 2 (s11, s22), as in every space and"
                         " the MnasNet reference; downsample further with more stride-2 blocks")
    stride = int(half[0])
    exp = 1
    if op not in _PREFIXED:
        tok = take("e", "expansion", "e6")
        exp = _parse_int(tok[1:], "expansion", tok, 1, 64)
        op = "ds" if exp == 1 else "mbconv"
    tok = take("i", "input filters", "i16")
    in_chs = _parse_int(tok[1:], "input filters", tok)
    tok = take("o", "output filters", "o24")
    out_chs = _parse_int(tok[1:], "output filters", tok)
    se = 0.0
    if pos < len(tokens) and tokens[pos].startswith("se"):
        tok = tokens[pos]
        se = parse_float(tok[2:], "SE ratio", tok, 0.0, 1.0)
        if se == 0.0:
            raise ValueError(f"bad token '{tok}': omit the SE token for no squeeze-excite")
        pos += 1
    skip = "identity"
    if pos < len(tokens) and tokens[pos] in ("noskip", "poolskip"):
        skip = "none" if tokens[pos] == "noskip" else "pool"
        pos += 1
    if pos < len(tokens):
        raise ValueError(
            f"unexpected token '{tokens[pos]}' in block '{text}': after the filters only"
            " 'se<ratio>' then 'noskip' or 'poolskip' may follow"
        )
    if op == "proj" and kernel != 1:
        raise ValueError(f"bad kernel size in token 'k{kernel}' of proj block '{text}': a proj layer is 1x1 (k1)")
    if op == "proj" and se:
        raise ValueError(f"bad token 'se{format_float(se)}' in proj block '{text}': a proj layer has no squeeze-excite")
    return BlockSpec(op, repeats, kernel, stride, exp, in_chs, out_chs, se, skip)
