"""Lookup-table latency predictor (as ProxylessNAS and OFA do): the sum of per-layer latencies.

Every layer of a network is named by a *signature*: its kind (stem, layer, head), op, kernel,
expansion, SE ratio, skip, input and output filters, stride, activation and input resolution.
The identity skip that cannot apply (stride != 1 or filters change) builds the same network as no
skip, so it is written ``none``: one signature, one measurement. A cell family's units are its
`layer_signatures` (each op of the cell at each stage's shape, keyed by `CellOp.key`). A prediction is

    scale * sum(table[signature] for each layer) + overhead_ms

with `scale` and `overhead_ms` fitted on whole-model measurements when the table is built (see
`mnas.latency.lut_build`). An architecture with a layer the table lacks is refused with the
missing signature named — never a silent default. Torch-free; building the table is not.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mnas.latency.base import RUNTIME_OF, LatencyBackend, LatencyResult
from mnas.space import Arch, BlockSpec, as_arch, is_architecture
from mnas.space.blocks import format_float

__all__ = ["FORMAT", "LayerUnit", "LookupTable", "arch_units", "block_units", "conv_out", "head_unit", "stem_unit"]

FORMAT = "mnas-latency-lut/1"


def conv_out(res: int, stride: int) -> int:
    """Output resolution of an odd-kernel 'same'-padded conv (or 3x3 pool) with `stride`."""
    return (res - 1) // stride + 1


@dataclass(frozen=True)
class LayerUnit:
    """One measured unit: what to build, at which input resolution, and its table key."""

    kind: str  # "stem" | "layer" | "head"
    in_chs: int
    out_chs: int  # for a head: the head conv's filters (0 = no head conv)
    res: int
    stride: int = 1
    kernel_size: int = 1
    op: str = ""
    exp_ratio: int = 1
    se_ratio: float = 0.0
    skip: str = "none"
    act: str = "relu"
    num_classes: int = 0

    @property
    def key(self) -> str:
        if self.kind == "stem":
            return f"stem_i{self.in_chs}_o{self.out_chs}_k{self.kernel_size}_s{self.stride}_{self.act}@{self.res}"
        if self.kind == "head":
            return f"head_i{self.in_chs}_h{self.out_chs}_c{self.num_classes}_{self.act}@{self.res}"
        return (f"{self.op}_k{self.kernel_size}_s{self.stride}_e{self.exp_ratio}_i{self.in_chs}_o{self.out_chs}"
                f"_se{format_float(self.se_ratio)}_{self.skip}_{self.act}@{self.res}")

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.in_chs, self.res, self.res)


def stem_unit(arch: Arch, input_size: int, in_chans: int = 3) -> LayerUnit:
    return LayerUnit("stem", in_chans, arch.stem_chs, input_size, arch.stem_stride, 3, act=arch.act)


def head_unit(arch: Arch, res: int, num_classes: int) -> LayerUnit:
    return LayerUnit("head", arch.blocks[-1].out_chs, arch.head_chs, res, act=arch.act, num_classes=num_classes)


def _layer(block: BlockSpec, in_chs: int, stride: int, res: int, act: str) -> LayerUnit:
    skip = block.skip
    if skip == "identity" and (stride != 1 or in_chs != block.out_chs):
        skip = "none"  # the identity skip does not apply: the same network as no skip
    return LayerUnit("layer", in_chs, block.out_chs, res, stride, block.kernel_size, block.op, block.exp_ratio,
                     block.se_ratio, skip, act)


def block_units(block: BlockSpec, res: int, act: str) -> tuple[list[LayerUnit], int]:
    """The block's layers as units (first layer, then the repeated one), and the output resolution."""
    first = _layer(block, block.in_chs, block.stride, res, act)
    res = conv_out(res, block.stride)
    units = [first]
    if block.repeats > 1:
        units += [_layer(block, block.out_chs, 1, res, act)] * (block.repeats - 1)
    return units, res


def arch_units(arch: Any, input_size: int, num_classes: int, in_chans: int = 3) -> list[Any]:
    """Every unit of `arch` at `input_size`, in order. A block chain: stem, each block's layers, head
    (`LayerUnit`s). Any other family: its `layer_signatures` (`mnas.space.CellOp`s, each op at its input
    shape), less the ops that run only in training (the auxiliary head), which take no inference time."""
    if not isinstance(arch, Arch):
        from mnas.space import family_of

        signatures = family_of(arch).layer_signatures(arch, input_size, num_classes, in_chans)
        return [u for u in signatures if not getattr(u, "train_only", False)]
    units = [stem_unit(arch, input_size, in_chans)]
    res = conv_out(input_size, arch.stem_stride)
    for block in arch.blocks:
        layers, res = block_units(block, res, arch.act)
        units += layers
    units.append(head_unit(arch, res, num_classes))
    return units


class LookupTable(LatencyBackend):
    """Latency predicted from a table of per-layer latencies measured on the device (see module doc).

    `predict` takes microseconds: block sums are cached by (block, resolution), totals by arch.
    """

    name = "lut"

    def __init__(self, entries: dict[str, float], input_size: int, num_classes: int, *, batch_size: int = 1,
                 in_chans: int = 3, scale: float = 1.0, overhead_ms: float = 0.0, meta: dict[str, Any] | None = None,
                 path: str | os.PathLike | None = None):
        super().__init__()
        self.entries = {str(k): float(v) for k, v in entries.items()}
        self.input_size, self.num_classes = input_size, num_classes
        self.batch_size, self.in_chans = batch_size, in_chans
        self.scale, self.overhead_ms = float(scale), float(overhead_ms)
        self.meta = dict(meta or {})
        self.path = str(path) if path is not None else None
        self._block_cache: dict[tuple, tuple[float, int]] = {}
        self._ends_cache: dict[tuple, float] = {}  # stem and head latencies
        self._arch_cache: dict[Any, float] = {}

    # -- persistence ------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike) -> LookupTable:
        """Read a table written by `build_lut`; ValueError if it is not one, or is unfinished."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lookup table not found: {path}")
        try:
            data = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path} is not a latency lookup table (not JSON: {exc})") from None
        except RecursionError:
            raise ValueError(f"{path} is not a latency lookup table (JSON nested too deeply)") from None
        return cls.from_dict(data, path=path)

    @classmethod
    def from_dict(cls, data: Any, path: str | os.PathLike | None = None) -> LookupTable:
        where = path or "the table"
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"{where} is not a latency lookup table (expected format {FORMAT!r})")
        if not data.get("complete"):
            raise ValueError(f"{where} is an unfinished build: run 'mnas latency build-lut' with the same"
                             " --out and settings to resume it")
        for key, kind in (("space", dict), ("backend", dict), ("fit", dict), ("fit_points", list), ("references", list),
                          ("runtime", str), ("precision", str)):
            if key in data and not isinstance(data[key], kind):
                expected = {dict: "JSON object", list: "list", str: "string"}[kind]
                raise ValueError(f"{where} is a damaged lookup table ('{key}' is a {type(data[key]).__name__},"
                                 f" expected a {expected})")
        try:
            entries = {k: float(v["ms"]) for k, v in data["entries"].items()}
            fit = data.get("fit", {})
            sizes = {"batch_size": int(data.get("batch_size", 1)), "in_chans": int(data.get("in_chans", 3))}
            return cls(entries, int(data["input_size"]), int(data["num_classes"]), **sizes,
                       scale=float(fit.get("scale", 1.0)), overhead_ms=float(fit.get("overhead_ms", 0.0)),
                       meta=data, path=path)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{where} is a damaged lookup table ({type(exc).__name__}: {exc})") from None

    # -- what the table stands for ----------------------------------------------------------
    @property
    def deployment(self) -> tuple[str, str]:
        """(runtime, precision) the table was measured in; tables from before precision existed are
        the runtime of the backend that built them (ONNX Runtime for a device server), fp32."""
        source = self.meta.get("backend") if isinstance(self.meta.get("backend"), dict) else {}
        settings = source.get("settings") if isinstance(source.get("settings"), dict) else {}
        name = str(source.get("backend") or "onnxruntime")
        runtime = self.meta.get("runtime") or RUNTIME_OF.get(name, name)
        precision = self.meta.get("precision") or settings.get("precision") or "fp32"
        return str(runtime), str(precision)

    @property
    def precision(self) -> str:  # type: ignore[override]
        return self.deployment[1]

    def check_deployment(self, runtime: str | None = None, precision: str | None = None) -> None:
        """ValueError (one line) unless the table was measured in `runtime` and `precision` (None: any)."""
        built_rt, built_prec = self.deployment
        runtime = RUNTIME_OF.get(runtime, runtime) if runtime else None
        if (runtime is None or runtime == built_rt) and (precision is None or precision == built_prec):
            return
        want_rt, want_prec = runtime or built_rt, precision or built_prec
        raise ValueError(f"{self.path or 'the lookup table'} was measured in {built_rt} {built_prec}, not {want_rt}"
                         f" {want_prec}: build a table with 'mnas latency build-lut --backend {want_rt} --precision"
                         f" {want_prec}', or use --backend {built_rt} --precision {built_prec}")

    # -- prediction -------------------------------------------------------------------------
    def _lookup(self, unit: Any) -> float:
        try:
            return self.entries[unit.key]
        except KeyError:
            space = self.meta.get("space", {})
            made = f" (built for {self.meta.get('space_type', 'MnasNetSpace')} at {self.input_size}x{self.input_size}"
            made += f", width x{space['width_mult']})" if "width_mult" in space else ")"
            raise ValueError(f"layer '{unit.key}' is not in the lookup table{made}: build a table that covers this"
                             " architecture with 'mnas latency build-lut'") from None

    def _block_ms(self, block: BlockSpec, res: int, act: str) -> tuple[float, int]:
        key = (block, res, act)
        hit = self._block_cache.get(key)
        if hit is None:
            units, out_res = block_units(block, res, act)
            hit = (sum(self._lookup(u) for u in units), out_res)
            self._block_cache[key] = hit
        return hit

    def predict(self, arch: Any) -> float:
        """Predicted latency in ms at the table's input size and classes; ValueError for a layer it lacks."""
        cacheable = isinstance(arch, str) or is_architecture(arch)
        hit = self._arch_cache.get(arch) if cacheable else None
        if hit is not None:
            return hit
        a = as_arch(arch)
        if not isinstance(a, Arch):  # another family: the sum over its ops (a cell repeats few distinct ones)
            total = sum(self._lookup(u) for u in arch_units(a, self.input_size, self.num_classes, self.in_chans))
            return self._remember(arch, self.scale * total + self.overhead_ms, cacheable)
        ends = self._ends_cache
        stem = (a.stem_chs, a.stem_stride, a.act)
        if stem not in ends:
            ends[stem] = self._lookup(stem_unit(a, self.input_size, self.in_chans))
        total = ends[stem]
        res = conv_out(self.input_size, a.stem_stride)
        for block in a.blocks:
            ms, res = self._block_ms(block, res, a.act)
            total += ms
        head = (a.blocks[-1].out_chs, a.head_chs, res, a.act)
        if head not in ends:
            ends[head] = self._lookup(head_unit(a, res, self.num_classes))
        total += ends[head]
        return self._remember(arch, self.scale * total + self.overhead_ms, cacheable)

    def _remember(self, arch: Any, ms: float, cacheable: bool) -> float:
        if cacheable:
            if len(self._arch_cache) > 1_000_000:
                self._arch_cache.clear()
            self._arch_cache[arch] = ms
        return ms

    def missing(self, arch: Any) -> list[str]:
        """Signatures of `arch`'s layers that the table lacks (empty: it can be predicted)."""
        units = arch_units(as_arch(arch), self.input_size, self.num_classes, self.in_chans)
        return sorted({u.key for u in units if u.key not in self.entries})

    # -- LatencyBackend ---------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        runtime, precision = self.deployment
        return {"table": self.path, "input_size": self.input_size, "num_classes": self.num_classes,
                "batch_size": self.batch_size, "source": self.meta.get("backend_key"), "runtime": runtime,
                "precision": precision}

    def describe(self) -> dict[str, Any]:
        source = self.meta.get("backend", {})
        return {"backend": self.name, "settings": self.settings(), "device": source.get("device", {}),
                "runtime": source.get("runtime", {}), "entries": len(self.entries),
                "fit": {"scale": self.scale, "overhead_ms": self.overhead_ms}}

    def _measure(self, arch: Arch, input_size: int, num_classes: int, batch_size: int,
                 in_chans: int = 3) -> LatencyResult:
        for what, asked, built in (("input size", input_size, self.input_size),
                                   ("number of classes", num_classes, self.num_classes),
                                   ("batch size", batch_size, self.batch_size),
                                   ("input channels", in_chans, self.in_chans)):
            if asked != built:
                raise ValueError(f"the lookup table was built for {what} {built}, not {asked}: build one for {asked}")
        ms = self.predict(arch)
        source = self.meta.get("backend", {})
        return LatencyResult(median_ms=ms, iqr_ms=0.0, cv=0.0, n=0, backend=self.name, settings=self.settings(),
                             input_size=input_size, batch_size=batch_size, num_classes=num_classes, in_chans=in_chans,
                             device=source.get("device", {}), runtime=source.get("runtime", {}),
                             min_ms=math.nan, wall_median_ms=math.nan, number=0, clock="predicted", arch=str(arch))
