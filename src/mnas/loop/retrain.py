"""Retraining the top K of a search: the final choice rests on real (standalone) accuracy.

A supernet search ranks candidates by inherited accuracy, which may rank badly (issue 9). After it,
`retrain_top` takes the best K complete trials that meet the study's target and limits (never one
over a latency target; ranked by the study's reward), trains each on its own with a stated recipe —
from scratch (the default) or fine-tuned from the weights it inherits from the supernet — and
records each result in the study as a **new complete trial** with ``accuracy_source="standalone"``,
``extra["retrained_from"]`` (the search trial it came from) and ``extra["inherited_accuracy"]``.
Its accuracy is the validation accuracy (the split inherited accuracy was measured on; the test
accuracy is kept in `extra`), its latency the search trial's (same network, same target).

Why new trials rather than attributes of the search trials: a finished trial is final in the study
(only running trials change), and a trial of its own carries its own accuracy, reward and source, so
`Study.best()` — which prefers standalone trials when a study holds any — `mnas export --best`, the
CLI report and the JSON summary all name the retrained pick, while the search trials keep the
inherited figures the strategy was told. The search's repeat detection finds the earlier (search)
trial of an architecture first, so a resumed search is not told standalone figures.

Crash safety: each training runs in its own folder under `out` with `mnas.train.train_full`'s
checkpoint after every epoch; a trial is recorded as soon as its training ends, so a kill loses at
most the epoch in progress, and a rerun with the same arguments skips what is recorded, continues a
training from its checkpoint, and completes a trial a kill left running between its two writes.

Seeds (`seeds=N`): one training is mostly seed noise at short recipes (issue 19 item 5: two candidates
one layer apart retrained at 0.674 and 0.636, and the second scored 0.637 at another seed), so the
pick among K close candidates can be a winner of that noise. With N > 1 every candidate (and the
reference) trains with N seeds — the architecture's seed and the N - 1 after it, so a 1-seed run's
training is reused as the first — its trial's accuracy is the mean over them (``extra["seed_accuracies"]``,
``extra["accuracy_se"]``), and its weights are the best seed's by validation accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mnas.evaluate import trial_seed
from mnas.loop.lease import WriterLease
from mnas.study import Study, Trial

__all__ = ["DEFAULT_EPOCHS", "MODES", "STANDALONE", "default_recipe", "retrain_candidates", "retrain_reference",
           "retrain_top"]

STANDALONE = "standalone"  # the accuracy source of a retrained trial
MODES = ("scratch", "finetune")
# Scratch: rank-check's default (mnas supernet rank-check --epochs 5), so retrained and rank-check
# standalone accuracies are comparable. Fine-tuning starts from trained weights and needs fewer.
DEFAULT_EPOCHS = {"scratch": 5, "finetune": 2}


def default_recipe(mode: str = "scratch", epochs: int | None = None) -> Any:
    """The stated recipe of `mode`: the "fast" recipe (SGD + Nesterov, batch 128, cosine, one thread)
    for `epochs` (default `DEFAULT_EPOCHS[mode]`); fine-tuning at a tenth of its learning rate and
    without warm-up, so the inherited weights are adjusted rather than overwritten."""
    from mnas.train import recipe

    _check_mode(mode)
    epochs = DEFAULT_EPOCHS[mode] if epochs is None else epochs
    if mode == "finetune":
        return recipe("fast", epochs=epochs, lr_per_256=0.02, warmup_epochs=0.0, threads=1)
    return recipe("fast", epochs=epochs, threads=1)


def smoothed_scores(told: list[Trial], pool: list[Trial], alpha: float = 1.0) -> dict[int, float]:
    """Each `pool` trial's score for choosing what to retrain: its reward, or — when every trial was
    scored by a supernet (`accuracy_source` "supernet": noisy, per-network evaluation error) and there
    are enough of them — the mean of its reward and a ridge regression of the rewards of all `told`
    trials on one-hot tokens. The regression keeps the additive part of the inherited accuracy and
    averages out each evaluation's error, so the choice is less a winner of the noise: on
    NAS-Bench-Macro under a hard target at the 25th latency percentile the pick's gap to the optimum
    went from 0.49 to 0.22 points (benchmarks/nbmacro_search.py, 5 seeds)."""
    raw = {t.number: t.reward for t in pool}
    usable = [t for t in told if t.tokens and t.reward is not None and math.isfinite(t.reward)]
    if any(t.accuracy_source != "supernet" for t in usable + pool) or not usable:
        return raw
    import numpy as np

    from mnas.strategies.boundary import ridge_fit

    width = [max(t.tokens[i] for t in usable + pool) + 1 for i in range(len(usable[0].tokens))]
    if any(len(t.tokens) != len(width) for t in usable + pool) or len(usable) < 2 * sum(width):
        return raw

    def one_hot(trials: list[Trial]) -> np.ndarray:
        return np.array([np.concatenate([np.eye(w)[tok] for w, tok in zip(width, t.tokens, strict=True)])
                         for t in trials])

    fit = ridge_fit(one_hot(usable), np.array([t.reward for t in usable]), alpha)
    return {t.number: 0.5 * (t.reward + float(p)) for t, p in zip(pool, fit(one_hot(pool)), strict=True)}


def retrain_candidates(study: Study, k: int) -> tuple[list[Trial], str | None]:
    """The best `k` search trials to retrain, best first, and None; or ([], one line saying why none).

    Candidates: complete trials that are not themselves retrained, within the study's limits, at or
    under its latency target (when it has one, whatever the reward's kind), one per architecture,
    ranked by the study's reward (ties: the earlier trial) — smoothed by `smoothed_scores` when the
    trials were scored by a supernet."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k={k!r}: expected the number of trials to retrain, a positive integer")
    reward = study.stored_reward()
    target = None if reward is None else reward.target_ms
    complete = [t for t in study.complete_trials if t.accuracy_source != STANDALONE]
    if not complete:
        return [], "no complete search trial to retrain"
    limits = study.limits
    pool = [t for t in complete if _within(limits, t)]
    if not pool:
        return [], f"no complete trial meets the study's limits ({limits}): nothing to retrain"
    if target is not None:
        under = [t for t in pool if t.latency_ms is not None and math.isfinite(t.latency_ms) and reward.feasible(t.latency_ms)]
        if not under:
            fastest = min(pool, key=lambda t: t.latency_ms if t.latency_ms is not None else math.inf)
            return [], (f"no complete trial meets the latency target of {target:.4g} ms (fastest: trial "
                        f"{fastest.number} at {fastest.latency_ms:.4g} ms): nothing to retrain")
        pool = under
    score = smoothed_scores(complete, pool)
    chosen, seen = [], set()
    for t in sorted(pool, key=lambda t: (-score[t.number], t.number)):
        if t.arch not in seen:
            seen.add(t.arch)
            chosen.append(t)
    return chosen[:k], None


def retrain_top(study: Study, data: Any, k: int, *, recipe: Any = None, epochs: int | None = None,
                mode: str = "scratch", supernet: Any = None, out: str | Path, resume: bool = True,
                log: Callable[[str], None] | None = None, seeds: int = 1) -> list[dict[str, Any]]:
    """Retrain the best `k` trials of `study` (see `retrain_candidates`) on `data` and record each as a
    standalone trial; return one dict per retrained trial, best first (the first is the final pick,
    the trial `study.best()` returns), each with "trial", "source_trial", "arch", "accuracy"
    (validation), "test_accuracy", "inherited_accuracy", "latency_ms", "reward", "mode", "epochs",
    "seconds", "model" (its model.pt) and "cached" (recorded by an earlier run).

    `mode`: "scratch" (default: the architecture's own accuracy, free of the supernet's sharing bias,
    which is what the final choice should rest on) or "finetune" (from the weights inherited from
    `supernet`: a path or a `mnas.oneshot.Supernet`; default the checkpoint the study was searched
    with). `recipe`: a `TrainConfig` or a recipe name (default `default_recipe(mode, epochs)`);
    `epochs` overrides its epochs. Each candidate trains with the study's seed for its architecture.
    `out`: a folder, one subfolder per training (`resume=False` refuses one that holds a training).
    `seeds`: trainings per candidate (module docstring); the results then also carry "seeds",
    "seed_accuracies" and "accuracy_se" (None for one seed).
    Returns [] (and logs one line saying why) when no trial meets the target or limits."""
    _check_mode(mode)
    n_seeds = _check_seeds(seeds)
    log = log or (lambda _: None)
    config = _config(recipe, epochs, mode)
    _check_data(study, data)
    candidates, why = retrain_candidates(study, k)
    if why:
        log(why)
        return []
    if len(candidates) < k:
        log(f"only {len(candidates)} trial(s) meet the target and limits: retraining {len(candidates)}, not {k}")
    net = _supernet(study, supernet) if mode == "finetune" else None
    out = Path(out)
    reward = study.stored_reward()
    seed = int((study.storage.get_meta("config") or {}).get("seed", 0))
    key = _recipe_key(config, mode)
    trial_key = key if n_seeds == 1 else f"{key}x{n_seeds}"  # a 3-seed result is not a 1-seed one
    results = []
    with WriterLease(study.storage, name="mnas retrain"):
        for rank, src in enumerate(candidates, 1):
            first = trial_seed(seed, src.arch)
            done = _recorded(study, src.number, trial_key)
            if done is not None:
                results.append(_summary(done, src, rank, cached=True))
                log(f"[{rank}/{len(candidates)}] trial {src.number}: recorded earlier as trial {done.number}")
                continue
            finals = []
            for i in range(n_seeds):
                cfg = config.replace(seed=first + i)
                folder = out / (f"trial-{src.number:04d}-{mode}-{key}" + (f"-seed{cfg.seed}" if i else ""))
                which = f", seed {i + 1} of {n_seeds}" if n_seeds > 1 else ""
                log(f"[{rank}/{len(candidates)}] trial {src.number} ({src.accuracy_source} {src.score_text()}, "
                    f"{src.latency_ms:.4g} ms): training {mode} for {cfg.epochs:g} epochs{which}"
                    f" -> {folder}")
                finals.append(_train(src, data, cfg, folder, net, resume, log))
            trial = _record(study, src, finals, config.replace(seed=first), mode, trial_key, reward)
            results.append(_summary(trial, src, rank, cached=False))
            spread = "" if n_seeds == 1 else f" +- {trial.extra['accuracy_se']:.4f} (mean of {n_seeds} seeds)"
            log(f"[{rank}/{len(candidates)}] trial {src.number}: standalone accuracy {trial.accuracy:.4f}{spread} "
                f"(inherited {src.score_text()}) -> trial {trial.number}")
    results.sort(key=lambda r: (-r["reward"], r["trial"]))
    return results


def retrain_reference(study: Study, data: Any, name: str, *, recipe: Any = None, epochs: int | None = None,
                      out: str | Path, resume: bool = True, log: Callable[[str], None] | None = None,
                      seeds: int = 1) -> dict[str, Any]:
    """Train the zoo network `name` (e.g. ``mnasnet_b1_x0.5``, the one a ``--target`` names) from scratch
    with the recipe `retrain_top` uses (same `recipe` and `epochs`), laid out as the study's candidates
    are (`mnas.space.zoo.for_space`: the space's strides), so the retrained pick can be compared with the
    hand-designed network on one footing. Its seed follows the same rule (`trial_seed` of the study's
    seed and the architecture). It is not a trial of the study (it is not in the space's token
    encoding, and it is not the search's answer); its result is stored in the study's metadata
    (``retrain_reference``) and returned: "name", "arch", "accuracy" (validation), "test_accuracy",
    "epochs", "seconds", "model", "cached". A rerun reads a finished training from `out`. `seeds`: as
    `retrain_top`'s (the same seed rule), the accuracies then the means, with "seeds", "seed_accuracies",
    "seed_test_accuracies" and "accuracy_se"."""
    from mnas.space import get_arch, is_zoo_name
    from mnas.space.zoo import for_space
    from mnas.train import train_full
    from mnas.train.full import CHECKPOINT, METRICS

    log = log or (lambda _: None)
    n_seeds = _check_seeds(seeds)
    if not isinstance(name, str) or not is_zoo_name(name):
        raise ValueError(f"reference {name!r}: expected a zoo model name such as mnasnet_b1_x0.5 (see 'mnas models')")
    config = _config(recipe, epochs, "scratch")
    _check_data(study, data)
    arch = for_space(get_arch(name), data.input_size, getattr(study.space, "strides", None))
    seed = int((study.storage.get_meta("config") or {}).get("seed", 0))
    first = trial_seed(seed, str(arch))
    finals, cached = [], True
    for i in range(n_seeds):
        cfg = config.replace(seed=first + i)
        folder = Path(out) / f"reference-{name}-seed{cfg.seed}-{_recipe_key(config, 'scratch')}"
        which = f" (seed {i + 1} of {n_seeds})" if n_seeds > 1 else ""
        if (folder / METRICS).is_file():
            final = json.loads((folder / METRICS).read_text())
            if final.get("arch") != str(arch):
                raise ValueError(f"{folder} holds the training of another network ({str(final.get('arch'))[:60]}):"
                                 " give another out=")
            if not resume:
                raise ValueError(f"{folder} already holds a finished training: pass resume=True, or another out=")
            log(f"reference {name}{which}: training finished earlier, reading {folder / METRICS}")
        else:
            cached = False
            started = (folder / CHECKPOINT).is_file()
            if started and not resume:
                raise ValueError(f"{folder} already holds a training checkpoint: pass resume=True, or another out=")
            log(f"reference {name}{which}: training scratch for {cfg.epochs:g} epochs -> {folder}")
            final = train_full(arch, data, cfg, folder, resume=started, log=log)
        finals.append(final)
    stats = _seed_stats(finals)
    best = finals[stats["best"]]
    result = {"name": name, "arch": str(arch), "accuracy": stats["accuracy"], "test_accuracy": stats["test_accuracy"],
              "epochs": best.get("epochs"), "seconds": sum(f.get("seconds") or 0.0 for f in finals),
              "model": best.get("model"), "seed": first, "seeds": [first + i for i in range(n_seeds)],
              "seed_accuracies": stats["seed_accuracies"], "seed_test_accuracies": stats["seed_test_accuracies"],
              "accuracy_se": stats["accuracy_se"], "cached": cached}
    with WriterLease(study.storage, name="mnas retrain"):
        study.storage.set_meta("retrain_reference", {k: v for k, v in result.items() if k != "cached"})
    return result


# -- pieces ---------------------------------------------------------------------------------------

def _config(recipe: Any, epochs: int | None, mode: str) -> Any:
    """The retraining's `TrainConfig`: `recipe` (a TrainConfig, a recipe name or None: `default_recipe`)
    with `epochs` when given."""
    from mnas.train import TrainConfig
    from mnas.train import recipe as named_recipe

    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1):
        raise ValueError(f"epochs={epochs!r}: expected a whole number of epochs >= 1")
    if recipe is None:
        return default_recipe(mode, epochs)
    if isinstance(recipe, str):
        return named_recipe(recipe, **({"epochs": epochs} if epochs else {}))
    if isinstance(recipe, TrainConfig):
        return recipe.replace(epochs=epochs) if epochs else recipe
    raise ValueError(f"recipe={recipe!r}: expected a mnas.train.TrainConfig or a recipe name (e.g. 'fast')")


def _check_seeds(seeds: Any) -> int:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds={seeds!r}: expected the number of trainings per network, a positive integer")
    return seeds


def _seed_stats(finals: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean validation (and test) accuracy over the seeds' results, its standard error (None for one),
    the per-seed figures, and the index of the best seed by validation accuracy (whose weights ship)."""
    accs = [_accuracy(f) for f in finals]
    tests = [f.get("test_accuracy") for f in finals]
    tests = [float(t) if t is not None and math.isfinite(t) else None for t in tests]
    n = len(accs)
    mean = sum(accs) / n
    se = None if n == 1 else math.sqrt(sum((a - mean) ** 2 for a in accs) / (n - 1) / n)
    test = None if any(t is None for t in tests) else sum(tests) / n
    best = max(range(n), key=lambda i: (accs[i], -i))
    return {"accuracy": mean, "accuracy_se": se, "test_accuracy": test, "seed_accuracies": accs,
            "seed_test_accuracies": tests, "best": best}


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected 'scratch' (train from scratch) or 'finetune' (from inherited weights)")


def _within(limits: Any, t: Trial) -> bool:
    """`Study.best`'s rule: the trial's known figures break none of the study's limits."""
    if not limits:
        return True
    metrics = {"params": t.params, "macs": t.macs, "latency_ms": t.latency_ms, "peak_memory": (t.extra or {}).get("peak_memory")}
    return limits.feasible({k: v for k, v in metrics.items() if v is not None}, partial=True)


def _check_data(study: Study, data: Any) -> None:
    """ValueError when `data` is plainly not the data the study was searched on (classes, size)."""
    searched = ((study.storage.get_meta("config") or {}).get("evaluator") or {}).get("data") or {}
    for name in ("num_classes", "input_size", "channels"):
        want, have = searched.get(name), getattr(data, name, None)
        if want is not None and have is not None and want != have:
            raise ValueError(f"the study was searched on data with {name}={want}, this data has {have}: "
                             "retrain on the search's data (the same --data, --val-fraction and --seed)")


def _recipe_key(config: Any, mode: str) -> str:
    """Short digest of what makes two retrainings the same (the seed is the architecture's)."""
    settings = {k: v for k, v in config.to_dict().items() if k not in ("threads", "device", "eval_batch_size", "seed")}
    return hashlib.sha256(json.dumps([mode, settings], sort_keys=True).encode()).hexdigest()[:8]


def _supernet(study: Study, supernet: Any) -> Any:
    """The supernet to inherit from: the given object or path, else the checkpoint the study used."""
    if supernet is not None and not isinstance(supernet, (str, Path)):
        return supernet
    config = study.storage.get_meta("config") or {}
    path = supernet or (config.get("evaluation") or {}).get("checkpoint")
    if not path:
        raise ValueError("mode='finetune' needs the supernet: pass supernet= (the study was not searched with a "
                         "supernet checkpoint it could name)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"supernet checkpoint not found: {path}")
    from mnas.oneshot.train import load_supernet
    from mnas.train.checkpoint import file_digest

    digest = (config.get("evaluator") or {}).get("supernet")
    if digest not in (None, "in-memory") and file_digest(path) != digest:
        raise ValueError(f"{path} is not the supernet this study was searched with (its contents changed): "
                         "fine-tune from that checkpoint, or retrain from scratch")
    return load_supernet(path)[0].eval()


def _recorded(study: Study, source: int, key: str) -> Trial | None:
    """The complete retrained trial of `source` with this recipe, completing one a kill left running."""
    for t in study.get_trials(("complete", "running")):
        extra = t.extra or {}
        if extra.get("accuracy_source") != STANDALONE or extra.get("retrained_from") != source or extra.get("recipe_key") != key:
            continue
        if t.state.value == "complete":
            return t
        files = extra.get("metrics_files") or [extra.get("metrics_file")]
        if all(f and Path(f).is_file() for f in files):  # killed between create and complete: finish it
            accuracy = _seed_stats([json.loads(Path(f).read_text()) for f in files])["accuracy"]
            reward = study.stored_reward()
            study.storage.complete_trial(t.number, accuracy, t.latency_ms, float(reward(accuracy, t.latency_ms)))
            return study.storage.get_trial(t.number)
        study.storage.fail_trial(t.number, "retraining interrupted before its result was stored")
    return None


def _train(src: Trial, data: Any, config: Any, folder: Path, net: Any, resume: bool,
           log: Callable[[str], None]) -> dict[str, Any]:
    from mnas.train import train_full
    from mnas.train.full import CHECKPOINT, METRICS

    metrics = folder / METRICS
    if metrics.is_file():
        if not resume:
            raise ValueError(f"{folder} already holds a finished retraining: pass resume=True, or another out=")
        log(f"  {folder}: training finished earlier, reading {METRICS}")
        return json.loads(metrics.read_text())
    started = (folder / CHECKPOINT).is_file()
    if started and not resume:
        raise ValueError(f"{folder} already holds a training checkpoint: pass resume=True, or another out=")
    if net is not None and not started:  # fine-tuning: train_full saves the inherited weights as epoch 0
        from mnas.space import as_arch

        return train_full(src.arch, data, config, folder, log=log, init=net.subnet(as_arch(src.arch)).state_dict())
    return train_full(src.arch, data, config, folder, resume=started, log=log)


def _accuracy(final: dict[str, Any]) -> float:
    """The validation accuracy (what inherited accuracy is measured on); the test accuracy without one."""
    value = final.get("val_accuracy")
    if value is None or not math.isfinite(value):
        value = final.get("test_accuracy")
    if value is None or not math.isfinite(value):
        raise ValueError("the retraining has neither a validation nor a test accuracy: load the data with val_fraction > 0")
    return float(value)


def _record(study: Study, src: Trial, finals: list[dict[str, Any]], config: Any, mode: str, key: str,
            reward: Any) -> Trial:
    """The retrained trial of `src` from its seeds' results (`finals`, the first at `config.seed`)."""
    from mnas.train.full import METRICS

    stats = _seed_stats(finals)
    accuracy = stats["accuracy"]
    best = finals[stats["best"]]
    files = [str(Path(f["model"]).parent / METRICS) for f in finals]
    extra = {"accuracy_source": STANDALONE, "retrained_from": src.number, "recipe_key": key, "mode": mode,
             "inherited_accuracy": src.top1, "inherited_source": src.accuracy_source,
             "accuracy_split": "val" if best.get("val_accuracy") is not None else "test",
             "test_accuracy": stats["test_accuracy"], "epochs": best.get("epochs"), "seed": config.seed,
             "recipe": config.to_dict(), "model": best["model"], "metrics_file": files[0]}
    if src.likelihood_scored:  # the search's score was the likelihood: kept beside top-1, named
        extra["inherited_likelihood"] = src.accuracy
    if len(finals) > 1:
        extra.update(seeds=[config.seed + i for i in range(len(finals))], seed_accuracies=stats["seed_accuracies"],
                     seed_test_accuracies=stats["seed_test_accuracies"], accuracy_se=stats["accuracy_se"],
                     metrics_files=files, model_seed=config.seed + stats["best"])
    seconds = sum(f.get("seconds") or 0.0 for f in finals) if any(f.get("seconds") for f in finals) else None
    number = study.storage.create_trial(src.tokens, src.arch, extra=extra, latency_ms=src.latency_ms,
                                        params=src.params, macs=src.macs, train_seconds=seconds)
    study.storage.complete_trial(number, accuracy, src.latency_ms, float(reward(accuracy, src.latency_ms)))
    return study.storage.get_trial(number)


def _summary(trial: Trial, src: Trial, rank: int, cached: bool) -> dict[str, Any]:
    extra = trial.extra or {}
    return {"trial": trial.number, "source_trial": src.number, "search_rank": rank, "arch": trial.arch,
            "accuracy": trial.accuracy, "test_accuracy": extra.get("test_accuracy"),
            "inherited_accuracy": extra.get("inherited_accuracy"), "inherited_source": extra.get("inherited_source"),
            "inherited_likelihood": extra.get("inherited_likelihood"),
            "latency_ms": trial.latency_ms, "reward": trial.reward, "mode": extra.get("mode"),
            "epochs": extra.get("epochs"), "seconds": trial.train_seconds, "model": extra.get("model"), "cached": cached,
            "seeds": extra.get("seeds", [extra.get("seed")]), "seed_accuracies": extra.get("seed_accuracies", [trial.accuracy]),
            "accuracy_se": extra.get("accuracy_se")}

