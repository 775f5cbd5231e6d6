"""MnasNet's multi-objective reward (Tan et al. 2019, eq. 2; REFERENCE.md).

    reward = ACC * (LAT / T) ** w,   w = alpha if LAT <= T else beta

Soft constraint (the paper's default): alpha = beta = -0.07, so doubling latency costs about 5% of the
reward, matching the paper's observation that doubling latency buys about 5% relative accuracy.
Hard constraint: alpha = 0, beta = -1: no bonus for being faster than T, reward falls as T / LAT above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["HARD_EXPONENTS", "SOFT_EXPONENTS", "Reward"]

SOFT_EXPONENTS = (-0.07, -0.07)  # (alpha, beta), MnasNet section 3
HARD_EXPONENTS = (0.0, -1.0)


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise ValueError(f"{name}={value!r}: expected a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r}: expected a finite number")
    return value


@dataclass(frozen=True)
class Reward:
    """`Reward(target_ms, alpha, beta)`: callable `(accuracy, latency_ms) -> reward`.

    `accuracy` is a fraction in [0, 1]; `latency_ms` and `target_ms` are milliseconds (> 0). The reward
    is in [0, 1] whenever latency_ms <= target_ms and alpha <= 0 (every built-in constraint).
    """

    target_ms: float
    alpha: float = SOFT_EXPONENTS[0]
    beta: float = SOFT_EXPONENTS[1]

    def __post_init__(self) -> None:
        target = _finite("target_ms", self.target_ms)
        if target <= 0:
            raise ValueError(f"target_ms={self.target_ms!r}: expected a latency target > 0 milliseconds")
        object.__setattr__(self, "target_ms", target)
        object.__setattr__(self, "alpha", _finite("alpha", self.alpha))
        object.__setattr__(self, "beta", _finite("beta", self.beta))

    @classmethod
    def soft(cls, target_ms: float) -> Reward:
        """The paper's soft constraint: alpha = beta = -0.07."""
        return cls(target_ms, *SOFT_EXPONENTS)

    @classmethod
    def hard(cls, target_ms: float) -> Reward:
        """The paper's hard constraint: alpha = 0, beta = -1."""
        return cls(target_ms, *HARD_EXPONENTS)

    @property
    def kind(self) -> str:
        """'soft', 'hard' or 'custom'."""
        exps = (self.alpha, self.beta)
        return "soft" if exps == SOFT_EXPONENTS else "hard" if exps == HARD_EXPONENTS else "custom"

    def __call__(self, accuracy: float, latency_ms: float) -> float:
        acc = _finite("accuracy", accuracy)
        if not 0.0 <= acc <= 1.0:
            raise ValueError(f"accuracy={accuracy!r}: expected a fraction in [0, 1] (divide a percentage by 100)")
        lat = _finite("latency_ms", latency_ms)
        if lat <= 0:
            raise ValueError(f"latency_ms={latency_ms!r}: expected a latency > 0 milliseconds")
        w = self.alpha if lat <= self.target_ms else self.beta
        return acc * (lat / self.target_ms) ** w

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; `Reward.from_dict(r.to_dict()) == r`."""
        return {"kind": self.kind, "target_ms": self.target_ms, "alpha": self.alpha, "beta": self.beta}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reward:
        """Inverse of `to_dict`. `{"kind": "soft"|"hard", "target_ms": T}` is enough for the built-ins."""
        if not isinstance(data, dict):
            raise ValueError(f"reward: expected a dict with target_ms (and kind or alpha/beta), "
                             f"got {type(data).__name__}")
        unknown = sorted(set(data) - {"kind", "target_ms", "alpha", "beta"})
        if unknown:
            raise ValueError(f"reward: unknown key {unknown[0]!r}: expected kind, target_ms, alpha, beta")
        if "target_ms" not in data:
            raise ValueError("reward: missing 'target_ms' (the latency target in milliseconds)")
        kind = data.get("kind", "custom")
        if kind not in ("soft", "hard", "custom"):
            raise ValueError(f"reward kind {kind!r}: expected 'soft', 'hard' or 'custom'")
        default = {"soft": SOFT_EXPONENTS, "hard": HARD_EXPONENTS}.get(kind)
        if default is None and not {"alpha", "beta"} <= set(data):
            raise ValueError("reward: a custom reward needs both 'alpha' and 'beta'")
        alpha = data.get("alpha", default[0] if default else None)
        beta = data.get("beta", default[1] if default else None)
        reward = cls(data["target_ms"], alpha, beta)
        if default is not None and (reward.alpha, reward.beta) != default:
            raise ValueError(f"reward: kind {kind!r} contradicts alpha={alpha!r}, beta={beta!r}; use kind 'custom'")
        return reward

    def __str__(self) -> str:
        if self.kind == "custom":
            return f"reward(T={self.target_ms:g} ms, alpha={self.alpha:g}, beta={self.beta:g})"
        return f"{self.kind} reward(T={self.target_ms:g} ms)"
