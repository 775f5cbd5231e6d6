"""Boundary search: strategy "boundary", for a hard latency target with a cheap, noisy accuracy.

Under a hard target the most accurate network is almost always among the slowest that still fit:
accuracy grows with capacity, and capacity costs latency. NAS-Bench-Macro on this CPU: the best network
under the 25th/50th/75th latency percentile sits at 0.97-1.00 of the target (benchmarks/nbmacro_search.py).
Strategies that treat feasibility as a filter (evolution, predictor) drift well inside the limit
and spend trials there. This strategy spends them at the boundary:

- Candidates: every member of the space when it has at most `pool` members, else `pool` uniform
  samples plus mutations of the best results, refreshed at each ask.
- Latency of a candidate: `latency_model(tokens_list)` (e.g. a lookup table's predictions) when
  given; otherwise a ridge regression of the told `latency_ms` on one-hot tokens (latency is close to
  additive over layers, so this is accurate once a few dozen results are in).
- The band: candidates predicted in [`band` * T, T]; if none is, the feasible ones closest to T.
  T is `target_ms` or the study's latency limit (a hard target or `max_latency_ms`, which the search
  loop passes through `set_latency_limit`), the smaller of the two.
- First `initial` proposals: uniform over candidates predicted in [`warm` * T, T] (a wider band, so
  that the surrogate sees the decisions' effects), or over the space while latency is unknown.
- Then: a ridge regression (`alpha`) of the told accuracy (without a latency limit: the reward) on
  one-hot tokens — the additive part of the accuracy, which averages out each evaluation's noise —
  ranks the band; the best-predicted untold candidates are proposed, a share `explore` of them drawn
  at random from the band instead.

Without a target (`target_ms=None`) the band is the whole space: a greedy search on the ridge
surrogate. The surrogate is refitted from the told history at every ask (the state is the history: resume is
exact). No torch: NumPy only.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mnas.strategies.base import Strategy

__all__ = ["BoundarySearch", "marginal_fit", "ridge_fit"]


def ridge_fit(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """Ridge regression with an unpenalised intercept; returns `predict(x)`."""
    xm, ym = x.mean(0), float(y.mean())
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return lambda xq: (xq - xm) @ w + ym


def marginal_fit(x: np.ndarray, y: np.ndarray, widths: Sequence[int] | None = None
                 ) -> Callable[[np.ndarray], np.ndarray]:
    """Additive fit of `y` on one-hot tokens `x` by each token's marginal effect, summed over a
    network's tokens and scaled to `y` by least squares; returns `predict(x)`.

    A token's weight is its covariance with `y`: the mean of `y` over the networks that carry it, less
    the overall mean, times how many carry it. That is ridge regression's limit of a large penalty,
    which shrinks a rarely drawn token toward 0, and on a uniform sample it ranked NAS-Bench-Macro
    better than both the least-squares fit and the plain mean differences (docs/design/nbmacro.md,
    stop 29). `widths` (the number of choices of each decision, in `x`'s column order) multiplies each
    token's weight by its decision's width, so that a decision of 4 choices, whose tokens are each
    drawn half as often as a decision of 2's, weighs as much (without it all decisions are taken to be
    equally wide). It assumes the decisions were drawn independently: on a sample crowded into a
    latency band the effects are confounded."""
    xm, ym = x.mean(0), float(y.mean())
    w = (x - xm).T @ (y - ym)
    if widths is not None:
        per_column = np.repeat(np.asarray(widths, dtype=float), np.asarray(widths, dtype=int))
        if per_column.shape != w.shape:
            raise ValueError(f"marginal_fit: widths {list(widths)} sum to {int(sum(widths))}, not the {x.shape[1]}"
                             " one-hot columns")
        w = w * per_column
    f = (x - xm) @ w
    ff = float(f @ f)
    scale = float(f @ (y - ym)) / ff if ff > 0 else 0.0
    return lambda xq: scale * ((xq - xm) @ w) + ym


class BoundarySearch(Strategy):
    """`BoundarySearch(space, seed, target_ms=T, latency_model=None, band=0.9, warm=0.6, initial=20,
    alpha=1.0, explore=0.2, pool=20000)`; see the module docstring."""

    name = "boundary"

    def __init__(self, space, seed: int = 0, *, target_ms: float | None = None,
                 latency_model: Callable[[Sequence[Sequence[int]]], Sequence[float]] | None = None,
                 band: float = 0.9, warm: float = 0.6, initial: int = 20, alpha: float = 1.0, explore: float = 0.2,
                 pool: int = 20000) -> None:
        super().__init__(space, seed)
        if target_ms is not None and (isinstance(target_ms, bool) or not isinstance(target_ms, (int, float))
                                      or not (math.isfinite(target_ms) and target_ms > 0)):
            raise ValueError(f"boundary: target_ms={target_ms!r}: expected a latency > 0 ms or None")
        for key, value, lo, hi in (("band", band, 0.0, 1.0), ("warm", warm, 0.0, 1.0), ("explore", explore, 0.0, 1.0)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
                raise ValueError(f"boundary: {key}={value!r}: expected a number in [{lo:g}, {hi:g}]")
        for key, value, low in (("initial", initial, 2), ("pool", pool, 10)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"boundary: {key}={value!r}: expected an integer >= {low}")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not (math.isfinite(alpha) and alpha > 0):
            raise ValueError(f"boundary: alpha={alpha!r}: expected a number > 0")
        if latency_model is not None and not callable(latency_model):
            raise ValueError("boundary: latency_model must be a callable tokens_list -> latencies in ms")
        self.target_ms = None if target_ms is None else float(target_ms)
        self.latency_model = latency_model
        self.band, self.warm, self.initial, self.alpha = float(band), float(warm), initial, float(alpha)
        self.explore, self.pool = float(explore), pool
        sizes = np.array(space.num_choices)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._width = int(sizes.sum())
        self.history: list[tuple[list[int], float | None, float | None]] = []  # (tokens, reward, latency)
        self.accuracies: list[float | None] = []  # told infos["accuracy"], per history entry
        self.proposed: set[tuple[int, ...]] = set()
        self._all: np.ndarray | None = None
        self._all_lat: np.ndarray | None = None

    def _limit(self) -> float | None:
        """The latency limit in force: `target_ms` and the study's (`set_latency_limit`), the smaller."""
        found = [v for v in (self.target_ms, self.latency_limit_ms) if v is not None]
        return min(found) if found else None

    def hyperparameters(self) -> dict[str, Any]:
        return {"target_ms": self.target_ms, "band": self.band, "warm": self.warm, "initial": self.initial,
                "alpha": self.alpha, "explore": self.explore, "pool": self.pool}

    def _x(self, tokens: np.ndarray) -> np.ndarray:
        x = np.zeros((len(tokens), self._width))
        x[np.arange(len(tokens))[:, None], self._offsets[None, :] + tokens] = 1.0
        return x

    def _candidates(self) -> np.ndarray:
        if self.space.size <= self.pool:
            if self._all is None:
                self._all = np.array(list(itertools.product(*[range(k) for k in self.space.num_choices])))
            return self._all
        done = sorted((h for h in self.history if h[1] is not None), key=lambda h: -h[1])[:10]
        out = [self.space.sample_tokens(self.rng) for _ in range(self.pool // 2)]
        for i in range(self.pool - len(out)):
            out.append(self.space.mutate_tokens(done[i % len(done)][0], self.rng) if done else self.space.sample_tokens(self.rng))
        return np.unique(np.array(out), axis=0)

    def _latency(self, cands: np.ndarray) -> np.ndarray | None:
        if self._limit() is None:
            return np.zeros(len(cands))  # no target: every candidate is in the band
        if self.latency_model is not None:
            if cands is self._all and self._all_lat is not None:
                return self._all_lat
            lat = np.asarray(self.latency_model([list(map(int, c)) for c in cands]), dtype=np.float64)
            if cands is self._all:
                self._all_lat = lat
            return lat
        known = [(t, la) for t, _, la in self.history if la is not None]
        if len(known) < 3:
            return None
        fit = ridge_fit(self._x(np.array([t for t, _ in known])), np.array([la for _, la in known]), 1e-3)
        return fit(self._x(cands))

    def _ask(self, n: int) -> list[list[int]]:
        cands = self._candidates()
        lat = self._latency(cands)
        seen = self.proposed | {tuple(t) for t, _, _ in self.history}
        fresh = np.array([tuple(c) not in seen for c in cands])
        limited = self._limit() is not None
        done = [(t, acc if limited and acc is not None else r)
                for (t, r, _), acc in zip(self.history, self.accuracies, strict=True) if r is not None]
        t = self._limit() or 1.0  # no target: latencies are all 0 and every candidate is in the band
        if lat is None:  # latency not learned yet
            out = [self.space.sample_tokens(self.rng) for _ in range(n)]
        else:
            feasible = lat <= t
            in_band = feasible & ((lat >= self.band * t) | (self._limit() is None))
            if not in_band.any():  # nothing predicted in the band: the feasible ones closest to T
                in_band = feasible & (lat >= np.quantile(lat[feasible], 0.9)) if feasible.any() else lat <= lat.min()
            if len(done) < self.initial:
                pool = np.flatnonzero(feasible & ((lat >= self.warm * t) | (self._limit() is None)) & fresh)
                if not len(pool):
                    pool = np.flatnonzero(in_band & fresh)
                pick = self.rng.permutation(pool)[:n] if len(pool) else []
            else:
                fit = ridge_fit(self._x(np.array([tk for tk, _ in done])), np.array([a for _, a in done]), self.alpha)
                pool = np.flatnonzero(in_band & fresh)
                if not len(pool):
                    pool = np.flatnonzero(feasible & fresh)
                score = fit(self._x(cands[pool])) if len(pool) else np.array([])
                ranked = list(pool[np.lexsort((pool, -score))]) if len(pool) else []
                n_explore = int(round(self.explore * n))
                pick = ranked[:n - n_explore]
                rest = [i for i in ranked[n - n_explore:]]
                if rest and n_explore:
                    pick += list(self.rng.choice(rest, size=min(n_explore, len(rest)), replace=False))
            out = [list(map(int, cands[i])) for i in pick]
        while len(out) < n:  # an exhausted band: fall back to the space
            out.append(self.space.sample_tokens(self.rng))
        self.proposed.update(tuple(o) for o in out)
        return out

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        # Under a latency limit the surrogate models the accuracy (what is maximised inside the band; a
        # hard reward's penalty on an over-limit trial would teach it that capacity is bad), otherwise
        # the reward. Both are kept so that the choice follows the limit in force at each ask.
        for tokens, reward, info in zip(tokens_list, rewards, infos, strict=True):
            accuracy = info.get("accuracy") if reward is not None else None
            self.history.append((tokens, reward, info.get("latency_ms")))
            self.accuracies.append(accuracy)

    def _state(self) -> dict[str, Any]:
        return {"history": [[t, a, la] for t, a, la in self.history], "accuracies": self.accuracies,
                "proposed": sorted(list(t) for t in self.proposed)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.history = [(list(map(int, t)), None if a is None else float(a), None if la is None else float(la))
                        for t, a, la in state["history"]]
        self.accuracies = [None if a is None else float(a) for a in state["accuracies"]]
        self.proposed = {tuple(map(int, t)) for t in state["proposed"]}
