"""MnasNet's RL controller: an LSTM that emits one token per decision, trained with PPO (the paper's
choice, Tan et al. 2019 section 4) or with plain REINFORCE.

Policy. A one-layer LSTM (as in NASNet, Zoph et al. 2018). Step t reads an embedding of the token
chosen at step t-1 (a learned start vector at t=0); each decision has its own embedding table and its
own softmax head, because decisions have different numbers of choices. `ask(n)` samples n sequences
at once, step by step, with the strategy's NumPy generator (inverse-CDF on the softmax), so the
strategy's randomness is one serialisable generator.

Learning. Results are buffered; every `batch_size` results make one update (the paper updates on
batches of sampled models). The advantage is `(reward - baseline) / scale`, where the baseline is an
exponential moving average of batch-mean rewards and `scale` an EMA of the rewards' spread around it
(so learning does not depend on the reward's units: proxy accuracies differ by fractions of a percent).
- PPO: `epochs` passes of Adam over the batch on the clipped objective
  `min(rho * A, clip(rho, 1 - clip, 1 + clip) * A)`, rho the ratio of the whole sequence's probability
  under the policy being updated to that under the policy at the start of the update (a whole
  architecture is one action), minus `entropy_weight` times the per-sequence entropy.
- REINFORCE: one step on `-A * log p(sequence) - entropy_weight * entropy`.
The "old" policy of PPO is the policy when the batch is used, not the one that sampled it: results
told late, out of order, or replayed from a resumed study are all treated alike.

A failed trial (reward None) counts as `failed_reward` (default 0.0, the lowest MnasNet reward, since
accuracy >= 0): the controller learns to avoid what fails. Set it for rewards that can be negative.

State. The policy and Adam's moments are a deterministic function of the seed and of the results the
updates used, so `state_dict()` stores the told results (tokens and rewards, packed as base64) and the
number of updates instead of ~50k float32 weights and two Adam moments (0.78 MB at hidden_size 64 on
the MnasNet space, written to the study after every trial); `load_state_dict` rebuilds the policy by
replaying the updates and checks it against a SHA-256 digest of the weights. The digest can differ
only if the resuming machine computes differently (another torch build or thread count); the search
then continues from the replayed policy and a warning says so.

Only this module imports torch, and only when a controller is built. The caller owns
`torch.set_num_threads`; the controller never changes global torch state (its initial weights come
from a forked, seeded torch RNG).
"""

from __future__ import annotations

import base64
import hashlib
import math
from typing import Any

import numpy as np

from mnas._util import get_logger
from mnas.strategies.base import Strategy

_log = get_logger(__name__)

__all__ = ["Controller", "PPO", "Reinforce"]

_MASK = -1e9  # logit for "not this decision's choice": exp() underflows to exactly 0


def _torch():
    import torch

    return torch


def _pack(arr: np.ndarray, dtype: str) -> str:
    return base64.b64encode(np.ascontiguousarray(arr, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode("ascii")


def _unpack(text: str, dtype: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)


class Controller(Strategy):
    """LSTM controller; `algorithm` is "ppo" or "reinforce" (use the `PPO` and `Reinforce` subclasses).

    Defaults. MnasNet does not publish its controller's hyperparameters; these were tuned on
    benchmarks/search.py (1,000 trials of the 42-decision MnasNet space, 3 seeds) and on the tests' tiny
    spaces: hidden_size 64 (NASNet's controller has 100; 64 learns as well here and samples faster),
    batches of 10 models per update, clip 0.2 (the PPO paper's), baseline EMA decay 0.9.
    entropy_weight 0.03: with 1e-3 or 1e-2 the policy collapsed onto a handful of architectures within
    200-800 trials and stopped improving. Adam lr: 0.01 for REINFORCE (one step per batch); 0.003 for
    PPO, whose 4 epochs take 4 steps per batch: at 0.01 PPO locked onto a suboptimal sequence of a
    65,536-member space in 7 of 10 seeds, while on the MnasNet space 0.003-0.01 end within noise.
    """

    name = "controller"

    def __init__(self, space, seed: int = 0, *, algorithm: str = "ppo", hidden_size: int = 64,
                 lr: float = 0.01, batch_size: int = 10, epochs: int = 4, clip: float = 0.2,
                 entropy_weight: float = 0.03, baseline_decay: float = 0.9, failed_reward: float = 0.0) -> None:
        super().__init__(space, seed)
        if algorithm not in ("ppo", "reinforce", "replay"):
            raise ValueError(f"controller algorithm {algorithm!r}: expected 'ppo', 'reinforce' or 'replay'")
        for key, value, low in (("hidden_size", hidden_size, 1), ("batch_size", batch_size, 1), ("epochs", epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{algorithm}: {key}={value!r}: expected an integer >= {low}")
        for key, value, ok, want in (("lr", lr, lambda v: v > 0, "> 0"), ("clip", clip, lambda v: v > 0, "> 0"),
                                     ("entropy_weight", entropy_weight, lambda v: v >= 0, ">= 0"),
                                     ("baseline_decay", baseline_decay, lambda v: 0 <= v < 1, "in [0, 1)"),
                                     ("failed_reward", failed_reward, lambda v: True, "finite")):
            number = not isinstance(value, bool) and isinstance(value, (int, float))
            if not (number and math.isfinite(value) and ok(value)):
                raise ValueError(f"{algorithm}: {key}={value!r}: expected a number {want}")
        if algorithm == "reinforce" and epochs != 1:
            raise ValueError(f"reinforce: epochs={epochs}: REINFORCE takes one step per batch; "
                             "use 'ppo' for epochs > 1")
        self.algorithm, self.hidden_size, self.batch_size, self.epochs = algorithm, hidden_size, batch_size, epochs
        self.lr, self.clip, self.entropy_weight = float(lr), float(clip), float(entropy_weight)
        self.baseline_decay, self.failed_reward = float(baseline_decay), float(failed_reward)
        self._reset()

    def _reset(self) -> None:
        """The state before any result: initial policy (from the seed), fresh Adam, no history."""
        self.baseline: float | None = None
        self.spread: float | None = None
        self.num_updates = 0
        self.history: list[tuple[list[int], float]] = []  # every told result, failures as failed_reward
        self._digest_cache = None
        self._build()

    @property
    def buffer(self) -> list[tuple[list[int], float]]:
        """The results told since the last update (fewer than batch_size)."""
        return self.history[self.num_updates * self.batch_size:]

    def hyperparameters(self) -> dict[str, Any]:
        # No "algorithm": the strategy's name says it, and get_strategy(name, ...) takes these back.
        return {"hidden_size": self.hidden_size, "lr": self.lr,
                "batch_size": self.batch_size, "epochs": self.epochs, "clip": self.clip,
                "entropy_weight": self.entropy_weight, "baseline_decay": self.baseline_decay,
                "failed_reward": self.failed_reward}

    # -- the policy -----------------------------------------------------------------------------
    def _build(self) -> None:
        torch = _torch()
        sizes = self.space.num_choices
        self.offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        total, hid = int(sum(sizes)), self.hidden_size
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            # Embedding rows: every (decision, choice) pair, then the start token (row `total`).
            self.policy = torch.nn.ModuleDict({"embed": torch.nn.Embedding(total + 1, hid),
                                               "lstm": torch.nn.LSTM(hid, hid),
                                               "head": torch.nn.Linear(hid, total)})
            for p in self.policy["head"].parameters():  # start from a uniform policy
                torch.nn.init.zeros_(p)
        mask = torch.full((len(sizes), total), _MASK)
        for t, (o, k) in enumerate(zip(self.offsets, sizes, strict=True)):
            mask[t, o:o + k] = 0.0
        self._mask = mask  # (T, total)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.lr)

    def _ask(self, n: int) -> list[list[int]]:
        torch = _torch()
        embed, lstm, head = self.policy["embed"], self.policy["lstm"], self.policy["head"]
        tokens = np.zeros((n, len(self.offsets)), dtype=np.int64)
        with torch.no_grad():
            x = embed.weight[-1].expand(1, n, self.hidden_size)  # (1, n, H): the start token
            state = None
            for t, k in enumerate(self.space.num_choices):
                out, state = lstm(x, state)  # out: (1, n, H)
                o = int(self.offsets[t])
                logits = torch.nn.functional.linear(out[0], head.weight[o:o + k], head.bias[o:o + k])  # (n, k)
                cdf = np.cumsum(torch.softmax(logits, -1).double().numpy(), axis=1)
                u = self.rng.random(n)
                tok = np.minimum((u[:, None] >= cdf).sum(axis=1), k - 1)
                tokens[:, t] = tok
                x = embed(torch.from_numpy(o + tok)).unsqueeze(0)
        return tokens.tolist()

    def _log_probs(self, tokens):
        """Log-probability and entropy of each whole sequence: tokens (B, T) -> ((B,), (B,))."""
        torch = _torch()
        b = tokens.shape[0]
        offsets = torch.from_numpy(self.offsets)  # (T,)
        prev = torch.cat([torch.full((b, 1), len(self._mask[0]), dtype=torch.long), offsets[:-1] + tokens[:, :-1]], 1)
        out, _ = self.policy["lstm"](self.policy["embed"](prev.T))  # (T, B, H)
        logp = torch.log_softmax(self.policy["head"](out) + self._mask[:, None, :], -1)  # (T, B, total)
        chosen = logp.gather(-1, (offsets[None, :] + tokens).T.unsqueeze(-1)).squeeze(-1)  # (T, B)
        entropy = -(logp.exp() * logp).sum(-1)  # (T, B); masked entries contribute 0 * -1e9 = 0
        return chosen.sum(0), entropy.sum(0)

    def _update(self) -> None:
        """One update on the next `batch_size` results (PPO and REINFORCE learn from that batch only)."""
        torch = _torch()
        batch = self.history[self.num_updates * self.batch_size:(self.num_updates + 1) * self.batch_size]
        rewards = np.array([r for _, r in batch], dtype=np.float64)
        mean = float(rewards.mean())
        if self.baseline is None:
            self.baseline = mean
            self.spread = float(rewards.std())
        dev = rewards - self.baseline
        # EMA of the spread around the baseline; a floor keeps a constant reward from dividing by 0.
        self.spread = self.baseline_decay * self.spread + (1 - self.baseline_decay) * float(np.sqrt((dev ** 2).mean()))
        adv = torch.tensor(dev / max(self.spread, 1e-8), dtype=torch.float32)  # (B,)
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * mean
        tokens = torch.tensor([t for t, _ in batch], dtype=torch.long)  # (B, T)
        with torch.no_grad():
            old_logp, _ = self._log_probs(tokens)
        for _ in range(self.epochs):
            logp, entropy = self._log_probs(tokens)
            if self.algorithm == "ppo":
                ratio = torch.exp(logp - old_logp)
                objective = torch.minimum(ratio * adv, ratio.clamp(1 - self.clip, 1 + self.clip) * adv)
            else:
                objective = logp * adv
            loss = -(objective.mean() + self.entropy_weight * entropy.mean())
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.num_updates += 1
        self._digest_cache = None

    def _tell(self, tokens_list: list[list[int]], rewards: list[float | None], infos: list[dict[str, Any]]) -> None:
        for tokens, reward, info in zip(tokens_list, rewards, infos, strict=True):
            self._record(tokens, self.failed_reward if reward is None else reward, info)
            if len(self.history) >= (self.num_updates + 1) * self.batch_size:
                self._update()

    def _record(self, tokens: list[int], reward: float, info: dict[str, Any]) -> None:
        self.history.append((tokens, reward))

    def probabilities(self, tokens_list: list[list[int]]) -> list[float]:
        """The policy's probability of each whole sequence (for inspection and tests)."""
        torch = _torch()
        with torch.no_grad():
            logp, _ = self._log_probs(torch.tensor([self.space.check_tokens(t) for t in tokens_list]))
        return logp.exp().tolist()

    # -- state ----------------------------------------------------------------------------------
    def _digest(self) -> str:
        if getattr(self, "_digest_cache", None) is not None:  # the policy changes only in updates
            return self._digest_cache
        h = hashlib.sha256()
        for name, value in self.policy.state_dict().items():
            h.update(name.encode())
            h.update(value.detach().cpu().contiguous().numpy().astype("<f4").tobytes())
        self._digest_cache = h.hexdigest()[:32]
        return self._digest_cache

    def _state(self) -> dict[str, Any]:
        tokens = np.array([t for t, _ in self.history], dtype=np.int64).reshape(-1, len(self.space.decisions))
        dtype = "uint8" if max(self.space.num_choices) <= 256 else "int32"
        return {"num_updates": self.num_updates, "num_results": len(self.history), "token_dtype": dtype,
                "tokens": _pack(tokens, dtype), "rewards": _pack(np.array([r for _, r in self.history]), "float64"),
                "policy_digest": self._digest(), **self._extra_state()}

    def _load_state(self, state: dict[str, Any]) -> None:
        if "tokens" not in state:
            raise ValueError("controller state was saved by an older mnas (weights, not results): it cannot be "
                             "replayed; resume with the mnas that wrote it or start a new study")
        n, num_updates = int(state["num_results"]), int(state["num_updates"])
        tokens = _unpack(state["tokens"], state["token_dtype"]).astype(np.int64).reshape(n, len(self.space.decisions))
        rewards = _unpack(state["rewards"], "float64")
        if len(rewards) != n or num_updates * self.batch_size > n:
            raise ValueError("controller state is inconsistent (results and updates disagree): it is damaged")
        self._reset()  # the policy starts from this state's seed (load_state_dict has set it)
        self._load_extra_state(state)
        self.history = [(list(map(int, t)), float(r)) for t, r in zip(tokens.tolist(), rewards.tolist(), strict=True)]
        while self.num_updates < num_updates:
            self._update()
        if self._digest() != state["policy_digest"]:
            _log.warning("the resumed controller's policy differs in its last bits from the saved one (another torch "
                         "build or thread count?); the search continues from the replayed policy")

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: dict[str, Any]) -> None:
        pass


_KNOWN = ("hidden_size", "lr", "batch_size", "epochs", "clip", "entropy_weight", "baseline_decay", "failed_reward")


def _check_names(name: str, hyperparameters: dict[str, Any]) -> None:
    unknown = sorted(set(hyperparameters) - set(_KNOWN))
    if unknown:
        raise ValueError(f"{name}: unknown hyperparameter {unknown[0]!r}: expected some of {', '.join(_KNOWN)}")


class PPO(Controller):
    """The MnasNet controller: LSTM + PPO (Tan et al. 2019)."""

    name = "ppo"
    HYPERPARAMETERS = _KNOWN

    def __init__(self, space, seed: int = 0, **hyperparameters: Any) -> None:
        _check_names("ppo", hyperparameters)
        hyperparameters.setdefault("lr", 0.003)
        super().__init__(space, seed, algorithm="ppo", **hyperparameters)


class Reinforce(Controller):
    """The same controller trained with plain REINFORCE (one gradient step per batch)."""

    name = "reinforce"
    HYPERPARAMETERS = _KNOWN

    def __init__(self, space, seed: int = 0, **hyperparameters: Any) -> None:
        _check_names("reinforce", hyperparameters)
        hyperparameters.setdefault("epochs", 1)
        super().__init__(space, seed, algorithm="reinforce", **hyperparameters)
