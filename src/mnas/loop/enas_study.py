"""ENAS (`mnas.oneshot.search_enas`) run as a study: each derived sub-network becomes a trial.

ENAS is not an ask/tell strategy — its controller is trained on the shared weights it trains itself —
so it does not go through `SearchStudy.optimize`. `enas_study` runs it once, then stores every
derived architecture as a complete trial with ``accuracy_source = "enas"`` (accuracy on the
validation batches with the shared weights, not trained accuracy), so `mnas report`, `mnas export`,
`Study.best()` and the Pareto front work on it as on any study.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mnas.objectives import Reward

__all__ = ["enas_study"]


def enas_study(space: Any, data: Any, reward: Reward, latency: Any, *, supernet: Any = None,
               options: dict[str, Any] | None = None, storage: Any = None, seed: int = 0) -> Any:
    """Run ENAS on `supernet` (a `mnas supernet train` checkpoint path, a `Supernet`, or None: a new
    supernet of `space`, trained from scratch by ENAS itself) and return the study holding the derived
    architectures. `options` are `mnas.oneshot.enas.EnasConfig` fields (rounds, derive, ...). A study
    that already holds trials is refused (ENAS does not resume into one: use a new storage)."""
    from mnas.loop.api import create_study
    from mnas.oneshot import build_supernet
    from mnas.oneshot.enas import EnasConfig, search_enas

    try:
        config = EnasConfig(**{**(options or {}), "seed": seed})
    except TypeError as exc:
        raise ValueError(f"enas: {exc} (options are EnasConfig fields: rounds, shared_steps, derive, ...)") from None
    if isinstance(supernet, (str, Path)):
        from mnas.oneshot.train import load_supernet

        net = load_supernet(supernet)[0]  # a fresh copy: ENAS trains it further
    else:
        net = supernet if supernet is not None else build_supernet(space)
    study = create_study(storage, space=space, reward=reward, seed=seed, load_if_exists=True)
    if study.storage.count_trials():
        raise ValueError(f"{study.storage!r} already holds trials: ENAS stores its derived architectures in a new study")
    result = search_enas(net, data, reward, latency, config)
    for d in result.derived:
        if d.get("latency_ms") is None or not math.isfinite(float(d["reward"])):
            continue  # no latency backend: nothing a trial could hold
        number = study.storage.create_trial(d["tokens"], d["arch"])
        study.storage.complete_trial(number, float(d["accuracy"]), float(d["latency_ms"]), float(d["reward"]),
                                     extra={"accuracy_source": "enas"})
    stored = dict(study.storage.get_meta("config") or {})
    study.storage.set_meta("config", {**stored, "strategy": "enas", "strategy_options": config.to_dict(),
                                      "accuracy_source": "enas",
                                      "evaluator": {"kind": "enas", "supernet": str(supernet) if supernet else "new"},
                                      "enas_history": result.history})
    return study
