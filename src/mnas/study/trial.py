"""`Trial`: one evaluated (or running) architecture, as the study stores it. Does not import torch.

A trial's identity is its `number` (0, 1, 2, ... in creation order within a study); its
architecture's identity is `arch`, the canonical text of the `Arch` (see `mnas.space.arch`).
"""

from __future__ import annotations

import json
import math
import numbers
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from mnas._util import check_keys

__all__ = ["FLOAT_ATTRS", "INT_ATTRS", "Trial", "TrialState"]


class TrialState(str, Enum):
    """Where a trial is in its life. Only RUNNING may change; the others are final."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    REQUEUED = "requeued"  # was running when a search stopped; re-evaluated as a new trial

    def __str__(self) -> str:
        return self.value

    @property
    def is_finished(self) -> bool:
        return self is not TrialState.RUNNING

    @classmethod
    def parse(cls, value: str | TrialState) -> TrialState:
        try:
            return cls(value)
        except ValueError:
            names = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown trial state {value!r}: expected one of {names}") from None


# Optional numeric attributes a trial may carry; `extra` is the free JSON dict.
FLOAT_ATTRS = ("accuracy", "latency_ms", "reward", "started_at", "finished_at", "train_seconds", "latency_seconds")
INT_ATTRS = ("params", "macs")


@dataclass(frozen=True)
class Trial:
    """A stored trial. Times are seconds since the epoch (`started_at`, `finished_at`) or durations
    in seconds (`train_seconds`, `latency_seconds`); `failure` is the reason of a failed trial."""

    number: int
    state: TrialState
    tokens: tuple[int, ...]
    arch: str
    accuracy: float | None = None
    latency_ms: float | None = None
    reward: float | None = None
    params: int | None = None
    macs: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    train_seconds: float | None = None
    latency_seconds: float | None = None
    failure: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, hash=False)

    @property
    def is_finished(self) -> bool:
        return self.state.is_finished

    @property
    def accuracy_source(self) -> str | None:
        """How the accuracy was obtained ("proxy", "user", "supernet", ...), as the search recorded
        it; None for trials stored before sources were recorded."""
        source = self.extra.get("accuracy_source")
        return source if isinstance(source, str) else None

    @property
    def likelihood_scored(self) -> bool:
        """Whether `accuracy` is an inherited likelihood, exp(-cross-entropy), not a top-1 accuracy
        (`mnas search --supernet F --inherited-score likelihood`; top-1 is `top1`)."""
        return (self.extra or {}).get("score_metric") == "likelihood"

    @property
    def top1(self) -> float | None:
        """The top-1 accuracy: `accuracy`, or for a likelihood-scored trial the top-1 kept beside it."""
        if self.likelihood_scored:
            value = (self.extra or {}).get("inherited_accuracy")
            return float(value) if isinstance(value, (int, float)) else None
        return self.accuracy

    def score_text(self, digits: int = 1) -> str:
        """'61.2%', or 'likelihood 0.3020, top-1 33.4%' for a likelihood-scored trial (`digits`: of the
        percentages; no parentheses, so the text nests in a parenthesised line)."""
        if self.accuracy is None:
            return "-"
        if self.likelihood_scored:
            top1 = self.top1
            return f"likelihood {self.accuracy:.4f}" + (f", top-1 {100 * top1:.{digits}f}%" if top1 is not None else "")
        return f"{100 * self.accuracy:.{digits}f}%"

    @property
    def duration(self) -> float | None:
        """Wall time from start to finish in seconds, or None while running."""
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    def to_dict(self) -> dict[str, Any]:
        """A plain, JSON-friendly dict (state as its string, tokens as a list)."""
        out = {name: getattr(self, name) for name in self.__dataclass_fields__}
        out["state"] = self.state.value
        out["tokens"] = list(self.tokens)
        out["extra"] = json.loads(dumps_json(self.extra, "extra"))
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Trial:
        """Inverse of `to_dict`; unknown keys are a ValueError."""
        check_keys(data, cls.__dataclass_fields__, lambda key: f"unknown trial field {key!r}")
        kwargs = dict(data)
        kwargs["state"] = TrialState.parse(kwargs["state"])
        kwargs["tokens"] = check_tokens(kwargs["tokens"])
        kwargs["extra"] = dict(kwargs.get("extra") or {})
        return cls(**kwargs)


# -- validation shared by every storage ------------------------------------------------------


def check_tokens(tokens: Sequence[int]) -> tuple[int, ...]:
    if isinstance(tokens, (str, bytes)):
        raise ValueError(f"tokens must be a sequence of integers, got the text {tokens!r}")
    try:
        return tuple(operator.index(t) for t in tokens)
    except TypeError:
        raise ValueError(f"tokens must be a sequence of integers, got {tokens!r}") from None


def check_arch(arch: Any) -> str:
    """The canonical text of `arch`: a string as is, an `Arch` (or any object) through `str()`."""
    text = arch if isinstance(arch, str) else str(arch)
    if not text.strip():
        raise ValueError("a trial needs a non-empty architecture string")
    return text


def check_attrs(attrs: Mapping[str, Any], allowed: Sequence[str]) -> dict[str, Any]:
    """Validate optional trial attributes; None values are dropped (they mean 'not given')."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key not in allowed:
            raise ValueError(f"unknown trial attribute {key!r}: expected one of {', '.join(allowed)}")
        if value is None:
            continue
        if key in FLOAT_ATTRS:
            out[key] = check_float(key, value)
        elif key in INT_ATTRS:
            if isinstance(value, bool):
                raise ValueError(f"{key}={value!r}: expected a non-negative integer")
            try:
                value = operator.index(value)
            except TypeError:
                raise ValueError(f"{key}={value!r}: expected a non-negative integer") from None
            if value < 0:
                raise ValueError(f"{key}={value!r}: expected a non-negative integer")
            out[key] = value
        elif key == "extra":
            if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
                raise ValueError(f"extra must be a dict with string keys, got {type(value).__name__}")
            out[key] = json.loads(dumps_json(dict(value), "extra"))
        else:  # pragma: no cover - `allowed` lists only the keys handled above
            out[key] = value
    return out


def check_float(name: str, value: Any) -> float:
    """A real number that is not NaN (SQLite would store NaN as NULL); infinities are allowed."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={value!r}: expected a number")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} is NaN: fail the trial with a reason instead of storing NaN")
    return value


def dumps_json(obj: Any, what: str) -> str:
    """JSON text of `obj`; NumPy scalars and arrays become numbers and lists."""
    try:
        return json.dumps(obj, default=_json_default, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} is not JSON-serialisable: {exc}") from None


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays, without importing numpy
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")
