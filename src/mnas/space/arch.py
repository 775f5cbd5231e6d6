"""A whole network (`Arch`): stem, blocks, head, and its canonical text and JSON forms.

Canonical text: the block strings joined by ``", "``, then ``" | "`` and the global settings as
``s<stem stride>_h<head filters>_d<dropout>_<activation>``, e.g.::

    r1_k3_s11_e1_i32_o16_noskip, r2_k3_s22_e6_i16_o24 | s2_h1280_d0.2_relu

This string is the architecture's identity everywhere (dedup, cache and storage key). When
parsing, blocks may be separated by commas and/or white space, and the global part may be left out
(MnasNet defaults: stem stride 2, head 1280, dropout 0.2, ReLU). The stem's filters are the first
block's input filters, so they are not written twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from mnas._util import check_keys
from mnas.space.blocks import BlockSpec, decode_block, encode_block, format_float, parse_float

__all__ = ["ACTIVATIONS", "Arch", "decode_arch", "encode_arch"]

ACTIVATIONS = ("relu", "relu6", "swish", "hswish")
_GLOBAL_KEYS = ("blocks", "stem_stride", "head_chs", "dropout", "act")
_INT = re.compile(r"(0|[1-9][0-9]*)\Z")


@dataclass(frozen=True)
class Arch:
    """A network: 3x3 stem conv (filters = first block's input), `blocks`, 1x1 head conv, classifier.

    ``head_chs=0`` means no head conv (the classifier reads the last block's output). Consecutive
    blocks must chain: each block's input filters equal the previous block's output filters.
    """

    blocks: tuple[BlockSpec, ...] = field(default_factory=tuple)
    stem_stride: int = 2
    head_chs: int = 1280
    dropout: float = 0.2
    act: str = "relu"

    def __post_init__(self) -> None:
        blocks = tuple(self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if not blocks:
            raise ValueError("an architecture needs at least one block")
        for i, b in enumerate(blocks):
            if not isinstance(b, BlockSpec):
                raise ValueError(f"block {i} is a {type(b).__name__}, expected a BlockSpec")
            if i and b.in_chs != blocks[i - 1].out_chs:
                raise ValueError(
                    f"block {i} ('{encode_block(b)}') takes i{b.in_chs} but block {i - 1} gives"
                    f" o{blocks[i - 1].out_chs}: input filters must equal the previous output"
                )
        if isinstance(self.stem_stride, bool) or self.stem_stride not in (1, 2, 3, 4):
            raise ValueError(f"stem_stride={self.stem_stride!r}: expected 1, 2, 3 or 4")
        h = self.head_chs
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h <= 100_000:
            raise ValueError(f"head_chs={h!r}: expected an integer >= 0 (0 = no head conv)")
        d = self.dropout
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"dropout={d!r}: expected a number in [0, 1)")
        object.__setattr__(self, "dropout", float(d))
        if self.act not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.act!r}: expected one of {', '.join(ACTIVATIONS)}")

    @property
    def stem_chs(self) -> int:
        return self.blocks[0].in_chs

    @property
    def num_layers(self) -> int:
        return sum(b.repeats for b in self.blocks)

    def replace(self, **changes: Any) -> Arch:
        return replace(self, **changes)

    def __str__(self) -> str:
        return encode_arch(self)

    # -- JSON -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "blocks": [encode_block(b) for b in self.blocks],
            "stem_stride": self.stem_stride,
            "head_chs": self.head_chs,
            "dropout": self.dropout,
            "act": self.act,
        }

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        if not isinstance(data, dict):
            raise ValueError(f"an architecture in JSON must be an object, got {type(data).__name__}")
        check_keys(data, _GLOBAL_KEYS,
                   lambda key: f"unknown key {key!r} in architecture JSON: expected {', '.join(_GLOBAL_KEYS)}")
        blocks = data.get("blocks")
        if isinstance(blocks, str):
            blocks = _split_blocks(blocks)
        if not isinstance(blocks, list) or not all(isinstance(b, str) for b in blocks):
            raise ValueError("'blocks' in architecture JSON must be a list of block strings")
        kwargs = {k: data[k] for k in _GLOBAL_KEYS[1:] if k in data}
        return cls(tuple(decode_block(b) for b in blocks), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"architecture JSON does not parse: {exc.msg} at line {exc.lineno}") from None
        return cls.from_dict(data)

    @classmethod
    def parse(cls, text: str) -> Arch:
        return decode_arch(text)


def _split_blocks(text: str) -> list[str]:
    return [t for t in re.split(r"[\s,]+", text.strip()) if t]


def encode_arch(arch: Arch) -> str:
    """The canonical text of `arch`."""
    blocks = ", ".join(encode_block(b) for b in arch.blocks)
    extras = f"s{arch.stem_stride}_h{arch.head_chs}_d{format_float(arch.dropout)}_{arch.act}"
    return f"{blocks} | {extras}"


def decode_arch(text: str) -> Arch:
    """Parse an architecture's text; ValueError naming the offending token otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"an architecture string must be text, got {type(text).__name__}")
    if text.count("|") > 1:
        raise ValueError("an architecture string has at most one '|' (blocks | globals)")
    body, _, extras = text.partition("|")
    blocks = _split_blocks(body)
    if not blocks:
        raise ValueError("no blocks in architecture string: expected e.g. 'r1_k3_s11_e1_i32_o16, ...'")
    kwargs = _decode_globals(extras.strip()) if "|" in text else {}
    try:
        decoded = tuple(decode_block(b) for b in blocks)
    except ValueError:
        from mnas.space.zoo import looks_like_zoo_name, unknown_model_message  # zoo imports this module

        if "|" not in text and looks_like_zoo_name(text):  # a mistyped zoo name, not a block string
            raise ValueError(unknown_model_message(text.strip())) from None
        raise
    return Arch(decoded, **kwargs)


def _decode_globals(text: str) -> dict[str, Any]:
    tokens = text.split("_")
    if len(tokens) != 4:
        raise ValueError(
            f"bad global settings '{text}': expected 's<stem stride>_h<head>_d<dropout>_<act>',"
            " e.g. 's2_h1280_d0.2_relu'"
        )
    s, h, d, act = tokens
    for tok, prefix, what in ((s, "s", "stem stride"), (h, "h", "head filters")):
        if not tok.startswith(prefix) or not _INT.match(tok[1:]):
            raise ValueError(f"bad token '{tok}' in global settings: expected {what} as '{prefix}<int>'")
    if not d.startswith("d"):
        raise ValueError(f"bad token '{d}' in global settings: expected dropout as 'd<number>' (d0.2)")
    dropout = parse_float(d[1:], "dropout", d, 0.0, 0.999)
    if act not in ACTIVATIONS:
        raise ValueError(f"bad token '{act}' in global settings: expected an activation ({', '.join(ACTIVATIONS)})")
    return {"stem_stride": int(s[1:]), "head_chs": int(h[1:]), "dropout": dropout, "act": act}


def as_arch(value: Arch | str | Iterable[str] | dict) -> Arch:
    """Accept an architecture of any family (`mnas.space.family`), its text or JSON dict, or a list
    of block strings. Text and dicts go to the family whose form they are (block strings by default)."""
    if isinstance(value, Arch):
        return value
    from mnas.space import family  # imports this module: resolved at call time
    if isinstance(value, str):
        return family.parse_arch(value)
    if isinstance(value, dict):
        return family.arch_from_dict(value)
    if family.is_architecture(value):
        return value
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable):  # None, a number: JSON's `null`
        raise ValueError(f"an architecture must be its text, a JSON object or a list of block strings, got"
                         f" {type(value).__name__}")
    return Arch(tuple(decode_block(b) for b in value))
