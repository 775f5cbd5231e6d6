"""Gradient-based searches (DARTS, GDAS, FBNet) run as a study: the derived architecture becomes a trial.

A differentiable search is not an ask/tell strategy — it trains one relaxed network and reads the
architecture off its weights — so, like `enas_study`, it does not go through `SearchStudy.optimize`.
`gradient_study` runs the search once and stores the derived architecture as one complete trial:

- ``accuracy_source`` is the strategy ("darts", "gdas", "fbnet"); the accuracy is the search's own
  validation figure of its last epoch (a running figure of the search network, not of the derived
  architecture trained alone: `mnas train` on the trial gives that);
- the latency is measured (or looked up) on the study's latency backend, as for any trial;
- ``extra`` holds ``derived=True``, the epoch it was derived at, and the search's seconds; for
  darts/gdas also how the search ended: ``stop_reason`` ("stable": its stopping rule, "param_free",
  "max_epochs": the cap, not converged), ``converged``, ``epochs_run``, ``cpu_seconds``, and the last
  epoch's ``entropy`` / ``entropy_max`` and ``unchanged_epochs`` (issue 22).

The per-epoch history (each architecture weight's softmax, the entropy, the derived architecture)
is stored in the study's metadata under ``"gradient_history"`` as it runs, so `mnas report` plots
the architecture weights over epochs, even for a search still running. The search checkpoints
after every epoch beside the study file (``<study>.<strategy>/``); running again on the same study
continues from there (`resume`), and a study whose search has finished is returned as it is.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, TextIO

from mnas.objectives import Reward

__all__ = ["CELL_STRATEGIES", "BLOCK_STRATEGIES", "GradientProgress", "checkpoint_dir", "gradient_labels",
           "gradient_study"]

CELL_STRATEGIES = ("darts", "gdas")  # on NB201Space / DartsSpace (mnas.oneshot.darts)
BLOCK_STRATEGIES = ("fbnet",)  # on MnasNetSpace / LayerwiseSpace (mnas.oneshot.fbnet)
HISTORY_KEY = "gradient_history"


def checkpoint_dir(storage: Any, strategy: str) -> Path | None:
    """Where the search checkpoints for a study in `storage`: ``<study file>.<strategy>/`` (None in memory)."""
    path = getattr(storage, "path", None) if not isinstance(storage, (str, Path)) else str(storage).removeprefix("sqlite:///")
    if not path or str(path) == ":memory:":
        return None
    return Path(f"{path}.{strategy}")


def _is_cell_space(space: Any) -> bool:
    from mnas.space import DartsSpace, NB201Space

    return isinstance(space, (NB201Space, DartsSpace))


def check_combination(strategy: str, space: Any, reward: Reward | None) -> None:
    """ValueError (one line, what to do) for a strategy that does not go with `space` or `reward`."""
    kind = type(space).__name__
    if strategy in CELL_STRATEGIES:
        if not _is_cell_space(space):
            raise ValueError(f"--strategy {strategy} searches cells: use --space nb201 or --space darts ({kind} is a block"
                             " space: use --strategy fbnet there)")
    elif strategy in BLOCK_STRATEGIES:
        if _is_cell_space(space):
            raise ValueError(f"--strategy {strategy} searches the block spaces: use --space mnasnet or --space layerwise"
                             f" ({kind} is a cell space: use --strategy darts or gdas there)")
        if reward is not None and reward.target_ms is None:
            raise ValueError(f"--strategy {strategy} is latency-aware: give a latency target (--target 5ms) and"
                             " --reward soft, hard or absolute")
    else:
        raise ValueError(f"strategy {strategy!r}: expected one of {', '.join(CELL_STRATEGIES + BLOCK_STRATEGIES)}")


def gradient_labels(space: Any) -> dict[str, dict[str, list[str]]]:
    """For each architecture-weight tensor of `space`'s relaxation: its rows' names (edges or
    decisions) and its columns' names (ops or choices), for plots and the console."""
    from mnas.space import DartsSpace, NB201Space

    if isinstance(space, NB201Space):
        from mnas.space.cells.nb201 import EDGES

        return {"alpha": {"rows": [f"{i}<-{j}" for i, j in EDGES], "choices": list(space.ops)}}
    if isinstance(space, DartsSpace):
        ops = list(space.ops) if "none" in space.ops else ["none", *space.ops]  # what mnas.oneshot.darts searches
        rows = [f"n{k + 2}<-{j}" for k in range(space.steps) for j in range(k + 2)]
        return {f"alpha_{cell}": {"rows": rows, "choices": ops} for cell in ("normal", "reduce")}
    return {}


class GradientProgress:
    """A `progress(record)` callback printing one line per search epoch to `file` (default stderr)::

        [epoch  3/30] darts  train 29.2%  val 26.0%  entropy 1.5200 of 1.6094  cell same 1/3  param-free 67%  0.6 min | |...

    The entropy is the mean over edges (decisions) of the architecture weights' softmax entropy; its
    maximum (uniform weights) is printed beside it, so a search that has not moved shows at once.
    "cell same 1/3" (a DARTS/GDAS search): the derived cell has not changed for 1 epoch, of the 3 its
    stopping rule waits for ("cell 2 changed": 2 of its edges changed since the previous epoch;
    "warm-up": the alphas are frozen). `stopped(result)` prints why the search ended."""

    def __init__(self, strategy: str, epochs: int | None = None, file: TextIO | None = None) -> None:
        self.strategy, self.epochs, self.file = strategy, epochs, file
        self.started = time.monotonic()

    def __call__(self, record: dict[str, Any]) -> None:
        import sys

        total = self.epochs or record.get("of_epochs")  # gradient_study adds the search's epoch count
        where = f"epoch {record.get('epoch', 0):>2}{f'/{total}' if total else ''}"
        if isinstance(record.get("round"), int):
            where += f", round {record['round']}"
        parts = [f"[{where}] {self.strategy}"]
        for key, label in (("train_acc", "train"), ("val_acc", "val")):
            if isinstance(record.get(key), (int, float)):
                parts.append(f"{label} {100 * record[key]:.1f}%")
        if isinstance(record.get("entropy"), (int, float)):
            top = record.get("entropy_max")  # the search's own (GDAS with sample_none=False: ln 4, not ln 5)
            top = top if isinstance(top, (int, float)) else max_entropy(record.get("softmax") or {})
            parts.append(f"entropy {record['entropy']:.4f}" + (f" of {top:.4f}" if top else ""))
        if record.get("warmup"):
            parts.append("warm-up")
        elif isinstance(record.get("changed"), int) and record["changed"]:
            parts.append(f"cell {record['changed']} changed")
        elif isinstance(record.get("unchanged_epochs"), int) and record.get("changed") == 0:
            wait = record.get("of_unchanged")
            parts.append(f"cell same {record['unchanged_epochs']}" + (f"/{wait}" if wait else ""))
        if isinstance(record.get("param_free"), (int, float)):
            parts.append(f"param-free {100 * record['param_free']:.0f}%")
        figures = [(key, record.get(key)) for key in ("expected_ms", "predicted_ms", "measured_ms", "target_ms")]
        names = {"expected_ms": "E[lat]", "predicted_ms": "table", "measured_ms": "measured", "target_ms": "target"}
        lat = [f"{names[k]} {v:.4g}" for k, v in figures if isinstance(v, (int, float)) and math.isfinite(v)]
        if lat:
            parts.append(" ".join(lat) + " ms")
        parts.append(f"{(time.monotonic() - self.started) / 60:.1f} min")
        print("  ".join(parts) + f" | {record.get('arch', '')}", file=self.file or sys.stderr, flush=True)

    def stopped(self, summary: dict[str, Any]) -> None:
        """One line on how a DARTS/GDAS search ended (`gradient_study` calls it with the trial's summary)."""
        import sys

        why = {"stable": "the derived cell is stable and decided",
               "param_free": "the parameter-free share passed stop_param_free (the cell of an earlier epoch is kept)",
               "max_epochs": "at its epoch cap, NOT converged"}.get(summary.get("stop_reason"), summary.get("stop_reason"))
        line = f"[{self.strategy}] stopped after {summary.get('epochs_run')} epochs: {why}"
        if isinstance(summary.get("entropy"), (int, float)) and isinstance(summary.get("entropy_max"), (int, float)):
            line += f"; entropy {summary['entropy']:.4f} of {summary['entropy_max']:.4f}"
        if isinstance(summary.get("unchanged_epochs"), int):
            line += f"; cell unchanged for {summary['unchanged_epochs']} epochs"
        print(line, file=self.file or sys.stderr, flush=True)


def max_entropy(softmax: dict[str, list[list[float]]]) -> float | None:
    """The mean entropy of uniform weights over the same rows (ln of each row's length, averaged)."""
    sizes = [len(row) for rows in softmax.values() for row in rows if row]
    return sum(math.log(n) for n in sizes) / len(sizes) if sizes else None


def _derived_record(history: list[dict[str, Any]], arch: str) -> dict[str, Any]:
    """The last epoch whose derived architecture is `arch` (an early stop returns an earlier one)."""
    for record in reversed(history):
        if record.get("arch") == arch:
            return record
    return history[-1] if history else {}


def _cell_config(strategy: str, options: dict[str, Any], seed: int) -> tuple[Any, dict[str, Any]]:
    """The `DartsConfig` of `options` (``recipe="paper"`` starts from DARTS's recipe) and its stored form."""
    from dataclasses import replace

    from mnas.oneshot.darts import DartsConfig

    # "None" on the command line (--strategy-opt stop_unchanged=None) is JSON's null
    options = {k: None if v in ("None", "none") else v for k, v in options.items()}
    recipe = options.pop("recipe", "cpu")
    if recipe not in ("cpu", "paper"):
        raise ValueError(f"recipe={recipe!r}: expected 'cpu' (the default) or 'paper' (DARTS's recipe)")
    fixed = {**options, "strategy": strategy, "seed": seed}
    try:
        config = DartsConfig.paper(**fixed) if recipe == "paper" else replace(DartsConfig(), **fixed)
    except TypeError as exc:
        raise ValueError(f"{strategy}: {exc} (options are DartsConfig fields: epochs, order, train_images, channels, "
                         "a_lr, stop_param_free, ...; or recipe=paper)") from None
    return config, {**config.to_dict(), "recipe": recipe}


def _resumed_options(options: dict[str, Any], stored: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """A resumed study keeps the options it was made with, including the defaults of its day: the
    given `options` are laid over the stored ones (a given one that differs is refused later)."""
    if not stored or stored.get("seed") != seed:
        return options
    kept = {k: v for k, v in stored.items() if k not in ("strategy", "seed")}
    return {**kept, **options}


def _cell_search(space: Any, data: Any, config: Any, out: Path | None, resume: bool,
                 progress: Any) -> tuple[Any, list[dict[str, Any]], bool, float, dict[str, Any]]:
    """The search's derived cell, history, early stop, seconds, and how it ended (for the trial's extra)."""
    from mnas.oneshot.darts import search_darts

    result = search_darts(space, data, config, out=out, resume=resume, progress=progress)
    last = result.history[-1] if result.history else {}
    ended = {"stop_reason": result.stop_reason, "converged": result.converged, "epochs_run": len(result.history),
             "cpu_seconds": float(result.cpu_seconds),
             **{k: last[k] for k in ("entropy", "entropy_max", "unchanged_epochs") if k in last}}
    return result.arch, result.history, result.stopped_early, result.seconds, ended


def gradient_study(space: Any, data: Any, reward: Reward, latency: Any, *, strategy: str = "darts",
                   options: dict[str, Any] | None = None, storage: Any = None, seed: int = 0,
                   supernet: Any = None, table: Any = None, checkpoint: str | Path | None = None,
                   progress: Any = None) -> Any:
    """Run the gradient search `strategy` on `space` and return the study holding its derived
    architecture as one complete trial (see the module docstring). `options` are the search's config
    fields (`mnas.oneshot.darts.DartsConfig` for darts/gdas, ``recipe="paper"`` for DARTS's recipe;
    `mnas.oneshot.fbnet.FBNetConfig` for fbnet). `latency` (a `mnas.latency` backend) measures the
    derived architecture. fbnet also takes `table`, the target device's `LookupTable` for the space
    (its expected-latency term), and `supernet` (a `mnas supernet train` checkpoint or a `Supernet`,
    fine-tuned; None: a fresh one); its target is `reward.target_ms`. A study in `storage` made by
    the same search and options continues it from `checkpoint` (default ``<study>.<strategy>/``); a
    finished one is returned as it is; one made otherwise (another strategy, other options, trials of
    an ask/tell search) is refused (ValueError)."""
    from mnas.loop.api import create_study
    from mnas.loop.lease import WriterLease

    check_combination(strategy, space, reward)
    if latency is None:
        raise ValueError(f"{strategy}: pass latency= (a mnas.latency backend): the derived trial needs its latency")
    if strategy in CELL_STRATEGIES:
        config, config_dict = _cell_config(strategy, options or {}, seed)  # checked before a study file is made
    else:
        if table is None:
            raise ValueError("fbnet: pass table= (a mnas.latency.LookupTable of the target device for this space:"
                             " mnas latency build-lut)")
        config, config_dict = _block_config(strategy, options or {}, seed, fresh=supernet is None)
    study = create_study(storage, space=space, reward=reward, seed=seed, load_if_exists=True)
    stored = dict(study.storage.get_meta("config") or {})
    out = Path(checkpoint) if checkpoint is not None else checkpoint_dir(study.storage, strategy)
    resuming = "strategy" in stored
    if resuming and stored["strategy"] != strategy:
        raise ValueError(f"{study.storage!r} holds a {stored['strategy']} study: use a new storage for --strategy {strategy}")
    stored_options = stored.get("strategy_options") or {}
    if strategy in CELL_STRATEGIES:
        from mnas.oneshot.darts import LEGACY_FIELDS

        if stored_options:
            stored_options = {**LEGACY_FIELDS, **stored_options}  # stored before those fields existed: they were off
        if resuming:  # it keeps the options it was made with, the defaults of its day included
            config, config_dict = _cell_config(strategy, _resumed_options(options or {}, stored_options, seed), seed)
    if resuming and stored_options != config_dict:
        changed = sorted(k for k in set(config_dict) | set(stored_options)
                         if stored_options.get(k) != config_dict.get(k))
        raise ValueError(f"{study.storage!r} was searched with other options ({', '.join(changed)} differ): repeat the"
                         " first run's --strategy-opt, or use a new storage")
    if not resuming and study.storage.count_trials():
        raise ValueError(f"{study.storage!r} already holds trials: a {strategy} search stores its result in a new study")
    if any((t.extra or {}).get("derived") for t in study.complete_trials):
        return study  # the search finished and its result is stored: nothing left to do
    labels = gradient_labels(space) or _block_labels(space)
    history: list[dict[str, Any]] = list((study.storage.get_meta(HISTORY_KEY) or {}).get("epochs") or [])

    def on_epoch(record: dict[str, Any]) -> None:
        nonlocal history
        history = [r for r in history if r.get("epoch", 0) < record.get("epoch", 0)] + [_as_rows(record, strategy)]
        study.storage.set_meta(HISTORY_KEY, {"strategy": strategy, "labels": labels, "epochs": history})
        if progress is not None:
            total = config.epochs if strategy in CELL_STRATEGIES else None  # fbnet adds correction rounds as needed
            wait = getattr(config, "stop_unchanged", None) if strategy in CELL_STRATEGIES else None
            progress({**_as_rows(record, strategy), "of_epochs": total, "of_unchanged": wait})

    describe = getattr(latency, "describe", None)
    config_meta = {**stored, "strategy": strategy, "strategy_options": config_dict, "accuracy_source": strategy,
                   "evaluator": {"kind": strategy, "checkpoint": str(out) if out else None},
                   "evaluation": {"kind": strategy, "accuracy_source": strategy,
                                  "latency": describe() if describe else None,
                                  "data": {"num_classes": data.num_classes, "input_size": data.input_size,
                                           "channels": data.channels, "name": getattr(data, "name", None)}}}
    with WriterLease(study.storage, name=f"mnas search ({strategy})"):
        study.storage.set_meta("config", config_meta)  # before the first epoch: an interrupted search is resumable
        summary: dict[str, Any] = {}
        measured = None
        ended: dict[str, Any] = {}
        if strategy in CELL_STRATEGIES:
            arch, history, stopped, seconds, ended = _cell_search(space, data, config, out, resuming, on_epoch)
            if callable(getattr(progress, "stopped", None)):
                progress.stopped(ended)
        else:
            arch, result = _block_search(space, data, config, out, resuming, on_epoch, latency, reward, supernet, table)
            history, stopped, seconds = [_as_rows(r, strategy) for r in result.history], False, result.seconds
            measured = result.measured_ms  # measured on `latency` by the search's closed loop: not measured twice
            summary = {"measured_ms": result.measured_ms, "predicted_ms": result.predicted_ms,
                       "expected_ms": result.expected_ms, "target_ms": result.target_ms,
                       "table_target_ms": result.table_target_ms, "rounds": result.rounds,
                       "within_tolerance": result.within_tolerance, "rounds_log": result.rounds_log}
        study.storage.set_meta(HISTORY_KEY, {"strategy": strategy, "labels": labels, "epochs": history,
                                             **({"result": summary} if summary else {})})
        record = _derived_record(history, str(arch))
        trial_extra = {"accuracy_source": strategy, "derived": True, "epoch": record.get("epoch"),
                       "stopped_early": bool(stopped), "search_seconds": float(seconds),
                       **{k: record[k] for k in ("param_free",) if k in record}, **ended,
                       **{k: v for k, v in summary.items() if k != "rounds_log"}}
        _store(study, space, data, arch, float(record.get("val_acc", 0.0)), latency, reward, trial_extra, seconds,
               measured)
    return study


def _block_config(strategy: str, options: dict[str, Any], seed: int, fresh: bool) -> tuple[Any, dict[str, Any]]:
    """The `FBNetConfig` of `options`; a fresh supernet (no checkpoint) gets one uniform warm-up epoch
    unless `warmup_epochs` is given (the logits of an untrained supernet would only learn noise)."""
    from mnas.oneshot.fbnet import FBNetConfig

    fields = {**({"warmup_epochs": 1} if fresh else {}), **options, "seed": seed}
    config = FBNetConfig.from_dict(fields)
    return config, config.to_dict()


def _block_search(space: Any, data: Any, config: Any, out: Path | None, resume: bool, progress: Any, latency: Any,
                  reward: Reward, supernet: Any, table: Any) -> tuple[Any, Any]:
    from mnas.oneshot.fbnet import search_fbnet

    result = search_fbnet(supernet if supernet is not None else space, data, float(reward.target_ms), table, config,
                          measure=latency, out=out, resume=resume, progress=progress)
    return result.arch, result


def _block_labels(space: Any) -> dict[str, dict[str, Any]]:
    names = [d.name for d in space.decisions]
    per_block = sum(n.split("_")[0] == names[0].split("_")[0] for n in names)  # MnasNet: 6 decisions per block
    return {"decisions": {"rows": names, "choices_per_row": [[str(c) for c in d.choices] for d in space.decisions],
                          "cols": per_block if 1 < per_block <= 8 else 7}}


def _as_rows(record: dict[str, Any], strategy: str) -> dict[str, Any]:
    """fbnet's records hold {decision: probs}; the study stores every strategy's as {tensor: rows}."""
    soft = record.get("softmax")
    if strategy not in BLOCK_STRATEGIES or not isinstance(soft, dict) or "decisions" in soft:
        return record
    return {**record, "softmax": {"decisions": [list(v) for v in soft.values()]}}


def _store(study: Any, space: Any, data: Any, arch: Any, accuracy: float, latency: Any, reward: Reward,
           extra: dict[str, Any], seconds: float, latency_ms: float | None = None) -> int:
    """The derived architecture as a complete trial, with its latency (measured here unless given),
    reward, params and MACs."""
    from mnas.models import build_model, count_macs, count_params

    size = getattr(space, "input_size", None) or data.input_size
    started = time.perf_counter()
    if latency_ms is None or not math.isfinite(latency_ms):
        latency_ms = float(latency.measure(arch, size, data.num_classes, in_chans=data.channels).median_ms)
    latency_s = time.perf_counter() - started
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    params, macs = count_params(model), count_macs(model, size, data.channels)
    if not math.isfinite(accuracy):  # an epoch without logit steps (a warm-up) has no validation figure
        extra = {**extra, "accuracy_missing": True}
        accuracy = 0.0
    accuracy = min(1.0, max(0.0, accuracy))
    number = study.storage.create_trial(space.encode(arch), str(arch))
    study.storage.complete_trial(number, accuracy, latency_ms, float(reward(accuracy, latency_ms)), params=int(params),
                                 macs=int(macs), train_seconds=float(seconds), latency_seconds=latency_s, extra=extra)
    return number
