"""Predictor-guided search: strategy "predictor" (BANANAS / NPENAS style).

After `initial` random results, every `ask` trains a surrogate on all finished trials and evaluates
it, not the real objective, on many candidates, then proposes the most promising ones:

- Encoding: one-hot per decision (works for any `SearchSpace`, a user's own or a tabular benchmark's).
- Surrogate: an ensemble of `ensemble` small MLPs (one hidden layer of `hidden` tanh units), in NumPy,
  each from its own initialisation and its own bootstrap of the data, trained with Adam for `epochs`
  full-batch steps on standardised rewards (White et al., "BANANAS", AAAI 2021, use an ensemble of
  MLPs for its uncertainty).
- Candidates: `candidates` sequences, half mutations of the best results so far (NPENAS, Wei et al.
  2022: mutate the best) and half uniform samples, minus everything already told or proposed.
- Acquisition: the ensemble's mean plus `kappa` times its spread (an upper confidence bound).
- Constraints: when some told trial is infeasible (`infos` with `feasible`/`violation`), a second
  ensemble predicts the violation, and candidates predicted feasible (`< 0.5 * smallest told positive
  violation`) are preferred; without a feasible one, the smallest predicted violation wins. With a
  latency limit, a third ensemble learns log-latency from the told `latency_ms` instead and the
  constraint is `predicted latency <= limit` (a latency model generalises better than a violation that
  is 0 for most trials). The limit is the study's own: the search loop calls `set_latency_limit` with
  the target of a hard reward or the study's `max_latency_ms` (None under a soft reward: its target is
  not a constraint, issue 22); `target_ms` adds one by hand (with both, the smaller counts). A
  `latency_model` (a callable `tokens_list -> latency ms`, e.g. a lookup-table predictor) with
  `target_ms` replaces the learned latency by the model's. The callable is not a stored hyperparameter:
  pass it again when resuming.

The models are retrained from scratch at every ask from the told history and the strategy's generator,
so the state is the history: resume is exact. No torch: NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mnas.strategies.base import Strategy

__all__ = ["PredictorGuided", "mlp_ensemble_fit"]


def _one_hot(tokens: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    x = np.zeros((tokens.shape[0], width))
    x[np.arange(tokens.shape[0])[:, None], offsets[None, :] + tokens] = 1.0
    return x  # (N, sum of choices)


def mlp_ensemble_fit(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, *, members: int = 5, hidden: int = 32,
                     epochs: int = 150, lr: float = 0.01, weight_decay: float = 1e-4) -> Callable[[np.ndarray], np.ndarray]:
    """Train `members` one-hidden-layer MLPs at once on (x, y) with bootstraps; returns `predict(x) -> (members, N)`."""
    n, d = x.shape
    mu, sd = float(y.mean()), float(y.std()) or 1.0
    target = (y - mu) / sd
    boot = rng.integers(0, n, size=(members, n))  # (E, n) bootstrap indices
    xb, yb = x[boot], target[boot]  # (E, n, d), (E, n)
    params = [rng.normal(0, 1 / math.sqrt(d), (members, d, hidden)), np.zeros((members, 1, hidden)),
              rng.normal(0, 1 / math.sqrt(hidden), (members, hidden, 1)), np.zeros((members, 1, 1))]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, epochs + 1):
        w1, b1, w2, b2 = params
        h = np.tanh(xb @ w1 + b1)  # (E, n, H)
        err = (h @ w2 + b2)[..., 0] - yb  # (E, n)
        g_out = (2.0 / n) * err[..., None]  # (E, n, 1)
        g_w2 = h.transpose(0, 2, 1) @ g_out + weight_decay * w2
        g_b2 = g_out.sum(1, keepdims=True)
        g_h = (g_out @ w2.transpose(0, 2, 1)) * (1 - h ** 2)  # (E, n, H)
        g_w1 = xb.transpose(0, 2, 1) @ g_h + weight_decay * w1
        g_b1 = g_h.sum(1, keepdims=True)
        for i, g in enumerate((g_w1, g_b1, g_w2, g_b2)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] = params[i] - lr * (m[i] / (1 - 0.9 ** step)) / (np.sqrt(v[i] / (1 - 0.999 ** step)) + 1e-8)
    w1, b1, w2, b2 = params

    def predict(xq: np.ndarray) -> np.ndarray:
        return (np.tanh(xq[None] @ w1 + b1) @ w2 + b2)[..., 0] * sd + mu  # (E, N)

    return predict


class PredictorGuided(Strategy):
    """`PredictorGuided(space, seed, initial=10, candidates=200, ensemble=5, hidden=32, epochs=150,
    kappa=1.0, target_ms=None, latency_model=None)`; see the module docstring."""

    name = "predictor"

    def __init__(self, space, seed: int = 0, *, initial: int = 10, candidates: int = 200, ensemble: int = 5,
                 hidden: int = 32, epochs: int = 150, kappa: float = 1.0, target_ms: float | None = None,
                 latency_model: Callable[[Sequence[Sequence[int]]], Sequence[float]] | None = None) -> None:
        super().__init__(space, seed)
        for key, value, low in (("initial", initial, 2), ("candidates", candidates, 1), ("ensemble", ensemble, 1),
                                ("hidden", hidden, 1), ("epochs", epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"predictor: {key}={value!r}: expected an integer >= {low}")
        if isinstance(kappa, bool) or not isinstance(kappa, (int, float)) or not (math.isfinite(kappa) and kappa >= 0):
            raise ValueError(f"predictor: kappa={kappa!r}: expected a number >= 0")
        if target_ms is not None and (isinstance(target_ms, bool) or not isinstance(target_ms, (int, float))
                                      or not (math.isfinite(target_ms) and target_ms > 0)):
            raise ValueError(f"predictor: target_ms={target_ms!r}: expected a latency > 0 ms or None")
        if latency_model is not None and not callable(latency_model):
            raise ValueError("predictor: latency_model must be a callable tokens_list -> latencies in ms")
        if latency_model is not None and target_ms is None:
            raise ValueError("predictor: a latency_model needs target_ms (the constraint it checks)")
        self.initial, self.candidates, self.ensemble = initial, candidates, ensemble
        self.hidden, self.epochs, self.kappa = hidden, epochs, float(kappa)
        self.target_ms = None if target_ms is None else float(target_ms)
        self.latency_model = latency_model
        sizes = np.array(space.num_choices)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        self._width = int(sizes.sum())
        self.history: list[tuple[list[int], float | None, float]] = []  # (tokens, reward or None, violation)
        self.latencies: list[float | None] = []  # told latency_ms, to learn latency under a limit
        self.proposed: set[tuple[int, ...]] = set()

    def hyperparameters(self) -> dict[str, Any]:
        return {"initial": self.initial, "candidates": self.candidates, "ensemble": self.ensemble,
                "hidden": self.hidden, "epochs": self.epochs, "kappa": self.kappa, "target_ms": self.target_ms}

    @property
    def limit_ms(self) -> float | None:
        """The latency constraint in force: `target_ms` and the study's limit (`set_latency_limit`), the
        smaller when both are set; None when there is none."""
        found = [v for v in (self.target_ms, self.latency_limit_ms) if v is not None]
        return min(found) if found else None

    # -- proposals ---------------------------------------------------------------------------------
    def _candidates(self, n: int, done: list[tuple[list[int], float, float]]) -> list[list[int]]:
        # Parents: the best results, feasible first (the same order as evolution's tournaments).
        ranked = sorted(done, key=lambda m: (m[2] > 0, m[2], -m[1]))
        parents = [t for t, _, _ in ranked[:max(1, min(10, len(ranked) // 4))]]
        seen = self.proposed | {tuple(t) for t, _, _ in self.history}
        out: list[list[int]] = []
        fresh: set[tuple[int, ...]] = set()
        for i in range(3 * max(self.candidates, n)):
            if len(out) >= max(self.candidates, n):
                break
            if i % 2 == 0:
                child = self.space.mutate_tokens(parents[int(self.rng.integers(len(parents)))], self.rng)
            else:
                child = self.space.sample_tokens(self.rng)
            key = tuple(child)
            if key not in seen and key not in fresh:
                fresh.add(key)
                out.append(child)
        return out

    def _ask(self, n: int) -> list[list[int]]:
        done = [(t, r, v) for t, r, v in self.history if r is not None]
        if len(done) < self.initial:
            out = [self.space.sample_tokens(self.rng) for _ in range(n)]
        else:
            cands = self._candidates(n, done)
            if len(cands) < n:  # a nearly exhausted space: allow repeats
                cands += [self.space.sample_tokens(self.rng) for _ in range(n - len(cands))]
            out = [cands[int(i)] for i in self._select(cands, n, done)]
        self.proposed.update(tuple(t) for t in out)
        return out

    def _select(self, cands: list[list[int]], n: int, done: list[tuple[list[int], float, float]]) -> np.ndarray:
        x = _one_hot(np.array([t for t, _, _ in done]), self._offsets, self._width)
        xc = _one_hot(np.array(cands), self._offsets, self._width)
        fit = dict(members=self.ensemble, hidden=self.hidden, epochs=self.epochs)
        pred = mlp_ensemble_fit(x, np.array([r for _, r, _ in done]), self.rng, **fit)(xc)  # (E, C)
        score = pred.mean(0) + self.kappa * pred.std(0)
        violation = np.zeros(len(cands))
        limit = self.limit_ms
        if self.latency_model is not None:
            lat = np.asarray(self.latency_model(cands), dtype=np.float64)
            violation = np.maximum(0.0, lat / limit - 1.0)
        elif limit is not None and any(v is not None for v in self.latencies):
            known = [(t, lat) for (t, _, _), lat in zip(self.history, self.latencies, strict=True) if lat is not None]
            xl = _one_hot(np.array([t for t, _ in known]), self._offsets, self._width)
            log_lat = mlp_ensemble_fit(xl, np.log([lat for _, lat in known]), self.rng, **fit)(xc).mean(0)
            violation = np.maximum(0.0, np.exp(log_lat) / limit - 1.0)
        else:
            told = np.array([v for _, _, v in done])
            if (told > 0).any():  # learn the constraint only once it has been seen broken
                # log1p: violations are relative excesses, skewed; the ensemble mean is the estimate.
                v = mlp_ensemble_fit(x, np.log1p(told), self.rng, **fit)(xc).mean(0)
                threshold = 0.5 * math.log1p(told[told > 0].min())
                violation = np.where(v < threshold, 0.0, np.maximum(v, 1e-12))
        order = np.lexsort((np.arange(len(cands)), -score, violation))  # feasible first, then the score
        return order[:n]

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        for tokens, reward, info in zip(tokens_list, rewards, infos, strict=True):
            self.history.append((tokens, reward, info["violation"]))
            self.latencies.append(info.get("latency_ms"))

    # -- state -------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {"history": [[t, r, v] for t, r, v in self.history], "latencies": self.latencies,
                "proposed": sorted(list(t) for t in self.proposed)}

    def _load_state(self, state: dict[str, Any]) -> None:
        self.history = [(list(map(int, t)), None if r is None else float(r), float(v)) for t, r, v in state["history"]]
        self.latencies = [None if v is None else float(v) for v in state["latencies"]]
        self.proposed = {tuple(map(int, t)) for t in state["proposed"]}
