"""The DARTS cell (Liu et al., ICLR 2019) in the paper's CIFAR evaluation network.

A genotype names a normal and a reduction cell. Each cell reads the outputs of the two previous
cells (states 0 and 1, each through a 1x1 ReLU-conv-BN, or a factorized reduction after a
reduction cell) and has intermediate nodes (4 in DARTS); node k sums two ops, each on one of the
states 0 .. k+1; the cell's output concatenates the states listed in ``*_concat``. In a reduction
cell the ops on states 0 and 1 have stride 2. Ops: DARTS's eight (`DARTS_OPS`). The network: a
3x3 conv stem of 3C channels, L cells, reduction cells at L//3 and 2L//3 (each doubling C), an
auxiliary head on the output of cell 2L//3 (training only), global pooling and a linear
classifier; drop-path on every op but the identity during training.

Canonical text: the genotype as the DARTS code prints it, lists written out::

    Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5],
             reduce=[('max_pool_3x3', 0), ...], reduce_concat=[2, 3, 4, 5])

on one line, followed by ``" | c<C>_l<L>_<aux|noaux>_dp<drop-path>"`` unless the network is the
paper's evaluation setting ``c36_l20_aux_dp0.2``. Parsing also accepts ``range(2, 6)``, double
quotes, tuples for lists, any white space and keyword order, and a leading ``NAME = ``, as users
paste it from the DARTS code; it never evaluates the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mnas._util import check_keys
from mnas.space.blocks import format_float, parse_float
from mnas.space.cells.units import CellOp, bn_params, conv_macs, conv_out, total
from mnas.space.family import ArchFamily

__all__ = ["DARTS_OPS", "DARTS_V1", "DARTS_V2", "DartsFamily", "DartsGenotype", "parse_genotype"]

DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
DEFAULTS = {"channels": 36, "layers": 20, "auxiliary": True, "drop_path": 0.2}  # the paper's CIFAR evaluation
_KEYS = ("normal", "normal_concat", "reduce", "reduce_concat")
_TOKEN = re.compile(r"\s*(?:([A-Za-z_][A-Za-z_0-9]*)|(-?[0-9]+)|('[^']*'|\"[^\"]*\")|([()\[\],=]))")
_HEAD = re.compile(r"\s*(?:[A-Za-z_][A-Za-z_0-9]*\s*=\s*)?(?=Genotype\s*\()")
_INT = re.compile(r"[1-9][0-9]*\Z")

Edge = tuple[str, int]


@dataclass(frozen=True)
class DartsGenotype:
    """A DARTS network: the two cells' (op, input state) pairs and concatenated states, and the macro
    settings (`channels` C, `layers` L, `auxiliary` head, `drop_path` probability)."""

    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]
    channels: int = DEFAULTS["channels"]
    layers: int = DEFAULTS["layers"]
    auxiliary: bool = DEFAULTS["auxiliary"]
    drop_path: float = DEFAULTS["drop_path"]

    family = "darts"

    def __post_init__(self) -> None:
        for key in _KEYS:
            value = getattr(self, key)
            value = tuple(tuple(e) for e in value) if key in ("normal", "reduce") else tuple(value)
            object.__setattr__(self, key, value)
        for cell in ("normal", "reduce"):
            _check_cell(cell, getattr(self, cell), getattr(self, f"{cell}_concat"))
        for name in ("channels", "layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4096:
                raise ValueError(f"{name}={value!r}: expected a positive integer")
        if not isinstance(self.auxiliary, bool):
            raise ValueError(f"auxiliary={self.auxiliary!r}: expected True or False")
        d = self.drop_path
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0.0 <= d < 1.0:
            raise ValueError(f"drop_path={d!r}: expected a probability in [0, 1)")
        object.__setattr__(self, "drop_path", float(d))

    @property
    def steps(self) -> tuple[int, int]:
        """Intermediate nodes of the normal and the reduction cell."""
        return len(self.normal) // 2, len(self.reduce) // 2

    @property
    def genotype_string(self) -> str:
        """The genotype alone, as the DARTS code prints it (lists for the concatenations)."""
        def edges(cell: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"('{op}', {i})" for op, i in cell) + "]"

        def ints(values: tuple[int, ...]) -> str:
            return "[" + ", ".join(str(v) for v in values) + "]"

        return (f"Genotype(normal={edges(self.normal)}, normal_concat={ints(self.normal_concat)}, "
                f"reduce={edges(self.reduce)}, reduce_concat={ints(self.reduce_concat)})")

    @property
    def settings_string(self) -> str:
        aux = "aux" if self.auxiliary else "noaux"
        return f"c{self.channels}_l{self.layers}_{aux}_dp{format_float(self.drop_path)}"

    def __str__(self) -> str:
        if all(getattr(self, k) == v for k, v in DEFAULTS.items()):
            return self.genotype_string
        return f"{self.genotype_string} | {self.settings_string}"

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.family, "arch": str(self),
                "normal": [list(e) for e in self.normal], "normal_concat": list(self.normal_concat),
                "reduce": [list(e) for e in self.reduce], "reduce_concat": list(self.reduce_concat),
                "channels": self.channels, "layers": self.layers, "auxiliary": self.auxiliary,
                "drop_path": self.drop_path}

    def replace(self, **changes: Any) -> DartsGenotype:
        from dataclasses import replace
        return replace(self, **changes)

    @classmethod
    def parse(cls, text: str) -> DartsGenotype:
        return parse_genotype(text)


def _check_cell(cell: str, edges: tuple[Edge, ...], concat: tuple[int, ...]) -> None:
    if not edges or len(edges) % 2:
        raise ValueError(f"the {cell} cell has {len(edges)} edges: expected two per intermediate node (e.g. 8 for 4 nodes)")
    steps = len(edges) // 2
    for n, edge in enumerate(edges):
        if len(edge) != 2:
            raise ValueError(f"bad edge {edge!r} in the {cell} cell: expected ('op', input state)")
        op, src = edge
        if op not in DARTS_OPS:
            raise ValueError(f"unknown op {op!r} in the {cell} cell: expected one of {', '.join(DARTS_OPS)}")
        node = n // 2
        if isinstance(src, bool) or not isinstance(src, int) or not 0 <= src < node + 2:
            raise ValueError(f"bad input {src!r} of ('{op}', {src}) in the {cell} cell: node {node} reads states"
                             f" 0..{node + 1} (0 and 1 are the two previous cells)")
    if not concat:
        raise ValueError(f"{cell}_concat is empty: expected the states the cell outputs, e.g. [2, 3, 4, 5]")
    for s in concat:
        if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s < steps + 2:
            raise ValueError(f"bad state {s!r} in {cell}_concat: expected 0..{steps + 1}")
    if len(set(concat)) != len(concat):
        raise ValueError(f"{cell}_concat lists a state twice: {list(concat)}")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            bad = text[pos:].strip().split()[0][:20]
            raise ValueError(f"bad token '{bad}' in the genotype: expected names, numbers, quoted op names and ( ) [ ] , =")
        out.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return out


class _Reader:
    """Recursive descent over the tokens of ``Genotype(key=value, ...)``; never evaluates text."""

    def __init__(self, tokens: list[str]):
        self.tokens, self.i = tokens, 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, *expected: str) -> str:
        tok = self.peek()
        if tok is None:
            raise ValueError(f"the genotype ends early: expected {' or '.join(repr(e) for e in expected) or 'more'}")
        if expected and tok not in expected:
            raise ValueError(f"unexpected '{tok}' in the genotype: expected {' or '.join(repr(e) for e in expected)}")
        self.i += 1
        return tok

    def integer(self) -> int:
        tok = self.take()
        if not re.fullmatch(r"-?[0-9]+", tok):
            raise ValueError(f"unexpected '{tok}' in the genotype: expected an integer")
        return int(tok)

    def value(self) -> Any:
        tok = self.peek()
        if tok == "range":
            self.take("range")
            self.take("(")
            args = [self.integer()]
            while self.peek() == ",":
                self.take(",")
                args.append(self.integer())
            self.take(")")
            if len(args) > 2:
                raise ValueError(f"range({', '.join(map(str, args))}) in the genotype: expected range(start, stop)")
            return list(range(*args))
        if tok in ("[", "("):
            close = "]" if self.take() == "[" else ")"
            items = []
            while self.peek() != close:
                items.append(self.value())
                if self.peek() != close:
                    self.take(",", close)
            self.take(close)
            return items
        tok = self.take()
        if tok[:1] in "'\"":
            return tok[1:-1]
        if re.fullmatch(r"-?[0-9]+", tok):
            return int(tok)
        raise ValueError(f"unexpected '{tok}' in the genotype: expected a list, a quoted op name, an integer or range(...)")


def parse_genotype(text: str) -> DartsGenotype:
    """Parse a DARTS genotype (and optional `` | c<C>_l<L>_<aux|noaux>_dp<p>``); ValueError naming the token."""
    if not isinstance(text, str):
        raise ValueError(f"a genotype must be text, got {type(text).__name__}")
    head = _HEAD.match(text)
    if not head:
        raise ValueError(f"bad genotype {text.strip()[:40]!r}: expected 'Genotype(normal=[...], normal_concat=[...],"
                         " reduce=[...], reduce_concat=[...])'")
    body, bar, extras = text[head.end():].partition("|")
    r = _Reader(_tokens(body))
    r.take("Genotype")
    r.take("(")
    fields: dict[str, Any] = {}
    while r.peek() != ")":
        key = r.take()
        if key not in _KEYS:
            raise ValueError(f"unexpected '{key}' in the genotype: expected a keyword, one of {', '.join(_KEYS)}")
        if key in fields:
            raise ValueError(f"'{key}' appears twice in the genotype")
        r.take("=")
        fields[key] = r.value()
        if r.peek() != ")":
            r.take(",", ")")
    r.take(")")
    if r.peek() is not None:
        raise ValueError(f"unexpected '{r.peek()}' after the genotype's closing ')'")
    missing = [k for k in _KEYS if k not in fields]
    if missing:
        raise ValueError(f"the genotype lacks '{missing[0]}': expected {', '.join(_KEYS)}")
    for cell in ("normal", "reduce"):
        edges = fields[cell]
        if not isinstance(edges, list) or not all(isinstance(e, list) and len(e) == 2 and isinstance(e[0], str)
                                                  and isinstance(e[1], int) for e in edges):
            raise ValueError(f"'{cell}' in the genotype must be a list of ('op', input) pairs")
        fields[cell] = tuple((e[0], e[1]) for e in edges)
        concat = fields[f"{cell}_concat"]
        if not isinstance(concat, list) or not all(isinstance(s, int) for s in concat):
            raise ValueError(f"'{cell}_concat' in the genotype must be a list of states or range(start, stop)")
        fields[f"{cell}_concat"] = tuple(concat)
    if bar:
        if not extras.strip():
            raise ValueError("nothing after '|' in the genotype text: expected settings such as 'c36_l20_aux_dp0.2'")
        fields.update(_parse_settings(extras.strip()))
    return DartsGenotype(**fields)


def _parse_settings(text: str) -> dict[str, Any]:
    parts = text.split("_")
    if len(parts) != 4:
        raise ValueError(f"bad settings '{text}' after the genotype: expected 'c<channels>_l<layers>_<aux|noaux>_dp<p>',"
                         " e.g. 'c36_l20_aux_dp0.2'")
    c, n, aux, dp = parts
    for tok, prefix, what in ((c, "c", "channels"), (n, "l", "layers")):
        if not tok.startswith(prefix) or not _INT.match(tok[1:]):
            raise ValueError(f"bad token '{tok}' in the genotype's settings: expected {what} as '{prefix}<int>'")
    if aux not in ("aux", "noaux"):
        raise ValueError(f"bad token '{aux}' in the genotype's settings: expected 'aux' or 'noaux'")
    if not dp.startswith("dp"):
        raise ValueError(f"bad token '{dp}' in the genotype's settings: expected drop-path as 'dp<number>' (dp0.2)")
    return {"channels": int(c[1:]), "layers": int(n[1:]), "auxiliary": aux == "aux",
            "drop_path": parse_float(dp[2:], "drop-path", dp, 0.0, 0.999)}


# -- the analytic walk over the network: shapes, parameters and MACs of every op ----------------
def _fr(family: str, kind: str, cin: int, c: int, res: int) -> CellOp:
    """Factorized reduction: ReLU, two 1x1 stride-2 convs (the second offset by one pixel), concat, BN."""
    o1, o2 = conv_out(res, 2), conv_out(res - 1, 2)
    if o1 != o2:
        raise ValueError(f"a DARTS factorized reduction needs an even feature map, got {res}x{res}: use an input"
                         " size divisible by 4")
    return CellOp(family, kind, "factorized_reduce", cin, c, res, 2, 2 * cin * (c // 2) + bn_params(c),
                  2 * conv_macs(cin, c // 2, 1, o1))


def _op(op: str, c: int, res: int, stride: int) -> CellOp:
    out = conv_out(res, stride)
    if op == "skip_connect" and stride == 2:
        return _fr("darts", "cell_op", c, c, res)
    params = macs = 0
    if op.startswith("sep_conv_"):
        k = int(op[-1])
        params = 2 * (c * k * k + c * c + bn_params(c))
        macs = 2 * (conv_macs(c, c, k, out, groups=c) + conv_macs(c, c, 1, out))
    elif op.startswith("dil_conv_"):
        k = int(op[-1])
        params = c * k * k + c * c + bn_params(c)
        macs = conv_macs(c, c, k, out, groups=c) + conv_macs(c, c, 1, out)
    return CellOp("darts", "cell_op", op, c, c, res, stride, params, macs)


def darts_units(g: DartsGenotype, input_size: int, num_classes: int, in_chans: int = 3) -> list[CellOp]:
    """Every op of the evaluation network at its input shape, with exact parameters and MACs (the
    auxiliary head's MACs are 0: it runs in training only)."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 4 or input_size % 4:
        raise ValueError(f"input_size={input_size!r}: a DARTS network needs a multiple of 4 (two 2x reductions)")
    f, C, L = "darts", g.channels, g.layers
    c_stem = 3 * C  # DARTS's stem multiplier
    units = [CellOp(f, "stem", "conv_3x3", in_chans, c_stem, input_size, 1, 9 * in_chans * c_stem + bn_params(c_stem),
                    conv_macs(in_chans, c_stem, 3, input_size))]
    c_pp, c_p, c = c_stem, c_stem, C
    res_pp = res_p = input_size
    reduction_prev = False
    aux_in = aux_res = 0
    for i in range(L):
        reduction = i in (L // 3, 2 * L // 3)
        if reduction:
            c *= 2
        if reduction_prev:
            units.append(_fr(f, "preprocess", c_pp, c, res_pp))
        else:
            units.append(CellOp(f, "preprocess", "relu_conv_bn_1x1", c_pp, c, res_pp, 1, c_pp * c + bn_params(c),
                                conv_macs(c_pp, c, 1, res_pp)))
        units.append(CellOp(f, "preprocess", "relu_conv_bn_1x1", c_p, c, res_p, 1, c_p * c + bn_params(c),
                            conv_macs(c_p, c, 1, res_p)))
        edges, concat = (g.reduce, g.reduce_concat) if reduction else (g.normal, g.normal_concat)
        out_res = conv_out(res_p, 2) if reduction else res_p
        for op, src in edges:
            stride = 2 if reduction and src < 2 else 1
            units.append(_op(op, c, res_p if src < 2 else out_res, stride))
        c_pp, c_p = c_p, len(concat) * c
        res_pp, res_p = res_p, out_res
        reduction_prev = reduction
        if i == 2 * L // 3:
            aux_in, aux_res = c_p, res_p
    if g.auxiliary:
        # ReLU, 5x5 average pool (stride 3), 1x1 conv to 128 + BN, 2x2 conv to 768 + BN, linear (DARTS's CIFAR head)
        params = aux_in * 128 + bn_params(128) + 128 * 768 * 4 + bn_params(768) + 768 * num_classes + num_classes
        units.append(CellOp(f, "aux_head", "aux_head_cifar", aux_in, num_classes, aux_res, 1, params, 0, True))
    units.append(CellOp(f, "head", "pool_linear", c_p, num_classes, res_p, 1, c_p * num_classes + num_classes,
                        c_p * num_classes))
    return units


class DartsFamily(ArchFamily):
    """The DARTS cell family: text starting with 'Genotype(' (optionally 'NAME = Genotype(')."""

    name = "darts"
    arch_type = DartsGenotype

    def matches(self, text: str) -> bool:
        return isinstance(text, str) and _HEAD.match(text) is not None

    def parse(self, text: str) -> DartsGenotype:
        return parse_genotype(text)

    def from_dict(self, data: Any) -> DartsGenotype:
        if isinstance(data, dict) and "arch" not in data and "normal" in data:
            keys = (*_KEYS, *DEFAULTS)
            check_keys(data, (*keys, "family"),
                       lambda key: f"unknown key {key!r} in a DARTS genotype's JSON: expected {', '.join(keys)}")
            return DartsGenotype(**{k: data[k] for k in keys if k in data})
        return super().from_dict(data)

    def count(self, arch: DartsGenotype, num_classes: int, in_chans: int = 3, input_size: int = 32) -> tuple[int, int]:
        return total(darts_units(arch, input_size, num_classes, in_chans))

    def layer_signatures(self, arch: DartsGenotype, input_size: int, num_classes: int, in_chans: int = 3) -> list[CellOp]:
        return darts_units(arch, input_size, num_classes, in_chans)


# The published cells (the DARTS repository's genotypes.py): V1 first-order, V2 second-order search.
DARTS_V1 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 0), ('sep_conv_3x3', 1),"
    " ('skip_connect', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('skip_connect', 2)], normal_concat=[2, 3, 4, 5],"
    " reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('max_pool_3x3', 0),"
    " ('skip_connect', 2), ('skip_connect', 2), ('avg_pool_3x3', 0)], reduce_concat=[2, 3, 4, 5])")
DARTS_V2 = parse_genotype(
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),"
    " ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5],"
    " reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0),"
    " ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])")
