"""A latency target: milliseconds, or a multiple of a reference model measured on the same device.

Accepted text (case and spaces around operators do not matter):
- ``"20ms"``, ``"20 ms"``, ``"20"`` (milliseconds), ``"0.02s"``, ``"500us"``;
- ``"mobilenetv2"``: the latency of that reference model;
- ``"1.5x mnasnet_b1"``, ``"1.5*mnasnet_b1"``, ``"mobilenetv2*0.8"``: a multiple of it.
``name x factor`` is not accepted, because zoo names use ``_x0.5`` for width multipliers
(``"0.8x mnasnet_b1_x0.5"`` is 0.8 times the latency of MnasNet-B1 at width 0.5).

Bounds: a target in milliseconds must lie in [MIN_TARGET_MS, MAX_TARGET_MS] = [0.001, 1e6] (a
microsecond to 1,000 seconds; `1e-320ms` is refused, not searched with every reward 0), and a
reference factor in [0.001, 1000].

This module does not know the zoo or how to measure: `Target.resolve(measure)` takes a callable
``measure(name) -> ms`` (the caller's latency backend) and calls it only for a reference target.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

from mnas.objectives.reward import check_target_ms

__all__ = ["MAX_FACTOR", "Target"]

MAX_FACTOR = 1e3

_NUM = r"(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?"
_NAME = r"[a-z][a-z0-9_.\-]*"
_UNITS = {"ms": 1.0, "s": 1000.0, "us": 1e-3}
_MS = re.compile(rf"(?P<num>{_NUM})\s*(?P<unit>ms|s|us)?")
_REF = re.compile(rf"(?:(?P<pre>{_NUM})\s*(?:x\s+|\*\s*))?(?P<name>{_NAME})(?:\s*\*\s*(?P<post>{_NUM}))?")


def _positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name}={value!r}: expected a positive number")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r}: expected a positive, finite number")
    return value


@dataclass(frozen=True)
class Target:
    """Either `ms` (an absolute target) or `reference` times `factor` (resolved by measuring)."""

    ms: float | None = None
    reference: str | None = None
    factor: float = 1.0

    def __post_init__(self) -> None:
        if (self.ms is None) == (self.reference is None):
            raise ValueError("target: give either ms or a reference model name, not both or neither")
        if self.ms is not None:
            _positive("target ms", self.ms)
            object.__setattr__(self, "ms", check_target_ms(self.ms, "target ms"))
            if self.factor != 1.0:
                raise ValueError("target: factor applies only to a reference model; scale ms yourself")
        else:
            if not isinstance(self.reference, str) or not re.fullmatch(_NAME, self.reference.lower()):
                raise ValueError(f"target reference {self.reference!r}: expected a model name such as 'mobilenetv2'")
            object.__setattr__(self, "reference", self.reference.lower())
        factor = _positive("target factor", self.factor)
        if not 1 / MAX_FACTOR <= factor <= MAX_FACTOR:
            raise ValueError(f"target factor={self.factor!r}: expected a multiple of the reference model between "
                             f"{1 / MAX_FACTOR:g} and {MAX_FACTOR:g}")
        object.__setattr__(self, "factor", factor)

    @classmethod
    def parse(cls, text: str | float | int | Target) -> Target:
        """A Target from text (see the module docstring) or a number of milliseconds."""
        if isinstance(text, Target):
            return text
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            return cls(ms=text)
        if not isinstance(text, str):
            raise ValueError(f"target {text!r}: expected milliseconds ('20ms') or a model ('1.5x mobilenetv2')")
        s = text.strip().lower()
        m = _MS.fullmatch(s)
        if m:
            return cls(ms=float(m.group("num")) * _UNITS[m.group("unit") or "ms"])
        m = _REF.fullmatch(s)
        if m and not (m.group("pre") and m.group("post")):
            return cls(reference=m.group("name"), factor=float(m.group("pre") or m.group("post") or 1.0))
        raise ValueError(f"target {text!r}: expected milliseconds ('20ms', '20') or a reference model "
                         "('mobilenetv2', '1.5x mnasnet_b1', 'mobilenetv2*0.8')")

    @property
    def is_relative(self) -> bool:
        return self.reference is not None

    def resolve(self, measure: Callable[[str], float] | None = None) -> float:
        """The target in milliseconds; for a reference target, `factor * measure(reference)`."""
        if self.ms is not None:
            return self.ms
        if measure is None:
            raise ValueError(f"target '{self}' is relative to a model: pass measure(name) -> ms to resolve it")
        ms = measure(self.reference)
        try:
            ms = _positive(f"measured latency of {self.reference!r}", ms)
        except ValueError as exc:
            raise ValueError(f"{exc} (from the measure callable)") from None
        return check_target_ms(self.factor * ms, f"target '{self}'")

    def __str__(self) -> str:
        if self.ms is not None:
            return f"{self.ms:g}ms"
        return self.reference if self.factor == 1.0 else f"{self.factor:g}x {self.reference}"
