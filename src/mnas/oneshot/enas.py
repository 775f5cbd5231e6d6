"""ENAS (Pham et al. 2018) with the MnasNet reward: a controller and a supernet's shared weights
trained in alternation, so the search is platform-aware.

Each round:
1. shared weights: `shared_steps` SGD steps (default: one epoch of the training split), each on a
   sub-network the controller samples (the proxy trainer's pipeline, `mnas.train.loop.Loop`);
2. controller: `controller_updates` REINFORCE updates (`mnas.strategies.Reinforce`: the LSTM
   controller with a moving-average baseline and an entropy bonus). For each update it samples
   `archs_per_update` sub-networks and scores them on one validation batch, the same images for
   all of that update, with the reward `reward(accuracy, latency_ms)`. Batch norm uses the batch's
   statistics there (as ENAS's reference code does: running statistics belong to no single
   sub-network) without updating the running ones.
Latency comes from a `mnas.latency` backend, a lookup table or a callable, once per architecture
(cached and checkpointed). After the last round `derive` sub-networks are sampled from the policy
and scored on `derive_batches` validation batches; the result lists them best first.

The reward is an *inherited* accuracy on a few validation images: a ranking signal for the
controller, not a standalone accuracy. Retrain the derived architectures before reporting any.

Resumable: with `out`, the whole state (weights, optimiser, schedule, controller, latency cache,
RNGs, history) is written atomically after every round; `resume=True` continues exactly.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mnas.objectives import Reward
from mnas.oneshot.supernet import Supernet
from mnas.strategies import Reinforce
from mnas.train.checkpoint import atomic_save, get_rng_state, load_file, set_rng_state
from mnas.train.config import TrainConfig, recipe
from mnas.train.datasets import Dataset
from mnas.train.loop import Loop, threads

__all__ = ["CHECKPOINT_FORMAT", "EnasConfig", "EnasResult", "search_enas"]

CHECKPOINT_FORMAT = "mnas.enas/1"


@dataclass
class EnasConfig:
    """ENAS settings. Defaults suit minutes on a CPU, not ENAS's 310 epochs."""

    rounds: int = 10
    shared_steps: int = 0  # shared-weight steps per round; 0 = one epoch of the training split
    controller_updates: int = 5
    archs_per_update: int = 10
    val_batch_size: int = 256
    entropy_weight: float = 0.03  # the project's controller default (see mnas.strategies.controller)
    baseline_decay: float = 0.9
    controller_lr: float = 0.01
    derive: int = 10
    derive_batches: int = 4
    seed: int = 0
    train: TrainConfig = field(default_factory=lambda: recipe("proxy"))

    def __post_init__(self) -> None:
        if isinstance(self.train, dict):
            self.train = TrainConfig.from_dict(self.train)
        for name in ("rounds", "controller_updates", "archs_per_update", "val_batch_size", "derive", "derive_batches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"enas: {name}={value!r}: expected a positive integer")
        if isinstance(self.shared_steps, bool) or not isinstance(self.shared_steps, int) or self.shared_steps < 0:
            raise ValueError(f"enas: shared_steps={self.shared_steps!r}: expected an integer >= 0 (0: one epoch)")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "train": self.train.to_dict()}


@dataclass
class EnasResult:
    """`derived`: the sampled sub-networks, best reward first, each {arch, tokens, reward, accuracy,
    latency_ms}; `history`: one dict per round; `controller`: the trained policy."""

    derived: list[dict[str, Any]]
    history: list[dict[str, Any]]
    supernet: Supernet
    controller: Reinforce

    @property
    def best(self) -> dict[str, Any]:
        return self.derived[0]


class _Enas:
    def __init__(self, net: Supernet, data: Dataset, reward: Reward, latency: Any, config: EnasConfig):
        if not len(data.y_val):
            raise ValueError(f"{data.name}: ENAS scores sub-networks on the validation split, which is empty:"
                             " load the data with val_fraction > 0")
        if reward.form != "accuracy" and latency is None:
            raise ValueError("enas: the reward has a latency target, so pass latency= (a mnas.latency backend,"
                             " a LookupTable or a callable arch -> ms), or use Reward.accuracy()")
        self.net, self.data, self.reward, self.config = net, data, reward, config
        n = len(data.y_train)
        per_epoch = max(1, n // min(config.train.batch_size, n))
        self.shared_steps = config.shared_steps or per_epoch
        self.loop = Loop(net, data, config.train, total_steps=config.rounds * self.shared_steps)
        self.controller = Reinforce(net.space, config.seed, batch_size=config.archs_per_update,
                                    entropy_weight=config.entropy_weight, baseline_decay=config.baseline_decay,
                                    lr=config.controller_lr)
        self.latency_fn = None
        if latency is not None:
            from mnas.oneshot.sampling import make_predictor
            self.latency_fn = make_predictor(net.space, latency, data.channels)
        self.latency_cache: dict[str, float] = {}
        self.history: list[dict[str, Any]] = []
        self.round = 0
        self._epoch, self._batches = -1, []
        self.x_val = torch.from_numpy(np.ascontiguousarray(data.x_val))
        self.y_val = torch.from_numpy(np.ascontiguousarray(data.y_val))

    # -- pieces ----------------------------------------------------------------------------------
    def latency_ms(self, arch) -> float | None:
        if self.latency_fn is None:
            return None
        key = str(arch)
        if key not in self.latency_cache:
            self.latency_cache[key] = float(self.latency_fn(arch))
        return self.latency_cache[key]

    def batch(self, step: int) -> torch.Tensor:
        epoch, i = divmod(step, self.loop.steps_per_epoch)
        if epoch != self._epoch:
            self._batches, self._epoch = self.loop.epoch_batches(epoch), epoch  # reseeds data order
        return self._batches[i]

    def val_batch(self, *key: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.config.seed, *key, 0xE7A5])
        n = len(self.y_val)
        idx = torch.from_numpy(rng.choice(n, size=min(self.config.val_batch_size, n), replace=False))
        x = self.loop.transform(self.x_val[idx], train=False)
        return x, self.y_val[idx].to(self.loop.device)

    @torch.no_grad()
    def accuracy(self, tokens: list[int], batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
        """Accuracy of a sub-network on `batches`, BN on batch statistics, running ones untouched."""
        net, bns = self.net, self.net.bn_modules()
        net.set_active_tokens(tokens)
        momenta = [bn.momentum for bn in bns]
        net.eval()
        for bn in bns:
            bn.train()
            bn.momentum = 0.0  # running = (1 - 0) * running + 0 * batch: unchanged
        try:
            correct = total = 0
            for x, y in batches:
                with self.loop.autocast():
                    correct += int((net(x).argmax(1) == y).sum())
                total += len(y)
        finally:
            for bn, m in zip(bns, momenta, strict=True):
                bn.momentum = m
            net.train()
        return correct / total

    def score(self, tokens: list[int], batches) -> dict[str, Any]:
        arch = self.net.space.decode(tokens)
        acc = self.accuracy(tokens, batches)
        lat = self.latency_ms(arch)
        return {"arch": str(arch), "tokens": tokens, "accuracy": acc, "latency_ms": lat,
                "reward": float(self.reward(acc, lat))}

    # -- one round ---------------------------------------------------------------------------------
    def run_round(self) -> dict[str, Any]:
        cfg, loop, net = self.config, self.loop, self.net
        net.train()
        losses = []
        for _ in range(self.shared_steps):
            net.set_active_tokens(self.controller.ask(1)[0])
            losses.append(loop.train_step(self.batch(loop.step)))
        rewards = []
        for u in range(cfg.controller_updates):
            batches = [self.val_batch(self.round, u)]
            proposals = self.controller.ask(cfg.archs_per_update)
            scored = [self.score(t, batches) for t in proposals]
            self.controller.tell(proposals, [s["reward"] for s in scored])
            rewards += [s["reward"] for s in scored]
        self.round += 1
        entry = {"round": self.round, "step": loop.step, "train_loss": float(np.mean(losses)),
                 "mean_reward": float(np.mean(rewards)), "max_reward": float(np.max(rewards)),
                 "baseline": self.controller.baseline, "controller_updates": self.controller.num_updates}
        self.history.append(entry)
        return entry

    def derive(self) -> list[dict[str, Any]]:
        batches = [self.val_batch(2**31, b) for b in range(self.config.derive_batches)]  # apart from rounds' keys
        seen, out = set(), []
        for tokens in self.controller.ask(self.config.derive):
            arch = str(self.net.space.decode(tokens))
            if arch not in seen:
                seen.add(arch)
                out.append(self.score(tokens, batches))
        return sorted(out, key=lambda s: -s["reward"])

    # -- checkpoint ----------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "config": self.net.config(), "enas": self.config.to_dict(),
                "state_dict": self.net.state_dict(), "round": self.round, "step": self.loop.step,
                "optimizer": self.loop.optimizer.state_dict(), "schedule": self.loop.schedule.state_dict(),
                "controller": self.controller.state_dict(), "latency_cache": dict(self.latency_cache),
                "history": self.history, "rng": get_rng_state(), "data_rng": self.loop.generator.get_state(),
                "reward": repr(self.reward)}

    def load(self, state: dict[str, Any], path: Path) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not an ENAS checkpoint (format {state.get('format')!r})")
        for key, now in (("config", self.net.config()), ("enas", self.config.to_dict()), ("reward", repr(self.reward))):
            if state.get(key) != now:
                raise ValueError(f"{path} was written with another {key} ({state.get(key)!r:.120}): resume with the"
                                 " same supernet, settings and reward, or start a new run elsewhere")
        self.net.load_state_dict(state["state_dict"])
        self.round, self.loop.step = int(state["round"]), int(state["step"])
        self.loop.optimizer.load_state_dict(state["optimizer"])
        self.loop.schedule.load_state_dict(state["schedule"])
        self.controller.load_state_dict(state["controller"])
        self.latency_cache, self.history = dict(state["latency_cache"]), list(state["history"])
        self.batch(self.loop.step)  # the epoch's data order, then the RNGs as they were mid-epoch
        set_rng_state(state["rng"])
        self.loop.generator.set_state(state["data_rng"])


def search_enas(net: Supernet, data: Dataset, reward: Reward, latency: Any = None, config: EnasConfig | None = None,
                *, out: str | Path | None = None, resume: bool = False, stop_after: int | None = None,
                log: Any = None) -> EnasResult:
    """Run ENAS on `net` (a supernet from `build_supernet`) with `data` (train for the shared weights,
    validation for the controller's reward). `out` is a checkpoint file, written after every round;
    `resume` continues from it. `stop_after` ends (checkpointed) after that many rounds in total,
    without deriving, e.g. to split a run over sessions. `log(entry)` receives each round's figures.
    Returns the derived sub-networks, best reward first (see `EnasResult`).
    """
    config = config or EnasConfig()
    with threads(config.train.threads):
        run = _Enas(net, data, reward, latency, config)
        path = Path(out) if out is not None else None
        if resume:
            if path is None or not path.is_file():
                raise ValueError(f"enas: nothing to resume: {path} is not a checkpoint file")
            run.load(load_file(path), path)
        else:
            torch.manual_seed(config.seed)
        last = config.rounds if stop_after is None else min(config.rounds, stop_after)
        while run.round < last:
            entry = run.run_round()
            if path is not None:
                atomic_save(run.state(), path)
            if log is not None:
                log(entry)
        derived = run.derive() if run.round >= config.rounds else []
        return EnasResult(derived, run.history, net, run.controller)
