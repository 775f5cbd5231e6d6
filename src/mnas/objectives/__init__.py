"""Layer 1: MnasNet's reward, the accuracy/latency Pareto front and latency targets.

Imports nothing from mnas and not torch: a user's own search loop can use these directly.
"""

from mnas.objectives.pareto import dominates, pareto_front
from mnas.objectives.reward import HARD_EXPONENTS, SOFT_EXPONENTS, Reward
from mnas.objectives.target import Target

__all__ = ["HARD_EXPONENTS", "SOFT_EXPONENTS", "Reward", "Target", "dominates", "pareto_front"]
