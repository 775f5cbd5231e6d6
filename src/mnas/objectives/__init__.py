"""Layer 1: rewards (MnasNet's soft/hard, TuNAS's absolute, accuracy alone), hard constraints, the
accuracy/latency Pareto front and its hypervolume, latency targets.

Imports nothing from mnas and not torch: a user's own search loop can use these directly.
"""

from mnas.objectives.constraints import Constraints, parse_bytes, parse_count
from mnas.objectives.pareto import dominates, hypervolume, pareto_front
from mnas.objectives.reward import (
    DEFAULT_ABSOLUTE_BETA,
    HARD_EXPONENTS,
    MAX_EXPONENT,
    MAX_TARGET_MS,
    MIN_TARGET_MS,
    SOFT_EXPONENTS,
    Reward,
    check_target_ms,
)
from mnas.objectives.target import Target

__all__ = ["DEFAULT_ABSOLUTE_BETA", "HARD_EXPONENTS", "MAX_EXPONENT", "MAX_TARGET_MS", "MIN_TARGET_MS",
           "SOFT_EXPONENTS", "Constraints", "Reward", "Target", "check_target_ms", "dominates", "hypervolume",
           "pareto_front", "parse_bytes", "parse_count"]
