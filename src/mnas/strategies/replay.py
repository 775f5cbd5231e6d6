"""The MnasNet controller, trained on the study's whole history: strategy "replay".

Same LSTM policy and sampling as PPO (`mnas.strategies.controller`); only the update differs. PPO
learns from its last batch and forgets it: with ten updates in a hundred trials, most of what the
study knows never reaches the policy again. Here every update (one per `batch_size` results) fits the
policy to the best results of *all* finished trials, the told history replayed:

- rank every result so far (feasible first, then the smaller violation, then the higher reward: the
  same order as evolution's tournaments, so a hard target is a constraint, not a penalty);
- give the top `elite_fraction` rank-based weights `log(mu + 1/2) - log(rank)` (CMA-ES's
  recombination weights, Hansen 2016), normalised to sum 1, and 0 to the rest: only ranks count, so the
  reward's units and outliers do not;
- take `epochs` Adam steps on `-sum_i w_i log p(sequence_i) - entropy_weight * entropy`.

`ask` prefers sequences that were not told before (redrawing at most 8 rounds), so a converging
policy keeps proposing new architectures instead of repeats.

This is a weighted maximum-likelihood (cross-entropy-method / priority-queue-training style) update:
it needs no importance weights, because it fits a distribution to chosen sequences rather than
estimating a policy gradient from the policy's own samples, so trials from earlier policies, other
workers or a resumed study count fully. The entropy term keeps the policy from collapsing onto the
elite before the search has seen enough.

Defaults (benchmarks/strategies_tune.py, 20 seeds on an 11-decision space of 5e5 members, 100 trials):
see docs/design/strategies.md. A failed trial counts as `failed_reward` and ranks as it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnas.strategies.controller import Controller, _pack, _torch, _unpack

__all__ = ["ReplayController"]

_REPLAY_KNOWN = ("hidden_size", "lr", "batch_size", "epochs", "elite_fraction", "entropy_weight", "failed_reward")


class ReplayController(Controller):
    """`ReplayController(space, seed, hidden_size=64, lr=0.001, batch_size=10, epochs=10, elite_fraction=0.2,
    entropy_weight=0.03, failed_reward=0.0)`; see the module docstring."""

    name = "replay"
    HYPERPARAMETERS = _REPLAY_KNOWN

    def __init__(self, space, seed: int = 0, *, hidden_size: int = 64, lr: float = 0.001, batch_size: int = 10,
                 epochs: int = 10, elite_fraction: float = 0.2, entropy_weight: float = 0.03,
                 failed_reward: float = 0.0) -> None:
        number = not isinstance(elite_fraction, bool) and isinstance(elite_fraction, (int, float))
        if not (number and 0 < elite_fraction <= 1):
            raise ValueError(f"replay: elite_fraction={elite_fraction!r}: expected a number in (0, 1]")
        self.elite_fraction = float(elite_fraction)
        super().__init__(space, seed, algorithm="replay", hidden_size=hidden_size, lr=lr, batch_size=batch_size,
                         epochs=epochs, entropy_weight=entropy_weight, failed_reward=failed_reward)

    def hyperparameters(self) -> dict[str, Any]:
        return {"hidden_size": self.hidden_size, "lr": self.lr, "batch_size": self.batch_size,
                "epochs": self.epochs, "elite_fraction": self.elite_fraction,
                "entropy_weight": self.entropy_weight, "failed_reward": self.failed_reward}

    def _reset(self) -> None:
        self.violations: list[float] = []
        super()._reset()

    def _record(self, tokens: list[int], reward: float, info: dict[str, Any]) -> None:
        self.history.append((tokens, reward))
        self.violations.append(info["violation"])

    def _ask(self, n: int) -> list[list[int]]:
        # Prefer sequences not told yet (nor proposed twice in this call): a repeat teaches nothing new and
        # a driver that caches by architecture would stall on it. Bounded: after 8 rounds, repeats are allowed.
        seen = {tuple(t) for t, _ in self.history}
        out: list[list[int]] = []
        spare: list[list[int]] = []
        for _ in range(8):
            for t in super()._ask(2 * (n - len(out))):
                if tuple(t) in seen:
                    spare.append(t)
                elif len(out) < n:
                    seen.add(tuple(t))
                    out.append(t)
            if len(out) == n:
                return out
        return out + spare[:n - len(out)]

    def elite_weights(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices of the top results among the first `n` told, and their weights (summing to 1)."""
        rewards = np.array([r for _, r in self.history[:n]])
        violations = np.array(self.violations[:n])
        order = np.lexsort((np.arange(n), -rewards, violations))  # violation up, reward down, then by age
        mu = max(1, int(round(self.elite_fraction * n)))
        w = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        return order[:mu], w / w.sum()

    def _update(self) -> None:
        torch = _torch()
        n = (self.num_updates + 1) * self.batch_size
        index, weights = self.elite_weights(n)
        tokens = torch.tensor([self.history[int(i)][0] for i in index], dtype=torch.long)  # (mu, T)
        w = torch.tensor(weights, dtype=torch.float32)  # (mu,)
        for _ in range(self.epochs):
            logp, entropy = self._log_probs(tokens)
            loss = -((w * logp).sum() + self.entropy_weight * entropy.mean())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.num_updates += 1
        self._digest_cache = None

    def _extra_state(self) -> dict[str, Any]:
        return {"violations": _pack(np.array(self.violations, dtype=np.float64), "float64")}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        self.violations = _unpack(state["violations"], "float64").tolist()
