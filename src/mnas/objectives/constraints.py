"""Hard limits beyond the reward: parameters (what fits in flash), MACs, peak activation memory (what fits
in SRAM, as MCUNet constrains microcontrollers) and latency.

`Constraints(max_params=1.5e6, max_peak_memory=256 * 1024)` checks a trial's metrics, a mapping with any
of `params`, `macs`, `peak_memory` (bytes) and `latency_ms`:
- `violations(metrics)`: the relative excess per set limit, `max(0, value / limit - 1)` (0 = within);
- `violation(metrics)`: their sum (0 = feasible), the quantity strategies rank infeasible trials by;
- `feasible(metrics)`: no limit broken.
A limit whose metric is missing raises, unless `partial=True` (then it is skipped: e.g. before training,
when only the analytic counts are known and the latency is not).

CLI strings: `parse_count("1.5M")` = 1.5e6 (K, M, G = 1e3, 1e6, 1e9; for params and MACs),
`parse_bytes("256KB")` = 262,144 (KB, MB, GB = 1024-based, as microcontroller memories are quoted;
KiB, MiB, GiB also accepted; B or no unit = bytes), `Constraints.parse(max_params="1.5M", ...)`.
Pure Python: no mnas, no torch.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = ["Constraints", "parse_bytes", "parse_count"]

_NUM = r"(?P<num>(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)"
_COUNT_UNITS = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}
_BYTE_UNITS = {"": 1, "b": 1, "kb": 1024, "kib": 1024, "k": 1024, "mb": 1024 ** 2, "mib": 1024 ** 2, "m": 1024 ** 2,
               "gb": 1024 ** 3, "gib": 1024 ** 3, "g": 1024 ** 3}
_METRIC = {"max_params": "params", "max_macs": "macs", "max_peak_memory": "peak_memory", "max_latency_ms": "latency_ms"}


def _parse(text: Any, units: Mapping[str, float], what: str, example: str) -> float:
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    elif isinstance(text, str):
        m = re.fullmatch(_NUM + r"\s*(?P<unit>[a-z]*)", text.strip().lower())
        if not m or m.group("unit") not in units:
            raise ValueError(f"{what} {text!r}: expected a number with an optional unit, e.g. {example}")
        value = float(m.group("num")) * units[m.group("unit")]
    else:
        raise ValueError(f"{what} {text!r}: expected a number or a string such as {example}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{what} {text!r}: expected a positive, finite amount")
    return value


def parse_count(text: str | float) -> float:
    """A count such as parameters or MACs: `"1.5M"` -> 1.5e6, `"300M"`, `"2G"`, `"800k"`, `12000`."""
    return _parse(text, _COUNT_UNITS, "count", "'1.5M' or '300M'")


def parse_bytes(text: str | float) -> float:
    """A memory size in bytes: `"256KB"` -> 262144 (1024-based), `"1.5MB"`, `"512KiB"`, `"4096"`."""
    return _parse(text, _BYTE_UNITS, "memory size", "'256KB' or '1MB'")


@dataclass(frozen=True)
class Constraints:
    """Hard limits; None = no limit. See the module docstring."""

    max_params: float | None = None
    max_macs: float | None = None
    max_peak_memory: float | None = None
    max_latency_ms: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
                raise ValueError(f"{f.name}={value!r}: expected a positive number or None")
            value = float(value)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{f.name}={value!r}: expected a positive, finite limit or None")
            object.__setattr__(self, f.name, value)

    @classmethod
    def parse(cls, max_params: str | float | None = None, max_macs: str | float | None = None,
              max_peak_memory: str | float | None = None, max_latency_ms: str | float | None = None) -> Constraints:
        """From CLI strings: counts for params and MACs ('1.5M'), bytes for memory ('256KB'), ms for latency."""
        return cls(max_params=None if max_params is None else parse_count(max_params),
                   max_macs=None if max_macs is None else parse_count(max_macs),
                   max_peak_memory=None if max_peak_memory is None else parse_bytes(max_peak_memory),
                   max_latency_ms=None if max_latency_ms is None else _parse(
                       max_latency_ms.removesuffix("ms") if isinstance(max_latency_ms, str) else max_latency_ms,
                       {"": 1.0}, "latency limit", "'20' (milliseconds)"))

    @property
    def limits(self) -> dict[str, float]:
        """The set limits by metric name (`params`, `macs`, `peak_memory`, `latency_ms`)."""
        return {metric: getattr(self, name) for name, metric in _METRIC.items() if getattr(self, name) is not None}

    def __bool__(self) -> bool:
        return bool(self.limits)

    def violations(self, metrics: Mapping[str, Any], *, partial: bool = False) -> dict[str, float]:
        """Relative excess `max(0, value / limit - 1)` for each set limit whose metric is known."""
        if not isinstance(metrics, Mapping):
            raise ValueError(f"constraints: metrics must be a mapping, got {type(metrics).__name__}")
        out = {}
        for metric, limit in self.limits.items():
            value = metrics.get(metric)
            if value is None:
                if partial:
                    continue
                raise ValueError(f"constraints: a limit on {metric} is set but the trial has no {metric!r}")
            if isinstance(value, bool) or not hasattr(value, "__float__") or not math.isfinite(float(value)):
                raise ValueError(f"constraints: {metric}={value!r}: expected a finite number")
            out[metric] = max(0.0, float(value) / limit - 1.0)
        return out

    def violation(self, metrics: Mapping[str, Any], *, partial: bool = False) -> float:
        """The sum of the relative excesses: 0.0 when every known limit holds."""
        return float(sum(self.violations(metrics, partial=partial).values()))

    def feasible(self, metrics: Mapping[str, Any], *, partial: bool = False) -> bool:
        """True when no (known) limit is broken."""
        return self.violation(metrics, partial=partial) == 0.0

    def to_dict(self) -> dict[str, float]:
        """The set limits only; `Constraints.from_dict(c.to_dict()) == c`."""
        return {name: getattr(self, name) for name in _METRIC if getattr(self, name) is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Constraints:
        """Inverse of `to_dict` (None or {} = no limits)."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ValueError(f"constraints: expected a dict of limits, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_METRIC))
        if unknown:
            raise ValueError(f"constraints: unknown limit {unknown[0]!r}: expected some of {', '.join(_METRIC)}")
        return cls(**data)

    def __str__(self) -> str:
        if not self:
            return "no constraints"
        units = {"params": "", "macs": " MACs", "peak_memory": " B", "latency_ms": " ms"}
        return ", ".join(f"{m} <= {v:.4g}{units[m]}" for m, v in self.limits.items())
