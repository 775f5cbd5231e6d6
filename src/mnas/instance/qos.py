"""The quality-of-service knob: from the controller's probabilities to a policy, at inference time.

Two knobs, both without retraining (NumPy only; the runner uses them):
- a threshold: module on where its probability is at least `threshold` (InstaNAS's 0.5 by default;
  higher means fewer modules, lower latency);
- a latency budget: per image, modules are switched on in order of decreasing probability (only
  those at or above `min_prob`) while the route's table latency stays within `budget_ms`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mnas.instance.routes import DEFAULT_MODULE, policy_bits

__all__ = ["budget_policy", "check_qos", "policy_ms", "threshold_policy"]


def check_qos(threshold: float | None, budget_ms: float | None) -> None:
    """ValueError unless at most one knob is given and it is in range."""
    if threshold is not None and budget_ms is not None:
        raise ValueError("give a threshold or a latency budget, not both")
    if threshold is not None and not 0.0 < float(threshold) <= 1.0:
        raise ValueError(f"threshold={threshold!r}: expected a number in (0, 1]")
    if budget_ms is not None and not float(budget_ms) > 0:
        raise ValueError(f"budget_ms={budget_ms!r}: expected a positive number of milliseconds")


def threshold_policy(probs: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """(B, L, 5) probabilities -> (B, L, 5) 0/1 policy."""
    check_qos(threshold, None)
    return (np.asarray(probs) >= threshold).astype(np.int8)


def budget_policy(probs: np.ndarray, modules_ms: np.ndarray, skippable: Sequence[bool], budget_ms: float,
                  min_prob: float = 0.5) -> np.ndarray:
    """Per image, the most probable modules whose summed table latency fits `budget_ms` (the modules'
    share of the latency: controller, stem and head excluded). A shape-changing layer with no module
    on still runs its default module, so that cost is always paid; switching another module on
    there replaces it. A budget below the smallest route gives the smallest route."""
    check_qos(None, budget_ms)
    probs, table = np.asarray(probs, dtype=np.float64), np.asarray(modules_ms, dtype=np.float64)
    batch, layers, modules = probs.shape
    fixed = ~np.asarray(skippable, dtype=bool)
    out = np.zeros((batch, layers, modules), dtype=np.int8)
    base = float(table[fixed, DEFAULT_MODULE].sum())
    for b in range(batch):
        spent = base
        order = np.argsort(-probs[b], axis=None, kind="stable")
        for flat in order:
            layer, module = divmod(int(flat), modules)
            if probs[b, layer, module] < min_prob:
                break
            cost = table[layer, module]
            if fixed[layer] and not out[b, layer].any():
                cost -= table[layer, DEFAULT_MODULE]  # replaces the default module
            if spent + cost <= budget_ms + 1e-12:
                out[b, layer, module] = 1
                spent += cost
    return out


def policy_ms(policy: np.ndarray, modules_ms: np.ndarray, skippable: Sequence[bool]) -> np.ndarray:
    """(B,) table latency of the modules each policy runs (the default module counted where it runs)."""
    bits = policy_bits(policy, skippable)  # (B, L)
    on = (bits[:, :, None] >> np.arange(np.asarray(modules_ms).shape[1])) & 1  # (B, L, 5)
    return (on * np.asarray(modules_ms)[None]).sum((1, 2))
