"""`Study`: the read side of a search — its trials, the best one, the Pareto front, a summary."""

from __future__ import annotations

import math
import os
from collections import Counter
from typing import Any

from mnas.objectives import Constraints, Reward, pareto_front
from mnas.study.storage import StatesArg, Storage, get_storage
from mnas.study.trial import Trial, TrialState

__all__ = ["Study"]


class Study:
    """A view of a study's storage (a Storage, a URL or path, or None for in memory).

    The search driver writes through `study.storage`; everything here only reads, so a report can
    open a study while a search is still writing to it.
    """

    def __init__(self, storage: Storage | str | os.PathLike[str] | None = None) -> None:
        self.storage = get_storage(storage)

    @property
    def trials(self) -> list[Trial]:
        """Every trial, in every state, ordered by number."""
        return self.storage.get_trials()

    @property
    def complete_trials(self) -> list[Trial]:
        return self.storage.get_trials(TrialState.COMPLETE)

    def get_trials(self, states: StatesArg = None) -> list[Trial]:
        return self.storage.get_trials(states)

    @property
    def meta(self) -> dict[str, Any]:
        return self.storage.get_all_meta()

    def stored_reward(self) -> Reward | None:
        """The reward the study was searched with (from its metadata), or None if it has none."""
        data = (self.storage.get_meta("config") or {}).get("reward")
        try:
            return Reward.from_dict(data) if isinstance(data, dict) else None
        except ValueError:
            return None

    @property
    def limits(self) -> Constraints:
        """The study's hard limits (its 'constraints' metadata; none: an empty `Constraints()`)."""
        try:
            return Constraints.from_dict(self.storage.get_meta("constraints"))
        except ValueError:
            return Constraints()

    def _within_limits(self, trials: list[Trial]) -> list[Trial]:
        """The trials whose known figures (params, MACs, latency) break none of the study's limits."""
        limits = self.limits
        if not limits:
            return trials
        keep = []
        for t in trials:
            metrics = {"params": t.params, "macs": t.macs, "latency_ms": t.latency_ms,
                       "peak_memory": (t.extra or {}).get("peak_memory")}
            if limits.feasible({k: v for k, v in metrics.items() if v is not None}, partial=True):
                keep.append(t)
        return keep

    def best(self, target_ms: float | None = None) -> Trial | None:
        """The complete trial with the highest reward — under a hard reward (its target is a
        constraint), only among trials that meet the target; with `target_ms`, the most accurate
        complete trial whose latency is at most `target_ms`. Ties go to the earlier trial; None if none.
        A study with limits (`limits`) only considers the trials that meet them. Retrained trials
        (accuracy source "standalone", `mnas.loop.retrain`) come first: any that qualifies wins. Among
        them only those retrained with the most seeds (`--retrain-seeds`) of the qualifying ones compete:
        after `--retrain-top 3` and then `--retrain-top 2 --retrain-seeds 3`, the best is the better
        3-seed mean, never the third network's stale single training, which would win on one lucky seed
        as easily as on merit. A trial retrained with fewer seeds wins only where none with more qualifies
        (its ``extra["seeds"]`` says how many: absent is one)."""
        trials = self._within_limits(self.complete_trials)
        if target_ms is None:
            reward = self.stored_reward()
            if reward is not None and reward.is_hard:
                trials = [t for t in trials if t.latency_ms is not None and reward.feasible(t.latency_ms)]
            trials = standalone_trials(trials) or trials  # real accuracy over inherited
            return max(trials, key=lambda t: (t.reward, -t.number), default=None)
        if isinstance(target_ms, bool) or not isinstance(target_ms, (int, float)) or not target_ms > 0:
            raise ValueError(f"target_ms={target_ms!r}: expected a latency target in milliseconds > 0")
        under = [t for t in trials if t.latency_ms <= target_ms]
        under = standalone_trials(under) or under
        return max(under, key=lambda t: (t.accuracy, -t.latency_ms, -t.number), default=None)

    def pareto_front(self) -> list[Trial]:
        """Complete trials that no other trial beats on both accuracy (higher) and latency
        (lower), ordered by latency. Trials with identical figures are all kept; only trials within
        the study's limits. Accuracy is compared on one scale: when the study holds retrained trials
        (accuracy source "standalone"), the front is theirs, as `best` prefers them — those retrained
        with the most seeds, as in `best`; a search's own scores (inherited or proxy accuracy) are not
        comparable with a full training's."""
        trials = [t for t in self._within_limits(self.complete_trials)
                  if math.isfinite(t.accuracy) and math.isfinite(t.latency_ms)]
        trials = standalone_trials(trials) or trials
        return [trials[i] for i in pareto_front((t.accuracy, t.latency_ms) for t in trials)]

    def summary(self, target_ms: float | None = None) -> dict[str, Any]:
        """A JSON-friendly overview: counts by state, best trial(s), the Pareto front, metadata.
        `target_ms` defaults to the study's 'target_ms' metadata when that is a number."""
        meta = self.meta
        if target_ms is None and isinstance(meta.get("target_ms"), (int, float)) and meta["target_ms"] > 0:
            target_ms = meta["target_ms"]
        trials = self.trials
        counts = Counter(t.state.value for t in trials)
        best = self.best()
        best_under = self.best(target_ms) if target_ms is not None else None
        reward = self.stored_reward()
        return {
            "n_trials": len(trials),
            "best_is_feasible_only": bool(reward is not None and reward.is_hard),
            "states": {s.value: counts.get(s.value, 0) for s in TrialState},
            "best": best.to_dict() if best else None,
            "target_ms": target_ms,
            "best_under_target": best_under.to_dict() if best_under else None,
            "pareto_front": [t.number for t in self.pareto_front()],
            "meta": meta,
        }

    def close(self) -> None:
        self.storage.close()

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        return self.storage.count_trials()

    def __repr__(self) -> str:
        return f"Study({self.storage!r})"


def standalone_trials(trials: list[Trial]) -> list[Trial]:
    """The retrained (standalone) trials among `trials` that were retrained with the most seeds any of them
    has (`mnas search --retrain-seeds`). A mean over 3 trainings supersedes a single training — of the same
    network (which would otherwise win `best` on one lucky seed), and of another network left from an
    earlier, shallower retraining round: comparing a 3-seed mean with one seed's result is comparing a
    measurement with a draw of the noise it averages out."""
    standalone = [t for t in trials if t.accuracy_source == "standalone"]
    most = max((_seeds(t) for t in standalone), default=0)
    return [t for t in standalone if _seeds(t) == most]


def _seeds(t: Trial) -> int:
    return len((t.extra or {}).get("seeds") or [None])
