"""What every training that checkpoints after each epoch shares (`train_full`, `train_instance`):
the two refusals at its start, the check that a checkpoint belongs to the run that resumes it, a
`Loop`'s optimiser/schedule state, and the per-epoch bookkeeping (history, seconds, the atomic
checkpoint, `stop_after`)::

    path = checkpoint_path(out, resume, what="a training checkpoint")
    run = EpochRun(path, total=epochs, stop_after=stop_after)
    if resume:
        state = load_file(path)
        check_same_run(state, path, format="mnas.checkpoint/1", what="training", data=data_identity(data),
                       config=config.to_dict(), free={"threads"})
        restore_loop(loop, state)
        run.resume(state["epoch"], state)
    for epoch in run.epochs():
        timer = Timer()
        metrics = ...                                   # one epoch
        run.end_epoch(epoch, metrics, timer(), lambda done: {..., **loop_state(loop), "epoch": done,
                                                             "history": run.history, "seconds": run.seconds})
        if (stopped := run.stopped(epoch)) is not None:
            return stopped
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mnas.train.checkpoint import atomic_save

__all__ = ["EpochRun", "check_same_run", "checkpoint_path", "loop_state", "restore_loop"]


def checkpoint_path(out: str | Path, resume: bool, *, name: str = "checkpoint.pt",
                    what: str = "a training checkpoint") -> Path:
    """``out/name``, after refusing a new run over an existing checkpoint and a resume without one."""
    out = Path(out)
    path = out / name
    if path.exists() and not resume:
        raise ValueError(f"{out} already holds {what}: resume it (--resume) or choose another output directory")
    if resume and not path.exists():
        raise FileNotFoundError(f"nothing to resume: no {name} in {out}")
    return path


def check_same_run(state: Mapping[str, Any], path: Path, *, format: str, what: str, data: Mapping[str, Any],
                   config: Mapping[str, Any], free: Iterable[str] = (), arch: str | None = None) -> None:
    """ValueError, one line, unless `state` is a `format` checkpoint of this architecture, data and
    config (settings in `free` may differ: they do not change the result)."""
    if state.get("format") != format:
        raise ValueError(f"{path}: not a mnas {what} checkpoint")
    if arch is not None and state["arch"] != arch:
        raise ValueError(f"{path} was trained with a different architecture ({state['arch'][:80]}...): pass the same"
                         " ARCH (and stride adaptation) to resume")
    if state["data"] != data:
        raise ValueError(f"{path} was trained on different data ({state['data']['name']}, {state['data']['train']}"
                         " training images): pass the same --data, --val-fraction and --seed to resume")
    saved, free = state["config"], set(free)
    diff = sorted(k for k in config if k not in free and saved.get(k) != config[k])
    if diff:
        k = diff[0]
        raise ValueError(f"{path} was trained with {k}={saved.get(k)!r}, now {k}={config[k]!r}: resume with the"
                         " checkpoint's settings, or start a new run in another directory")


def loop_state(loop: Any) -> dict[str, Any]:
    """A `mnas.train.Loop`'s optimiser, schedule and step count (the model is the caller's)."""
    return {"optimizer": loop.optimizer.state_dict(), "schedule": loop.schedule.state_dict(), "step": loop.step}


def restore_loop(loop: Any, state: Mapping[str, Any]) -> None:
    """Undo `loop_state` (and the EMA, when the loop keeps one, from ``state["ema"]``)."""
    loop.optimizer.load_state_dict(state["optimizer"])
    loop.schedule.load_state_dict(state["schedule"])
    if loop.ema is not None:
        loop.ema.load_state_dict(state["ema"])
    loop.step = state["step"]


class EpochRun:
    """Where a resumable run stands — epochs done when this call started (`start`), the per-epoch
    `history`, training `seconds` so far — and what ends each epoch: the seconds, the history, the
    checkpoint written atomically, and the `stop_after` rule."""

    def __init__(self, path: Path, total: int, stop_after: int | None = None) -> None:
        self.path, self.total, self.stop_after = Path(path), int(total), stop_after
        self.start, self.history, self.seconds = 0, [], 0.0

    def resume(self, done: int, state: Mapping[str, Any]) -> None:
        self.start, self.history, self.seconds = int(done), list(state["history"]), float(state["seconds"])

    def epochs(self) -> range:
        return range(self.start, self.total)

    def end_epoch(self, epoch: int, metrics: dict[str, Any], elapsed: float,
                  state: Callable[[int], dict[str, Any]]) -> None:
        """Record epoch `epoch` (0-based) that took `elapsed` seconds, then save `state(epoch + 1)`."""
        self.seconds += elapsed
        metrics["seconds"] = self.seconds
        self.history.append(metrics)
        atomic_save(state(epoch + 1), self.path)

    def stopped(self, epoch: int) -> dict[str, Any] | None:
        """The result of a call that `stop_after` ends after epoch `epoch`, else None."""
        if self.stop_after is not None and epoch + 1 - self.start >= self.stop_after and epoch + 1 < self.total:
            return {"stopped": True, "epoch": epoch + 1, "epochs": self.total, "checkpoint": str(self.path),
                    "history": self.history}
        return None
