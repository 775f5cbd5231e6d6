"""Rewards: MnasNet's multi-objective reward (Tan et al. 2019, eq. 2; REFERENCE.md), TuNAS's absolute
reward, and accuracy alone.

    mnas:      reward = ACC * (LAT / T) ** w,   w = alpha if LAT <= T else beta
    absolute:  reward = ACC + beta * |LAT / T - 1|                (TuNAS, Bender et al. 2020; beta < 0)
    accuracy:  reward = ACC                                        (no target: unconstrained searches)

Soft constraint (the paper's default): alpha = beta = -0.07, so doubling latency costs about 5% of the
reward, matching the paper's observation that doubling latency buys about 5% relative accuracy.
Hard constraint: alpha = 0, beta = -1: no bonus for being faster than T, reward falls as T / LAT above it.
The absolute reward pulls towards T from both sides; beta = -0.07 is the default of TuNAS's absolute
reward in Google's AutoML library (paxml `TunasAbsolute`); the paper tunes it per search space.

`is_hard` says whether the target is a constraint: the hard kind always, any other kind when built with
`constrained=True`. A study reports only feasible trials (`feasible(latency_ms)`) as best under a hard reward.

Numerics: the MnasNet form is computed in log space and capped at the largest float, so no latency
(down to 5e-324 ms) and no exponent in [-MAX_EXPONENT, MAX_EXPONENT] overflows or divides by zero.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["DEFAULT_ABSOLUTE_BETA", "HARD_EXPONENTS", "MAX_EXPONENT", "MAX_TARGET_MS", "MIN_TARGET_MS",
           "SOFT_EXPONENTS", "Reward", "check_target_ms"]

SOFT_EXPONENTS = (-0.07, -0.07)  # (alpha, beta), MnasNet section 3
HARD_EXPONENTS = (0.0, -1.0)
DEFAULT_ABSOLUTE_BETA = -0.07  # TuNAS's absolute reward (paxml automl.TunasAbsolute's default)
# Exponents beyond +-10 make the reward a step function of latency (0.9 ** 10 = 0.35 already): refuse them.
MAX_EXPONENT = 10.0
# A latency target must be a sensible duration: 1 microsecond to 1,000 seconds.
MIN_TARGET_MS, MAX_TARGET_MS = 1e-3, 1e6
_LOG_MAX = math.log(sys.float_info.max)
_FORMS = ("mnas", "absolute", "accuracy")


def _finite(name: str, value: Any) -> float:
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{name}={value!r}: expected a number")
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={value!r}: expected a number") from None
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r}: expected a finite number")
    return value


def check_target_ms(value: Any, name: str = "target_ms") -> float:
    """A latency target as a float of milliseconds in [MIN_TARGET_MS, MAX_TARGET_MS], or a ValueError."""
    ms = _finite(name, value)
    if not MIN_TARGET_MS <= ms <= MAX_TARGET_MS:
        raise ValueError(f"{name}={value!r}: expected a latency target between {MIN_TARGET_MS:g} and "
                         f"{MAX_TARGET_MS:g} milliseconds")
    return ms


def _exponent(name: str, value: Any) -> float:
    w = _finite(name, value)
    if abs(w) > MAX_EXPONENT:
        raise ValueError(f"{name}={value!r}: expected an exponent in [-{MAX_EXPONENT:g}, {MAX_EXPONENT:g}] "
                         "(MnasNet's are -0.07 and -1)")
    return w


@dataclass(frozen=True)
class Reward:
    """`Reward(target_ms, alpha, beta)`: callable `(accuracy, latency_ms) -> reward` (MnasNet's form).

    Build the other forms with `Reward.absolute(T)` and `Reward.accuracy()`. `accuracy` is a fraction in
    [0, 1]; `latency_ms` and `target_ms` are milliseconds (> 0). The MnasNet reward is in [0, 1] whenever
    latency_ms <= target_ms and alpha <= 0 (every built-in constraint). `form` is "mnas", "absolute" or
    "accuracy"; `constrained=True` (`hard=True` in `absolute`) marks the target as a constraint (the
    hard kind always is one).
    """

    target_ms: float | None
    alpha: float = SOFT_EXPONENTS[0]
    beta: float = SOFT_EXPONENTS[1]
    form: str = "mnas"
    constrained: bool = False

    def __post_init__(self) -> None:
        if self.form not in _FORMS:
            raise ValueError(f"reward form {self.form!r}: expected one of {', '.join(_FORMS)}")
        if not isinstance(self.constrained, bool):
            raise ValueError(f"reward constrained={self.constrained!r}: expected True or False")
        if self.form == "accuracy":
            if self.target_ms is not None:
                raise ValueError("an accuracy-only reward has no latency target: use Reward.accuracy()")
            if self.constrained:
                raise ValueError("an accuracy-only reward has no target to make hard")
            object.__setattr__(self, "alpha", 0.0)
            object.__setattr__(self, "beta", 0.0)
            return
        object.__setattr__(self, "target_ms", check_target_ms(self.target_ms))
        object.__setattr__(self, "alpha", _exponent("alpha", self.alpha))
        object.__setattr__(self, "beta", _exponent("beta", self.beta))
        if self.form == "absolute":
            if self.alpha != 0.0:
                raise ValueError("the absolute reward has one coefficient, beta; leave alpha at 0")
            if not self.beta < 0:
                raise ValueError(f"absolute reward beta={self.beta!r}: expected a negative number (TuNAS uses -0.07)")

    @classmethod
    def soft(cls, target_ms: float) -> Reward:
        """The paper's soft constraint: alpha = beta = -0.07."""
        return cls(target_ms, *SOFT_EXPONENTS)

    @classmethod
    def hard(cls, target_ms: float) -> Reward:
        """The paper's hard constraint: alpha = 0, beta = -1; `is_hard` is True."""
        return cls(target_ms, *HARD_EXPONENTS)

    @classmethod
    def absolute(cls, target_ms: float, beta: float = DEFAULT_ABSOLUTE_BETA, *, hard: bool = False) -> Reward:
        """TuNAS's absolute reward `ACC + beta * |LAT / T - 1|` (beta < 0; TuNAS's default -0.07)."""
        return cls(target_ms, 0.0, beta, form="absolute", constrained=hard)

    @classmethod
    def accuracy(cls) -> Reward:
        """Accuracy alone, for unconstrained searches: no target (`target_ms` is None)."""
        return cls(None, 0.0, 0.0, form="accuracy")

    @property
    def kind(self) -> str:
        """'soft', 'hard', 'custom' (MnasNet's form), 'absolute' or 'accuracy'."""
        if self.form != "mnas":
            return self.form
        exps = (self.alpha, self.beta)
        return "soft" if exps == SOFT_EXPONENTS else "hard" if exps == HARD_EXPONENTS else "custom"

    @property
    def is_hard(self) -> bool:
        """True when the target is a constraint: only trials with latency <= target count as best."""
        return self.kind == "hard" or self.constrained

    def feasible(self, latency_ms: float | None) -> bool:
        """Whether `latency_ms` meets the target (always True without a target)."""
        if self.target_ms is None:
            return True
        return _finite("latency_ms", latency_ms) <= self.target_ms

    def __call__(self, accuracy: float, latency_ms: float | None = None) -> float:
        acc = _finite("accuracy", accuracy)
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"accuracy={accuracy!r}: expected a fraction in [0, 1] (divide a percentage by 100)")
        if self.form == "accuracy":
            return acc
        lat = _finite("latency_ms", latency_ms)
        if lat <= 0:
            raise ValueError(f"latency_ms={latency_ms!r}: expected a latency > 0 milliseconds")
        target = self.target_ms
        if self.form == "absolute":
            # lat / target overflows to inf only for lat near 1e308: cap the result at the lowest float.
            return max(acc + self.beta * abs(lat / target - 1.0), -sys.float_info.max)
        if acc == 0.0:
            return 0.0
        w = self.alpha if lat <= target else self.beta
        if w == 0.0:
            return acc
        log_reward = math.log(acc) + w * (math.log(lat) - math.log(target))
        return math.exp(min(log_reward, _LOG_MAX))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; `Reward.from_dict(r.to_dict()) == r`."""
        if self.form == "accuracy":
            return {"kind": "accuracy", "target_ms": None}
        out: dict[str, Any] = {"kind": self.kind, "target_ms": self.target_ms}
        out.update({"beta": self.beta} if self.form == "absolute" else {"alpha": self.alpha, "beta": self.beta})
        if self.constrained:
            out["hard"] = True
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reward:
        """Inverse of `to_dict`. `{"kind": "soft"|"hard", "target_ms": T}` is enough for the built-ins,
        `{"kind": "accuracy"}` for accuracy alone, `{"kind": "absolute", "target_ms": T}` for TuNAS's."""
        if not isinstance(data, dict):
            raise ValueError(f"reward: expected a dict with target_ms (and kind or alpha/beta), "
                             f"got {type(data).__name__}")
        unknown = sorted(set(data) - {"kind", "target_ms", "alpha", "beta", "hard"})
        if unknown:
            raise ValueError(f"reward: unknown key {unknown[0]!r}: expected kind, target_ms, alpha, beta, hard")
        kind = data.get("kind", "custom")
        kinds = ("soft", "hard", "custom", "absolute", "accuracy")
        if kind not in kinds:
            raise ValueError(f"reward kind {kind!r}: expected one of {', '.join(repr(k) for k in kinds)}")
        hard = data.get("hard", False)
        if kind == "accuracy":
            if data.get("target_ms") is not None or hard:
                raise ValueError("reward: kind 'accuracy' has no target (target_ms must be null, no 'hard')")
            return cls.accuracy()
        if "target_ms" not in data:
            raise ValueError("reward: missing 'target_ms' (the latency target in milliseconds)")
        if kind == "absolute":
            if data.get("alpha", 0.0) != 0.0:
                raise ValueError("reward: kind 'absolute' takes beta only, not alpha")
            return cls.absolute(data["target_ms"], data.get("beta", DEFAULT_ABSOLUTE_BETA), hard=hard)
        default = {"soft": SOFT_EXPONENTS, "hard": HARD_EXPONENTS}.get(kind)
        if default is None and not {"alpha", "beta"} <= set(data):
            raise ValueError("reward: a custom reward needs both 'alpha' and 'beta'")
        alpha = data.get("alpha", default[0] if default else None)
        beta = data.get("beta", default[1] if default else None)
        reward = cls(data["target_ms"], alpha, beta, constrained=hard)
        if default is not None and (reward.alpha, reward.beta) != default:
            raise ValueError(f"reward: kind {kind!r} contradicts alpha={alpha!r}, beta={beta!r}; use kind 'custom'")
        return reward

    def __str__(self) -> str:
        if self.form == "accuracy":
            return "accuracy reward (no target)"
        hard = " as a hard constraint" if self.constrained else ""
        if self.form == "absolute":
            return f"absolute reward(T={self.target_ms:g} ms, beta={self.beta:g}){hard}"
        if self.kind == "custom":
            return f"reward(T={self.target_ms:g} ms, alpha={self.alpha:g}, beta={self.beta:g}){hard}"
        return f"{self.kind} reward(T={self.target_ms:g} ms){hard}"
