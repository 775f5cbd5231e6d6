"""InstaNAS's policy-gradient pieces (REFERENCE.md; the authors' ``search.py``), as tensor functions.

- exploration: the sampling probability is ``p * alpha + (1 - p) * (1 - alpha)`` (alpha 0.8), so no
  module is ever certain to be on or off while the controller learns;
- reward per image: a parabola in the route's latency that is 0 at `lower` and `upper`, 1 midway,
  0 outside; times `pos` (+10) when the image is classified correctly; `neg` (-10) when it is not
  (the authors' code sets wrong images to `neg` outright rather than scaling the parabola);
- self-critical baseline: advantage = reward of the sampled policy - reward of the thresholded one;
- entropy bonus on the explored Bernoulli probabilities;
- curriculum: the window's upper bound falls linearly from ``start * all`` (0.7 x every module on)
  to ``end * k3e6`` (0.5 x MobileNetV2's route) over the search epochs; the lower bound is the
  smallest route. Latencies here are the modules' share (the authors' ``baseline`` sums).
"""

from __future__ import annotations

import torch

__all__ = ["curriculum", "explore", "latency_reward", "policy_loss", "reward"]


def explore(probs: torch.Tensor, alpha: float = 0.8) -> torch.Tensor:
    return probs * alpha + (1 - probs) * (1 - alpha)


def latency_reward(latency: torch.Tensor, lower: float, upper: float) -> torch.Tensor:
    """Parabola through (lower, 0), ((lower + upper) / 2, 1), (upper, 0); clamped at 0 outside."""
    if not upper > lower:
        raise ValueError(f"latency window [{lower}, {upper}]: the upper bound must exceed the lower")
    peak = (upper - lower) ** 2 / 4
    return torch.clamp(-(latency - upper) * (latency - lower) / peak, min=0.0)


def reward(correct: torch.Tensor, latency: torch.Tensor, lower: float, upper: float, pos: float = 10.0,
           neg: float = -10.0) -> torch.Tensor:
    """(B,) reward: `pos` x the latency parabola for a correct image, `neg` for a wrong one."""
    return torch.where(correct, pos * latency_reward(latency, lower, upper), torch.full_like(latency, neg))


def curriculum(epoch: int, epochs: int, bounds: dict[str, float], start: float = 0.7,
               end: float = 0.5) -> tuple[float, float]:
    """(lower, upper) of the latency window at search epoch `epoch` of `epochs` (0-based; the last
    epoch reaches the end value). The upper bound never falls below 1.05 x the lower bound."""
    ratio = epoch / (epochs - 1) if epochs > 1 else 1.0
    first, last = start * bounds["all"], end * bounds["k3e6"]
    lower = bounds["min"]
    return lower, max(first - (first - last) * ratio, 1.05 * lower)


def policy_loss(explored: torch.Tensor, sample: torch.Tensor, advantage: torch.Tensor,
                entropy: float = 0.8) -> torch.Tensor:
    """REINFORCE with the given advantage (B,) and an entropy bonus, averaged over the batch.

    `explored` (B, L, M) are the probabilities the `sample` (B, L, M) was drawn from."""
    p = explored.clamp(1e-6, 1 - 1e-6)
    log_prob = (sample * p.log() + (1 - sample) * (1 - p).log()).sum((1, 2))  # (B,)
    bernoulli_entropy = -(p * p.log() + (1 - p) * (1 - p).log()).sum((1, 2))  # (B,)
    return (-(log_prob * advantage) - entropy * bernoulli_entropy).mean()
