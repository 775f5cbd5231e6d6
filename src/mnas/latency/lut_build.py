"""Building a lookup table on a device, and checking it against real measurements.

The measured unit is one layer alone in a small ONNX graph (batch norm calibrated, folded), timed
by the chosen backend; an empty graph's time (the runtime's fixed cost per call) is subtracted
from each. Whole networks differ from the sum of their layers in ways a per-layer table cannot see
(weights evicted by other layers, data-layout reorders at every small graph's boundary, the one
per-call cost), so a few random networks of the space are measured whole and
``measured ~ scale * sum + overhead_ms`` is fitted by least squares on relative error.

The build writes its file atomically every few entries, and a build pointed at an unfinished file
of the same settings resumes from the entries it holds. It records the machine's load while it ran
(``load``: the 1-minute load average's min, mean and max, and the CPUs), which validation prints
beside the table's error: a table built on a busy machine is less accurate, and now it says so.

Whole networks (the fit's, and validation's) are measured in interleaved rounds
(`measure_interleaved`): each round is a pass over all of them with a share of the protocol's
samples, and each figure is the median of its rounds, so a burst of load is shared by all of them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

from mnas.latency.base import LatencyBackend, LatencyResult, OnnxBackend, Protocol
from mnas.latency.device import machine_load
from mnas.latency.lut import FORMAT, LayerUnit, LookupTable, arch_units, block_units, conv_out, head_unit, stem_unit
from mnas.space import Arch, MnasNetSpace, as_arch
from mnas.space.base import SearchSpace

__all__ = ["build_lut", "check_table_path", "enumerate_units", "fit_overhead", "measure_interleaved", "recalibrate",
           "reference_archs", "unit_module", "unit_shape", "validate_lut"]

Progress = Callable[[int, int, str], None]


def enumerate_units(space: SearchSpace, in_chans: int = 3) -> list[Any]:
    """Every distinct layer signature of `space` at its input size: stem, each block's first and
    repeated layer for every choice and every input filter count, head. In a stable order.

    Another space (a cell space): the units of the all-first-choice network and of every network
    that changes one or two decisions from it. That covers a space where an op's shape depends on
    at most two decisions (NB201: an edge's op; DARTS: an edge's op and its input node, which sets
    the stride in a reduction cell); a unit it misses is refused by name at prediction, never guessed."""
    if not isinstance(space, MnasNetSpace):
        return _enumerate_two_changes(space, in_chans)
    per = len(space.options)
    base = space.decode([0] * len(space.decisions))
    units: dict[str, LayerUnit] = {}

    def add(unit: LayerUnit) -> None:
        units.setdefault(unit.key, unit)

    add(stem_unit(base, space.input_size, in_chans))
    res = conv_out(space.input_size, base.stem_stride)
    in_options = {base.stem_chs}
    for i in range(len(base.blocks)):
        choices = [range(len(d)) for d in space.decisions[i * per:(i + 1) * per]]
        specs = {}
        for combo in itertools.product(*choices):
            tokens = [0] * len(space.decisions)
            tokens[i * per:(i + 1) * per] = combo
            block = space.decode(tokens).blocks[i]
            for in_chs in sorted(in_options):
                spec = replace(block, in_chs=in_chs)
                specs[spec] = None
        out_res = res
        for spec in specs:
            layers, out_res = block_units(spec, res, base.act)
            for unit in dict.fromkeys(layers):
                add(unit)
        in_options = {s.out_chs for s in specs}
        res = out_res
    for out_chs in sorted(in_options):
        last = replace(base.blocks[-1], out_chs=out_chs)
        add(head_unit(base.replace(blocks=base.blocks[:-1] + (last,)), res, space.num_classes))
    return list(units.values())


def _enumerate_two_changes(space: SearchSpace, in_chans: int) -> list[Any]:
    n = len(space.decisions)
    units: dict[str, Any] = {}
    seen: set[tuple[int, ...]] = set()
    for i, j in itertools.combinations_with_replacement(range(n), 2):
        for a, b in itertools.product(range(len(space.decisions[i])), range(len(space.decisions[j]))):
            tokens = [0] * n
            tokens[i], tokens[j] = a, b
            if i == j and a != b or tuple(tokens) in seen:
                continue
            seen.add(tuple(tokens))
            for unit in arch_units(space.decode(tokens), space.input_size, space.num_classes, in_chans):
                units.setdefault(unit.key, unit)
    return list(units.values())


def unit_shape(unit: Any) -> tuple[int, int, int, int]:
    """The (1, C, H, W) input a unit is timed at."""
    return (1, unit.in_chs, unit.res, unit.res)


def _cell_op_module(unit: Any) -> Any:
    """The module of one op of a cell network (`mnas.space.CellOp`), as its family's network builds it."""
    from torch import nn

    from mnas.models.cells import FactorizedReduce, ReLUConvBN

    class PoolLinear(nn.Module):  # the heads: (BN, ReLU,) global average pool, classifier
        def __init__(self, pre: nn.Module) -> None:
            super().__init__()
            self.pre, self.classifier = pre, nn.Linear(unit.in_chs, unit.out_chs)

        def forward(self, x: Any) -> Any:
            return self.classifier(self.pre(x).mean((2, 3)))

    if unit.kind == "stem":  # both families: 3x3 conv + BN
        return nn.Sequential(nn.Conv2d(unit.in_chs, unit.out_chs, 3, 1, 1, bias=False), nn.BatchNorm2d(unit.out_chs))
    if unit.family == "nb201":
        from mnas.models.nb201 import ResidualReduction, make_nb201_op

        if unit.kind == "reduction":
            return ResidualReduction(unit.in_chs, unit.out_chs)
        if unit.kind == "cell_op":
            return make_nb201_op(unit.op, unit.in_chs)
        if unit.kind == "head":
            return PoolLinear(nn.Sequential(nn.BatchNorm2d(unit.in_chs), nn.ReLU()))
    if unit.family == "darts":
        from mnas.models.darts import make_darts_op

        if unit.op == "factorized_reduce" and unit.kind == "preprocess":
            return FactorizedReduce(unit.in_chs, unit.out_chs)
        if unit.kind == "preprocess":
            return ReLUConvBN(unit.in_chs, unit.out_chs, 1)
        if unit.kind == "cell_op":
            return make_darts_op("skip_connect" if unit.op == "factorized_reduce" else unit.op, unit.in_chs, unit.stride)
        if unit.kind == "head":
            return PoolLinear(nn.Identity())
    raise ValueError(f"no module to time the {unit.family} unit {unit.key!r}: a lookup table covers the block chain,"
                     " nb201 and darts")


def unit_module(unit: Any) -> Any:
    """The PyTorch module a unit measures (stem conv, one layer, or head conv + pool + classifier;
    for a cell family, the op as its network builds it)."""
    import torch
    from torch import nn

    from mnas.models import ConvBnAct, make_layer
    from mnas.models.layers import get_act_layer

    if not isinstance(unit, LayerUnit):
        return _cell_op_module(unit)

    act_layer = get_act_layer(unit.act)
    if unit.kind == "stem":
        return ConvBnAct(unit.in_chs, unit.out_chs, unit.kernel_size, unit.stride, act_layer=act_layer)
    if unit.kind == "layer":
        return make_layer(unit.op, unit.in_chs, unit.out_chs, unit.kernel_size, unit.stride, unit.exp_ratio,
                          unit.se_ratio, unit.skip, act_layer)

    class Head(nn.Module):  # mirrors MnasNetModel's head: conv_head, global pool, (dropout), classifier
        def __init__(self) -> None:
            super().__init__()
            conv = unit.out_chs > 0
            self.conv_head = ConvBnAct(unit.in_chs, unit.out_chs, 1, act_layer=act_layer) if conv else nn.Identity()
            self.classifier = nn.Linear(unit.out_chs if conv else unit.in_chs, unit.num_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.classifier(self.conv_head(x).mean((2, 3)))

    return Head()


class _Empty:
    """The runtime's fixed cost per call: a graph with one trivial op on one number."""

    shape = (1, 1, 1, 1)

    @staticmethod
    def module() -> Any:
        from torch import nn

        return nn.ReLU()


def _measure_unit(backend: LatencyBackend, module: Any, shape: tuple[int, ...]) -> dict[str, Any]:
    from mnas.latency.export import calibrate_bn

    result = backend.measure_model(calibrate_bn(module, shape), shape)
    return {"raw_ms": result.median_ms, "iqr_ms": result.iqr_ms, "cv": result.cv, "n": result.n}


def fit_overhead(sums: list[float], measured: list[float]) -> tuple[float, float]:
    """(scale, overhead_ms) minimising the squared relative error of scale * sum + overhead.

    Falls back to scale 1 and the median difference when the points cannot pin down two numbers."""
    s, y = np.asarray(sums, float), np.asarray(measured, float)
    if s.size == 0:
        return 1.0, 0.0
    if s.size >= 3 and np.ptp(s) > 0.05 * np.mean(s):
        a = np.stack([s / y, 1.0 / y], axis=1)
        scale, overhead = np.linalg.lstsq(a, np.ones_like(y), rcond=None)[0]
        if 0.5 <= scale <= 2.0:
            return float(scale), float(overhead)
    return 1.0, float(np.median(y - s))


def _atomic_write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False))
    os.replace(tmp, path)


def _fresh(space: SearchSpace, backend: LatencyBackend, batch_size: int, in_chans: int) -> dict[str, Any]:
    return {"format": FORMAT, "complete": False, "input_size": space.input_size, "num_classes": space.num_classes,
            "batch_size": batch_size, "in_chans": in_chans, "space_type": type(space).__name__,
            "space": space.settings(), "runtime": backend.deployment[0], "precision": backend.deployment[1],
            "backend": backend.describe(),
            "backend_key": backend.key(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "build_seconds": 0.0,
            "empty_ms": None, "entries": {}, "fit_points": [], "fit": {}}


_STUDY_SUFFIXES = (".db", ".sqlite", ".sqlite3")  # what `mnas search --storage` writes
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_table_path(out: str | os.PathLike) -> dict[str, Any] | None:
    """ValueError (one line) unless `out` can take a table `build_lut` writes: a new file that is not named
    as a study database (.db, .sqlite, a sqlite:/// URL), or a table file (finished or not) to resume,
    whose contents are returned (None for a new file). Cheap: callers check before any data is loaded
    or any backend set up, so that `--out study.db` costs nothing."""
    text = os.fspath(out)
    path = Path(text)
    if text.startswith("sqlite:") or (path.suffix.lower() in _STUDY_SUFFIXES and not path.is_file()):
        raise ValueError(f"{text} is named as a study database: a lookup table is a JSON file, e.g."
                         f" {path.with_suffix('.json').name if path.suffix else 'lut.json'}; choose another --out")
    if not path.exists():
        return None
    try:
        with path.open("rb") as f:
            if f.read(len(_SQLITE_HEADER)) == _SQLITE_HEADER:
                raise ValueError(f"{path} is a study database (SQLite), not a lookup table: choose another --out"
                                 " (a table is a JSON file, e.g. lut.json)")
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} exists and is not a lookup table ({exc}): choose another --out") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{path} exists and is not a lookup table: choose another --out")
    return data


def _resume(path: Path, fresh: dict[str, Any]) -> dict[str, Any]:
    data = check_table_path(path)
    for key in ("space_type", "space", "backend_key", "batch_size", "in_chans"):
        if data.get(key, "MnasNetSpace" if key == "space_type" else None) != fresh[key]:
            raise ValueError(f"{path} was built with a different {key.replace('_', ' ')}: use another --out, or"
                             " delete it to start over")
    return data


def table_space(table: LookupTable) -> SearchSpace:
    """The space a table was built for, from its metadata; ValueError if that is missing or damaged."""
    from mnas.space import DartsSpace, NB201Space
    from mnas.space.layerwise import LayerwiseSpace

    settings = table.meta.get("space")
    kinds = {c.__name__: c for c in (MnasNetSpace, LayerwiseSpace, NB201Space, DartsSpace)}
    try:
        return kinds[table.meta.get("space_type", "MnasNetSpace")](**settings)
    except KeyError:
        raise ValueError(f"{table.path or 'the table'} was built for a space mnas does not know"
                         f" ({table.meta.get('space_type')!r}): pass space= to validate it") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{table.path or 'the table'} records no usable search space ({exc}): build it again with"
                         " 'mnas latency build-lut'") from None


def reference_archs(space: MnasNetSpace, references: Sequence[str]) -> list[Arch]:
    """Zoo models as a target relative to them measures them: with the space's strides, else adapted
    to its input size (`mnas.space.zoo.for_space`, `mnas.evaluate.resolve_reference`'s rule)."""
    from mnas.space import get_arch
    from mnas.space.zoo import for_space

    return [for_space(get_arch(name), space.input_size, getattr(space, "strides", None)) for name in references]


def build_lut(space: SearchSpace, backend: LatencyBackend, out: str | os.PathLike, *, fit_archs: int = 20,
              seed: int = 0, save_every: int = 20, in_chans: int = 3, progress: Progress | None = None,
              references: Sequence[str] = (), log: Callable[[str], None] | None = None,
              rounds: int = 3) -> LookupTable:
    """Measure every layer signature of `space` on `backend` and write the table to `out` (JSON).

    `references` (zoo names) adds the layers of those models, so that a search target such as
    "0.8x mnasnet_b1" can be predicted by the same table as the candidates. Resumes an unfinished
    file of the same space and backend settings (or adds missing references to a finished one);
    returns the finished table. `log` gets a line as each phase starts; `rounds`: the fit networks'
    interleaved rounds (`measure_interleaved`)."""
    log = log or (lambda _: None)
    if isinstance(fit_archs, bool) or not isinstance(fit_archs, int) or fit_archs < 0:
        raise ValueError(f"fit_archs={fit_archs!r}: expected an integer >= 0")
    path = Path(out)
    check_table_path(path)  # before the units are enumerated and the empty graph measured
    units = enumerate_units(space, in_chans)
    known = {u.key for u in units}
    for arch in reference_archs(space, references):
        for unit in arch_units(arch, space.input_size, space.num_classes, in_chans):
            if unit.key not in known:
                known.add(unit.key)
                units.append(unit)
    fresh = _fresh(space, backend, 1, in_chans)
    data = _resume(path, fresh) if path.exists() else fresh
    data["references"] = sorted(set(data.get("references", [])) | set(references))
    if data.get("complete") and all(u.key in data["entries"] for u in units):
        return LookupTable.from_dict(data, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter() - float(data.get("build_seconds", 0.0))
    todo = [u for u in units if u.key not in data["entries"]]
    total = len(units) + fit_archs + 1
    done = len(units) - len(todo) + len(data["fit_points"])

    def save() -> None:
        data["build_seconds"] = time.perf_counter() - started
        data["load"] = _load_seen(data.get("load"))
        _atomic_write(path, data)

    def tick(what: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(done, total, what)

    earlier = f" ({len(units) - len(todo)} measured earlier)" if len(todo) < len(units) else ""
    log(f"measuring {len(todo)} layer signatures{earlier}, then {fit_archs} whole networks for the fit")
    data["load"] = _load_seen(data.get("load"))
    if data.get("empty_ms") is None:
        data["empty_ms"] = _measure_unit(backend, _Empty.module(), _Empty.shape)["raw_ms"]
    empty = float(data["empty_ms"])
    tick("empty graph")
    for count, unit in enumerate(todo, 1):
        entry = _measure_unit(backend, unit_module(unit), unit_shape(unit))
        entry["ms"] = max(0.0, entry["raw_ms"] - empty)
        data["entries"][unit.key] = entry
        tick(unit.key)
        if count % save_every == 0:
            save()
    save()
    table = LookupTable.from_dict({**data, "complete": True}, path)
    fit = _sample_distinct(space, fit_archs, np.random.default_rng([seed, 1]))[len(data["fit_points"]):]
    if fit:
        log(f"fitting scale and overhead: {len(fit)} whole networks, in {max(1, rounds)} interleaved rounds")
    results = measure_interleaved(backend, fit, space.input_size, space.num_classes, in_chans=in_chans, rounds=rounds,
                                  per_arch=lambda: tick("whole network"))
    for arch, result in zip(fit, results, strict=True):
        data["fit_points"].append({"arch": str(arch), "sum_ms": table.predict(arch), "measured_ms": result.median_ms})
    if fit:
        save()
    scale, overhead = fit_overhead([p["sum_ms"] for p in data["fit_points"]],
                                   [p["measured_ms"] for p in data["fit_points"]])
    data["fit"] = {"scale": scale, "overhead_ms": overhead, "points": len(data["fit_points"])}
    data["complete"] = True
    save()
    return LookupTable.from_dict(data, path)


def _load_seen(seen: dict[str, Any] | None) -> dict[str, Any] | None:
    """`seen` (min, mean, max of the 1-minute load average, samples, CPUs) with the load now added."""
    now = machine_load()
    if now is None:
        return seen
    if not isinstance(seen, dict) or not isinstance(seen.get("samples"), int) or seen["samples"] < 1:
        return {"min": now["load"], "mean": now["load"], "max": now["load"], "samples": 1, "cpus": now["cpus"]}
    n = seen["samples"] + 1
    return {"min": min(seen["min"], now["load"]), "max": max(seen["max"], now["load"]),
            "mean": round(seen["mean"] + (now["load"] - seen["mean"]) / n, 3), "samples": n, "cpus": now["cpus"]}


def describe_load(load: dict[str, Any] | None) -> str:
    """'load 4.1-6.3 (mean 5.2) on 2 CPUs', or 'load not recorded'."""
    if not isinstance(load, dict) or not all(isinstance(load.get(k), (int, float)) for k in ("min", "max", "mean")):
        return "load not recorded"
    spread = f"{load['min']:.1f}" if load["max"] - load["min"] < 0.05 else f"{load['min']:.1f}-{load['max']:.1f}"
    cpus = f" on {load['cpus']} CPUs" if isinstance(load.get("cpus"), int) else ""
    return f"load {spread} (mean {load['mean']:.1f}){cpus}"


def measure_interleaved(backend: LatencyBackend, archs: Sequence[Any], input_size: int, num_classes: int, *,
                        batch_size: int = 1, in_chans: int = 3, rounds: int = 3,
                        progress: Callable[[int, int], None] | None = None,
                        per_arch: Callable[[], None] | None = None) -> list[LatencyResult]:
    """Latency of each of `archs`, measured in `rounds` interleaved passes (the order reversed every
    other pass) with 1/rounds of the backend's protocol each; a figure is the median of its passes'
    medians (its wall median likewise), n the samples of all passes. A backend without a `Protocol`
    (a device server, a table, a test double) measures each once. `per_arch` is called once per
    network when its figure is final, `progress(i, n)` after each measurement."""
    archs = list(archs)
    protocol = getattr(backend, "protocol", None)
    if rounds <= 1 or len(archs) < 2 or not isinstance(protocol, Protocol):
        out = []
        for i, arch in enumerate(archs, 1):
            out.append(backend.measure(arch, input_size, num_classes, batch_size, in_chans=in_chans))
            if progress:
                progress(i, len(archs))
            if per_arch:
                per_arch()
        return out
    share = replace(protocol, min_repeats=max(3, math.ceil(protocol.min_repeats / rounds)),
                    max_repeats=max(3, math.ceil(protocol.max_repeats / rounds)),
                    max_time_s=protocol.max_time_s / rounds)
    passes: list[list[LatencyResult]] = [[] for _ in archs]
    runs = [_prepared(backend, as_arch(a), input_size, num_classes, batch_size, in_chans) for a in archs]
    order = list(range(len(archs)))
    step, steps = 0, rounds * len(archs)
    backend.protocol = share  # type: ignore[attr-defined]
    try:
        for r in range(rounds):
            for i in (order if r % 2 == 0 else order[::-1]):
                passes[i].append(runs[i]())
                step += 1
                if progress:
                    progress(step, steps)
                if per_arch and r == rounds - 1:
                    per_arch()
    finally:
        backend.protocol = protocol  # type: ignore[attr-defined]
    return [_combine(p) for p in passes]


def _prepared(backend: LatencyBackend, arch: Any, input_size: int, num_classes: int, batch_size: int,
              in_chans: int) -> Callable[[], LatencyResult]:
    """One uncached measurement of `arch` on `backend`; a backend that times ONNX exports it once."""
    if isinstance(backend, OnnxBackend):
        from mnas.latency.export import timing_model

        shape = (batch_size, in_chans, input_size, input_size)
        model = backend.to_onnx(timing_model(arch, input_size, num_classes, batch_size, in_chans), shape)
        return lambda: backend._result(backend.measure_onnx(model, shape), shape, num_classes, str(arch))
    return lambda: backend._measure(arch, input_size, num_classes, batch_size, in_chans=in_chans)


def _combine(results: list[LatencyResult]) -> LatencyResult:
    walls = [r.wall_median_ms for r in results if not math.isnan(r.wall_median_ms)]
    medians = [r.median_ms for r in results]
    mid = median(medians)
    return replace(results[0], median_ms=mid, iqr_ms=float(np.subtract(*np.percentile(medians, [75, 25]))),
                   cv=float(np.std(medians) / np.mean(medians)) if np.mean(medians) > 0 else 0.0,
                   n=sum(r.n for r in results), min_ms=min(r.min_ms for r in results),
                   wall_median_ms=median(walls) if walls else math.nan,
                   settings={**results[0].settings, "interleaved_rounds": len(results)})


def _sample_distinct(space: SearchSpace, n: int, rng: np.random.Generator, exclude: set[str] = frozenset(),
                     max_tries: int = 100) -> list:
    archs, seen = [], set(exclude)
    for _ in range(max_tries * max(1, n)):
        if len(archs) >= n:
            break
        arch = space.sample(rng)
        if str(arch) not in seen:
            seen.add(str(arch))
            archs.append(arch)
    return archs


def recalibrate(table: LookupTable, backend: LatencyBackend, n: int = 10, seed: int = 0,
                space: SearchSpace | None = None, exclude: set[str] = frozenset()) -> LookupTable:
    """The table rescaled to the device's current speed, from `n` whole networks measured now.

    On a shared machine the speed drifts by tens of percent over minutes (other processes contend
    for caches and memory bandwidth) while the relative cost of layers barely moves. So the fit
    keeps its shape and is multiplied by one factor, the median of measured / predicted (robust to
    one noisy measurement, unlike refitting both numbers on a few points)."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: expected a positive integer")
    table.check_deployment(*backend.deployment)
    space = space or table_space(table)
    seen = set(exclude) | {p["arch"] for p in table.meta.get("fit_points", [])}
    points = []
    for arch in _sample_distinct(space, n, np.random.default_rng([seed, 2]), exclude=seen):
        measured = backend.measure(arch, table.input_size, table.num_classes, table.batch_size,
                                   in_chans=table.in_chans).median_ms
        points.append({"arch": str(arch), "predicted_ms": table.predict(arch), "measured_ms": measured})
    factor = float(np.median([p["measured_ms"] / p["predicted_ms"] for p in points]))
    scale, overhead = factor * table.scale, factor * table.overhead_ms
    meta = {**table.meta, "fit": {"scale": scale, "overhead_ms": overhead, "speed_factor": factor,
                                  "points": len(points), "recalibrated": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
            "recalibration_points": points}
    return LookupTable(table.entries, table.input_size, table.num_classes, batch_size=table.batch_size,
                       in_chans=table.in_chans, scale=scale, overhead_ms=overhead, meta=meta, path=table.path)


def validate_lut(table: LookupTable, backend: LatencyBackend, n: int = 50, seed: int = 12345,
                 space: SearchSpace | None = None, progress: Progress | None = None,
                 recalibrate_with: int = 0, rounds: int = 3) -> dict[str, Any]:
    """Measure `n` random architectures of the table's space for real and compare with the table.

    With `recalibrate_with` = k > 0, first refit the table's scale and overhead on k other networks
    measured now (see `recalibrate`). Returns n, within_10pct (fraction), mape (mean absolute
    percentage error, %), spearman (rank correlation), max_abs_pct, the fit used, the machine's load
    during validation and the table's during its build (`load`, `table_load`), and the rows sorted by
    absolute error (largest first). Never measures a network used for fitting. The networks are
    measured in `rounds` interleaved passes (`measure_interleaved`)."""
    from mnas._util import require

    stats = require("scipy.stats", "LUT validation (Spearman correlation)")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}: expected a positive integer")
    table.check_deployment(*backend.deployment)  # a table measured in one runtime/precision says nothing of another
    if space is None:
        space = table_space(table)
    fitted = {p["arch"] for p in table.meta.get("fit_points", [])}
    archs = _sample_distinct(space, n, np.random.default_rng(seed), exclude=fitted)
    if recalibrate_with:
        table = recalibrate(table, backend, recalibrate_with, seed, space, exclude={str(a) for a in archs})
    rows, load = [], _load_seen(None)
    results = measure_interleaved(backend, archs, table.input_size, table.num_classes, batch_size=table.batch_size,
                                  in_chans=table.in_chans, rounds=rounds,
                                  progress=(lambda i, total: progress(i, total, "validate")) if progress else None)
    load = _load_seen(load)
    for arch, result in zip(archs, results, strict=True):
        predicted = table.predict(arch)
        rows.append({"arch": str(arch), "predicted_ms": predicted, "measured_ms": result.median_ms,
                     "measured_cv": result.cv, "error_pct": 100.0 * (predicted - result.median_ms) / result.median_ms})
    err = np.array([abs(r["error_pct"]) for r in rows])
    rho = float("nan")
    if len(rows) >= 3:
        rho = float(stats.spearmanr([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows])[0])
    rows.sort(key=lambda r: -abs(r["error_pct"]))
    return {"n": len(rows), "within_10pct": float(np.mean(err <= 10.0)), "mape": float(err.mean()),
            "spearman": None if math.isnan(rho) else rho, "max_abs_pct": float(err.max()),
            "fit": {"scale": table.scale, "overhead_ms": table.overhead_ms, "recalibrated_with": recalibrate_with},
            "backend": backend.describe(), "table": table.path, "rounds": max(1, rounds),
            "load": load, "table_load": table.meta.get("load"), "rows": rows}
