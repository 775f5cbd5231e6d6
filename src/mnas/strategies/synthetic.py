"""A fast synthetic objective over any search space, for benchmarks and tests of strategies.

It stands in for "train the model on the proxy task and measure it on the device" at microseconds a
trial, with the structure that makes architecture search hard and interesting:

- Latency is additive: ``latency_ms = offset + scale * sum_t cost[t, token_t]``. Each decision t has
  its own importance (log-normal) and each choice a log-normal cost; `offset` and `scale` are set so
  that uniformly random architectures have median latency `median_ms` (20 ms by default) and a
  coefficient of variation `latency_spread` (0.2), and the fastest possible one is above a quarter of
  the median (real spaces span roughly 0.5x to 2x of a typical member).
- Accuracy grows with capacity, but not only: the additive gain of a choice is
  ``importance_t * (correlation * z(cost) + sqrt(1 - correlation**2) * noise)``, z the choice's cost
  standardised within its decision, so slower choices tend to be more accurate (the trade-off the
  MnasNet reward balances) while some choices are simply better or worse. Pairwise interaction tables
  couple each decision with the next one and with the same decision of the next block (`block_size`
  decisions per block; `len(space.options)` for the MnasNet space), so the best choice of one
  decision depends on its neighbours, as between adjacent layers of a real network.
  The score ``additive + sqrt(interaction) * pairwise`` (each part standardised over random
  architectures) is squashed as ``accuracy = 0.5 + 0.45 * sigmoid(score / 2)``: random architectures
  land around 0.62-0.83, the best possible ones near 0.93-0.95 (never outside [0.5, 0.95]).
- The reward is MnasNet's soft reward (alpha = beta = -0.07) at a target equal to the median latency
  of random architectures, unless `target_ms` is given.

Everything is drawn from `seed`; the same (space, seed) is the same objective. Evaluation is
deterministic (no noise), so "best reward found" compares strategies by search quality alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mnas._util import as_rng
from mnas.objectives import Reward
from mnas.space import SearchSpace

__all__ = ["SyntheticObjective"]


class SyntheticObjective:
    """`SyntheticObjective(space, seed)`: callable ``tokens -> reward``; see the module docstring."""

    def __init__(self, space: SearchSpace, seed: int = 0, *, correlation: float = 0.6, interaction: float = 0.5,
                 block_size: int | None = None, median_ms: float = 20.0, latency_spread: float = 0.2,
                 target_ms: float | None = None,
                 calibration_samples: int = 4000) -> None:
        if not -1 <= correlation <= 1:
            raise ValueError(f"correlation={correlation!r}: expected a number in [-1, 1]")
        if not interaction >= 0:
            raise ValueError(f"interaction={interaction!r}: expected a number >= 0")
        if not 0 < latency_spread < 1:
            raise ValueError(f"latency_spread={latency_spread!r}: expected a coefficient of variation in (0, 1)")
        if not median_ms > 0:
            raise ValueError(f"median_ms={median_ms!r}: expected a latency > 0 milliseconds")
        self.space, self.seed = space, seed
        rng = as_rng(seed)
        sizes = space.num_choices
        n, kmax = len(sizes), max(sizes)
        if block_size is None:
            block_size = len(getattr(space, "options", ())) or 1
        self.block_size = block_size
        importance = np.exp(rng.normal(0.0, 0.5, n))  # (T,)
        cost = np.zeros((n, kmax))
        gain = np.zeros((n, kmax))
        for t, k in enumerate(sizes):
            c = np.exp(rng.normal(0.0, 0.75, k))
            z = (c - c.mean()) / (c.std() if k > 1 and c.std() > 0 else 1.0)
            cost[t, :k] = importance[t] * c
            gain[t, :k] = importance[t] * (correlation * z + math.sqrt(1 - correlation ** 2) * rng.normal(0.0, 1.0, k))
        pairs = [(t, t + 1) for t in range(n - 1)]
        if block_size > 1:
            pairs += [(t, t + block_size) for t in range(n - block_size)]
        self.pairs = np.array(pairs, dtype=np.int64).reshape(-1, 2)  # (P, 2)
        self._pair_tables = rng.normal(0.0, 1.0, (len(pairs), kmax, kmax))  # (P, kmax, kmax)
        self._cost, self._gain = cost, gain

        # Calibrate on random architectures (their own generator, so calibration size does not change
        # the tables above).
        sample = np.array([space.sample_tokens(rng) for _ in range(calibration_samples)])  # (S, T)
        add, inter = self._parts(sample)
        self._add_stats = (add.mean(), add.std() or 1.0)
        self._inter_stats = (inter.mean(), inter.std() or 1.0)
        self.interaction = float(interaction)
        raw = self._raw_score(sample)
        self._score_stats = (raw.mean(), raw.std() or 1.0)
        lat = cost[np.arange(n), sample].sum(1)
        # Random architectures: median median_ms, CV latency_spread; the fastest member >= median / 4.
        fastest = sum(cost[t, :k].min() for t, k in enumerate(sizes))
        self._lat_scale = min(latency_spread * median_ms / lat.std(), 0.75 * median_ms / (np.median(lat) - fastest))
        self.base_ms = float(median_ms - self._lat_scale * np.median(lat))
        self.target_ms = float(target_ms) if target_ms is not None else float(median_ms)
        self.reward = Reward.soft(self.target_ms)

    # -- the model ----------------------------------------------------------------------------------
    def _parts(self, tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = tokens.shape[1]
        add = self._gain[np.arange(n), tokens].sum(1)
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        inter = self._pair_tables[np.arange(len(a)), tokens[:, a], tokens[:, b]].sum(1) if len(a) else 0.0 * add
        return add, inter

    def _raw_score(self, tokens: np.ndarray) -> np.ndarray:
        add, inter = self._parts(tokens)
        return ((add - self._add_stats[0]) / self._add_stats[1]
                + math.sqrt(self.interaction) * (inter - self._inter_stats[0]) / self._inter_stats[1])

    def _as_array(self, tokens_list: Sequence[Sequence[int]]) -> np.ndarray:
        if isinstance(tokens_list, np.ndarray) and tokens_list.ndim == 2 and tokens_list.dtype.kind in "iu" \
                and tokens_list.shape[1] == len(self.space.decisions):
            # Vectorised check for large arrays (enumerating a space for its optimum).
            if len(tokens_list) and ((tokens_list < 0) | (tokens_list >= np.array(self.space.num_choices))).any():
                raise ValueError("tokens out of range for the space's decisions")
            return tokens_list.astype(np.int64)
        tokens = np.array([self.space.check_tokens(t) for t in tokens_list], dtype=np.int64)
        return tokens.reshape(-1, len(self.space.decisions))  # (N, T), also for N = 0

    def accuracy_latency(self, tokens_list: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Accuracy (in [0.5, 0.95]) and latency (ms) of each token sequence."""
        tokens = self._as_array(tokens_list)
        score = (self._raw_score(tokens) - self._score_stats[0]) / self._score_stats[1]
        acc = 0.5 + 0.45 / (1.0 + np.exp(-score / 2.0))
        lat = self.base_ms + self._lat_scale * self._cost[np.arange(tokens.shape[1]), tokens].sum(1)
        return acc, lat

    def rewards(self, tokens_list: Sequence[Sequence[int]]) -> np.ndarray:
        """The soft MnasNet reward of each token sequence (same values as `self.reward(acc, lat)`)."""
        acc, lat = self.accuracy_latency(tokens_list)
        return acc * (lat / self.target_ms) ** np.where(lat <= self.target_ms, self.reward.alpha, self.reward.beta)

    def evaluate(self, tokens: Sequence[int]) -> dict[str, Any]:
        """One trial's result, shaped like a user-defined evaluator's: accuracy, latency_ms, reward."""
        acc, lat = self.accuracy_latency([tokens])
        return {"accuracy": float(acc[0]), "latency_ms": float(lat[0]), "reward": self.reward(acc[0], lat[0])}

    def __call__(self, tokens: Sequence[int]) -> float:
        return float(self.rewards([tokens])[0])

    def optimum(self, max_size: int = 2_000_000) -> tuple[list[int], float]:
        """The best token sequence and its reward, by enumeration (small spaces only)."""
        if self.space.size > max_size:
            raise ValueError(f"optimum: the space has {self.space.size:.3g} members, more than max_size={max_size} "
                             "can enumerate")
        grids = np.meshgrid(*[np.arange(k) for k in self.space.num_choices], indexing="ij")
        allt = np.stack([g.ravel() for g in grids], 1)
        r = self.rewards(allt)
        i = int(np.argmax(r))
        return allt[i].tolist(), float(r[i])
