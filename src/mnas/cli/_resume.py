"""Resuming from the command line: a run knows how it was made.

`--resume` with nothing but the run's file (`mnas search --resume --storage F`, `mnas supernet train
--resume --out F`, `mnas train --resume --out DIR`, `mnas instance train --resume --out DIR`) takes
every setting from what the run stored. A flag the user gives anyway is checked against the stored
value: a setting that makes results comparable (data, space, evaluator, target, reward, seed,
strategy) refuses a different value with one line naming the flag, the stored and the given value;
a setting that only says how this run goes (more trials or hours, workers, threads) applies.

`track_given(parser)` makes a parser record which options were given on the command line (argparse
alone cannot tell a default from a value typed equal to it); `restore(args, stored, ...)` fills
what was not given from `stored` and checks what was.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mnas.cli._common import CHOICE_NAMES, UsageError

__all__ = ["INHERITED_SCORES", "UNKNOWN", "SearchResume", "check_supernet_space", "given_options", "instance_resume",
           "keep_source", "new_study_record", "restore", "resume_command", "search_resume", "space_mismatch", "supernet_resume",
           "track_given", "train_resume", "write_supernet_sidecar"]

UNKNOWN = object()  # a setting the run did not store (an older run): a given value is taken as is
DATA_KEYWORDS = ("digits", "cifar10", "cifar100")
RECORD_KEY = "cli"  # the study metadata holding the command line that made it
RECORD_VERSION = 1


# -- which options were given ----------------------------------------------------------------------
def track_given(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make `parser` record in the namespace which of its options appear on the command line
    (`given_options(args)`), and each option's flag by its dest (for messages)."""
    flags: dict[str, str] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of a parser's actions
        if not action.option_strings or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):  # noqa: SLF001
            continue
        long = [o for o in action.option_strings if o.startswith("--")]
        flags.setdefault(action.dest, (long or action.option_strings)[0])
        action.__class__ = _recording(type(action))
    parser.set_defaults(_flags=flags)
    return parser


@functools.cache
def _recording(cls: type) -> type:
    def __call__(self, parser, namespace, values, option_string=None):  # noqa: N807
        given = getattr(namespace, "_given", None)
        if given is None:
            given = set()
            namespace._given = given
        given.add(self.dest)
        return cls.__call__(self, parser, namespace, values, option_string)

    return type(cls.__name__, (cls,), {"__call__": __call__, "__module__": cls.__module__})


def given_options(args: argparse.Namespace) -> set[str]:
    """The dests of the options given on the command line (needs `track_given` on the parser)."""
    return set(getattr(args, "_given", ()) or ())


def flag(args: argparse.Namespace, dest: str) -> str:
    return (getattr(args, "_flags", None) or {}).get(dest, f"--{dest.replace('_', '-')}")


# -- comparing and refusing ------------------------------------------------------------------------
def show(value: Any) -> str:
    """A stored or given value as the user would type it."""
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(show(v) for v in value)
    return str(value)


def same(a: Any, b: Any) -> bool:
    """Equal values, numbers compared as numbers (3 == 3.0, 0.1 + 0.2 == 0.3)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b) if {type(a), type(b)} <= {bool, type(None)} else a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def refusal(option: str, given: Any, stored: Any, where: str, hint: str) -> UsageError:
    """'--epochs 1: runs/s.db was made with --epochs 0.2; drop --epochs to resume it, or ...'."""
    typed = option if isinstance(given, bool) or given is None else f"{option} {show(given)}"
    if stored is None or stored is False:
        made = f"without {option}"
    elif stored is True:
        made = f"with {option}"
    else:
        made = f"with {option} {show(stored)}"
    return UsageError(f"{typed}: {where} was made {made}; drop {option} to resume it{hint}")


def restore(args: argparse.Namespace, stored: Mapping[str, Any], *, where: str, hint: str = "",
            safe: Iterable[str] = (), equal: Mapping[str, Callable[[Any, Any], bool]] | None = None,
            keep: Iterable[str] = ()) -> None:
    """Set every option of `stored` (dest -> value) that was not given; check every one that was:
    a `safe` one applies, an equal one (by `equal[dest]`, default `same`) is fine, any other is a
    `UsageError` naming the option, its stored and its given value. Options in `keep` are checked
    but not filled (the caller takes the stored setting another way); UNKNOWN values are neither."""
    given, safe, keep, equal = given_options(args), set(safe), set(keep), dict(equal or {})
    for dest, value in stored.items():
        if value is UNKNOWN:
            continue
        if dest not in given:
            if dest not in keep:
                setattr(args, dest, value)
            continue
        mine = getattr(args, dest, None)
        if dest in safe or equal.get(dest, same)(value, mine):
            continue
        raise refusal(flag(args, dest), mine, value, where, hint)


def resolve(path: str, cwd: str | None = None) -> Path:
    """`path` as an absolute path, relative to `cwd` (default: this process's)."""
    p = Path(path).expanduser()
    return (Path(cwd) / p if cwd and not p.is_absolute() else p).resolve()


def is_keyword(data: Any) -> bool:
    return isinstance(data, str) and data.strip().lower() in DATA_KEYWORDS


def same_path(cwd: str | None) -> Callable[[Any, Any], bool]:
    """Equality of a stored path (relative to the run's `cwd`) and a given one (relative to here);
    the data keywords compare as words. A stored file that is gone accepts any given path (moved)."""

    def check(stored: Any, given: Any) -> bool:
        if stored is None or given is None:
            return stored is None and given is None
        if is_keyword(stored) or is_keyword(given):
            return str(stored).strip().lower() == str(given).strip().lower()
        old = resolve(str(stored), cwd)
        return old == resolve(str(given)) or not old.exists()

    return check


def here(path: Any, cwd: str | None) -> Any:
    """A stored path as this process reaches it: as stored when the run started here, else absolute."""
    if path is None or is_keyword(path) or not cwd or os.path.realpath(cwd) == os.path.realpath(os.getcwd()):
        return path
    return str(resolve(str(path), cwd))


def space_mismatch(stored: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """The differences of two space identities ({"class", "settings"}): [(setting, stored, new)]."""
    old_cls, new_cls = str(stored.get("class", "")).rpartition(".")[2], str(new.get("class", "")).rpartition(".")[2]
    if old_cls != new_cls:
        return [("space", old_cls, new_cls)]
    a, b = stored.get("settings") or {}, new.get("settings") or {}
    return [(key, a.get(key), b.get(key)) for key in sorted(set(a) | set(b))
            if not same(_listed(a.get(key)), _listed(b.get(key)))]


def _listed(value: Any) -> Any:
    return [_listed(v) for v in value] if isinstance(value, (list, tuple)) else value


# Where each space option lands in a space's settings (its constructor's keywords).
SPACE_SETTING = {"width_mult": "width_mult", "head": "head_chs", "strides": "strides", "input_size": "input_size",
                 "cell_channels": "channels", "cells_per_stage": "cells_per_stage", "cell_layers": "layers",
                 **{name: name for name in CHOICE_NAMES}}
SPACE_OPTIONS = ("space", "skeleton", *SPACE_SETTING)  # --skeleton: several settings (stages, stem, head, act)


def space_refusal(args: argparse.Namespace, stored: Mapping[str, Any], new: Mapping[str, Any], where: str,
                  hint: str, options: Iterable[str] = SPACE_OPTIONS) -> UsageError | None:
    """None when `new` is the stored space; else one line naming the given space option at fault."""
    diffs = space_mismatch(stored, new)
    if not diffs:
        return None
    given = [d for d in options if d in given_options(args)]
    for dest in given:
        for key, old, _ in diffs:
            if (dest == "space" and key == "space") or SPACE_SETTING.get(dest) == key:
                return refusal(flag(args, dest), getattr(args, dest), _kind(old) if key == "space" else old, where,
                               hint)
    key, old, now = diffs[0]
    typed = ", ".join(f"{flag(args, d)} {show(getattr(args, d))}" for d in given) or "the space options"
    return UsageError(f"{typed}: {where} was made with a space whose {key} is {show(old)}, not {show(now)};"
                      f" drop {'them' if len(given) > 1 else 'it'} to resume it{hint}")


_KINDS = {"MnasNetSpace": "mnasnet", "LayerwiseSpace": "layerwise", "NB201Space": "nb201", "DartsSpace": "darts"}


def _kind(class_name: Any) -> str:
    return _KINDS.get(str(class_name).rpartition(".")[2], str(class_name).rpartition(".")[2])


# -- mnas search -------------------------------------------------------------------------------------
SEARCH_SAFE = ("threads", "executor", "workers", "ray_address", "retrain_top", "retrain_epochs", "retrain_mode",
               "retrain_out", "retrain_reference", "retrain_seeds")
SEARCH_PATHS = ("data", "data_root", "supernet", "lut")
# What `mnas search` records of its command line (paths as typed, with the directory they were typed
# in). The budget is the study's own (`config["budget"]`), the token is never stored.
SEARCH_RECORDED = ("data", "data_root", "val_fraction", *SPACE_OPTIONS, "supernet", "target", "reward", "alpha", "beta",
                   "max_params", "max_macs", "max_peak_memory", "strategy", "strategy_opt", "seed", "epochs",
                   "batch_size", "lr", "max_train_seconds", "backend", "latency_threads", "url", "lut", "precision",
                   "score", "calibration", "inherited_score", *SEARCH_SAFE)
INHERITED_SCORES = ("accuracy", "likelihood")  # mnas.evaluate.supernet.METRICS (kept apart: the CLI imports lazily)
DEPLOYMENT = ("precision", "score", "calibration")  # recorded since issue 20: an older record lacks them
SEARCH_HINT = ", or give a new --storage for a new study"


@dataclass
class SearchResume:
    """What a study stored about how it was made, for `mnas search` to resume it."""

    storage: str
    config: dict[str, Any]
    settings: dict[str, Any]  # option dest -> stored value (UNKNOWN: not stored)
    cwd: str | None = None
    recorded: bool = False  # the command line was stored (False: an older study, settings read from its config)
    space: Any = None  # the study's space, rebuilt (None: not rebuildable)
    space_given: list[str] = field(default_factory=list)

    @property
    def budget(self) -> dict[str, Any]:
        return dict(self.config.get("budget") or {})

    def check_space(self, args: argparse.Namespace, space: Any) -> None:
        """A space built from given space options must be the study's (one line otherwise)."""
        from mnas.loop.api import space_identity

        stored = self.config.get("space") or {}
        error = space_refusal(args, stored, space_identity(space), self.storage, SEARCH_HINT)
        if error is not None:
            raise error


def _read(storage: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    from mnas.study import SQLiteStorage

    with SQLiteStorage(Path(storage.removeprefix("sqlite:///")), read_only=True) as existing:
        config, record = existing.get_meta("config"), existing.get_meta(RECORD_KEY)
    return dict(config or {}), record if isinstance(record, dict) and record.get("command") == "search" else None


def search_resume(args: argparse.Namespace, storage: str) -> SearchResume:
    """Fill `args` from the study in `storage` and check the options given against it (one line)."""
    config, record = _read(storage)
    if record is not None:
        stored = {k: v for k, v in (record.get("args") or {}).items() if k in SEARCH_RECORDED}
        older = [k for k in DEPLOYMENT if k not in stored]  # recorded before they existed: the config says
        stored = {k: stored.get(k) for k in SEARCH_RECORDED}  # a setting added since: stored as its default
        stored.update({k: v for k, v in _deployment_from_config(config).items() if k in older})
        cwd = record.get("cwd")
    else:
        stored, cwd = _search_settings_from_config(config), None
    if stored.get("space") is None and not stored.get("supernet"):
        stored["space"] = "mnasnet"  # the default, named
    if stored.get("inherited_score") is None and stored.get("supernet"):
        stored["inherited_score"] = "accuracy"  # a supernet study made before --inherited-score scored top-1
    score = stored.get("inherited_score")
    if score not in (None, UNKNOWN, *INHERITED_SCORES):  # a record edited by hand
        raise UsageError(f"--resume: {storage} records --inherited-score {score!r}, which is not a score: expected"
                         f" {' or '.join(INHERITED_SCORES)}; correct the study's record{SEARCH_HINT}")
    resume = SearchResume(storage, config, dict(stored), cwd, record is not None)  # paths as recorded
    where = storage
    given = given_options(args)
    if ("inherited_score" in given and "supernet" not in given and not stored.get("supernet")
            and (args.inherited_score or "accuracy") != "accuracy"):  # top-1 agrees: proxy training scores it
        option = flag(args, "inherited_score")
        raise UsageError(f"{option} {args.inherited_score}: {where} was made without {flag(args, 'supernet')} (an"
                         f" inherited score applies only to supernet searches); drop {option} to resume it{SEARCH_HINT}")
    equal: dict[str, Callable[[Any, Any], bool]] = {d: same_path(cwd) for d in SEARCH_PATHS}
    equal["strategy_opt"] = _same_options(config, where)
    equal["target"] = _same_target(config)
    equal["inherited_score"] = lambda old, new: (old or "accuracy") == (new or "accuracy")  # a default typed out
    for name in ("max_params", "max_macs", "max_peak_memory"):
        equal[name] = _same_limit(config, name)
    # the reward, its target and the limits are the study's (SearchStudy keeps them): checked, not filled
    keep = {"target", "max_params", "max_macs", "max_peak_memory"}
    for dest in SEARCH_PATHS:
        if dest not in given and stored.get(dest) not in (None, UNKNOWN):
            if dest == "data" and is_keyword(stored[dest]):
                continue
            path = resolve(str(stored[dest]), cwd)
            if not path.exists():
                raise UsageError(f"--resume: {where} was made with {flag(args, dest)} {stored[dest]}, which is not there"
                                 f" any more ({path}): give {flag(args, dest)} where it is now")
            stored[dest] = here(stored[dest], cwd)
    if "target" in given and stored.get("target") is UNKNOWN:
        stored["target"] = _target_text(config)
    for name in ("max_params", "max_macs", "max_peak_memory"):
        if name in given and stored.get(name) is UNKNOWN:
            stored[name] = (config.get("constraints") or {}).get(name)
    space_given = [d for d in SPACE_OPTIONS if d in given]
    equal["space"] = lambda old, new: (old or "mnasnet") == (new or "mnasnet")  # checked first: the kind
    deferred = set(SPACE_OPTIONS) - {"space"}  # checked on the space they build (a default typed out agrees)
    restore(args, {k: v for k, v in stored.items() if k not in deferred or k not in given}, where=where,
            hint=SEARCH_HINT, safe=SEARCH_SAFE, equal=equal, keep=keep)
    if "strategy_opt" in given and stored.get("strategy_opt") not in (None, UNKNOWN):
        mine = {item.partition("=")[0] for item in args.strategy_opt}
        args.strategy_opt = [i for i in stored["strategy_opt"] if i.partition("=")[0] not in mine] + args.strategy_opt
    if stored.get("data") is UNKNOWN and "data" not in given:
        data = ((config.get("evaluator") or {}).get("data") or (config.get("evaluation") or {}).get("data") or {})
        name = data.get("name")
        if name != "digits":
            raise UsageError(f"--resume: {where} was made by an older mnas that did not store its --data ({name},"
                             f" {data.get('num_classes')} classes, {data.get('input_size')} px): give --data")
        args.data = "digits"
    if record is None and space_given:  # the given ones change the study's space, not mnas search's defaults
        for dest, value in _space_options_from_config(config).items():
            if dest not in given:
                setattr(args, dest, value)
    resume.space_given = space_given
    if not space_given:
        from mnas.loop import load_study

        with load_study(storage) as study:
            resume.space = study.space  # rebuilt from its stored class and settings (None: not rebuildable)
    return resume


def _space_options_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The space options that describe the study's stored space (block and cell spaces)."""
    kind = _kind((config.get("space") or {}).get("class", ""))
    settings = (config.get("space") or {}).get("settings") or {}
    names = {"mnasnet": ("width_mult", "head", "strides", *CHOICE_NAMES), "layerwise": ("width_mult", "head", "strides",
             "ops"), "nb201": ("cell_channels", "cells_per_stage"), "darts": ("cell_channels", "cell_layers")}.get(kind, ())
    out = {}
    for dest in names:
        value = settings.get(SPACE_SETTING[dest])
        out[dest] = show(value) if isinstance(value, (list, tuple)) else value
    return out


def _same_options(config: Mapping[str, Any], where: str) -> Callable[[Any, Any], bool]:
    """Given --strategy-opt items agree with the study's stored hyperparameters (each given key)."""
    hyper = config.get("strategy_options") or {}

    def check(stored: Any, given: Any) -> bool:
        for item in given or []:
            key, _, text = str(item).partition("=")
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text
            if key in hyper and not same(hyper[key], value):
                raise UsageError(f"--strategy-opt {item}: {where} was made with --strategy-opt {key}="
                                 f"{json.dumps(hyper[key])}; drop it to resume it{SEARCH_HINT}")
        return True

    return check


def _target_text(config: Mapping[str, Any]) -> str | None:
    ms = (config.get("reward") or {}).get("target_ms")
    return None if ms is None else f"{ms:g}ms"


def _same_target(config: Mapping[str, Any]) -> Callable[[Any, Any], bool]:
    target_ms = (config.get("reward") or {}).get("target_ms")

    def check(stored: Any, given: Any) -> bool:
        if given is None or stored is None:
            return given is None and stored is None
        if "".join(str(stored).split()).lower() == "".join(str(given).split()).lower():
            return True
        from mnas.objectives import Target

        try:
            parsed = Target.parse(str(given))
        except ValueError:
            return False
        return parsed.reference is None and target_ms is not None and same(float(parsed.ms), float(target_ms))

    return check


def _same_limit(config: Mapping[str, Any], name: str) -> Callable[[Any, Any], bool]:
    limit = (config.get("constraints") or {}).get(name)

    def check(stored: Any, given: Any) -> bool:
        from mnas.objectives import Constraints

        try:
            value = getattr(Constraints.parse(**{name: given}), name)
        except ValueError:
            return False
        return limit is not None and same(float(value), float(limit))

    return check


def _search_settings_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """A study made before mnas stored its command line: what its config says (UNKNOWN elsewhere)."""
    out: dict[str, Any] = dict.fromkeys(SEARCH_RECORDED, UNKNOWN)
    out.update({"strategy": config.get("strategy", UNKNOWN), "seed": config.get("seed", UNKNOWN)})
    options = config.get("strategy_options")
    if isinstance(options, dict):
        from mnas.strategies import STRATEGIES, strategy_hyperparameters

        name = config.get("strategy")
        accepted = set(strategy_hyperparameters(name)) if name in STRATEGIES else set(options) - {"strategy", "seed"}
        out["strategy_opt"] = [f"{k}={json.dumps(v)}" for k, v in options.items() if k in accepted]
    reward = config.get("reward") or {}
    kind = reward.get("kind")
    if kind in ("soft", "hard", "absolute", "accuracy"):
        out.update({"reward": kind, "alpha": None, "beta": None})
    elif kind == "custom":
        out.update({"reward": "hard" if reward.get("hard") else "soft", "alpha": reward.get("alpha"),
                    "beta": reward.get("beta")})
    evaluator = config.get("evaluator") or {}
    proxy = evaluator.get("proxy") if evaluator.get("kind") == "builtin" else None
    if isinstance(proxy, dict):
        out.update({"epochs": proxy.get("epochs"), "batch_size": proxy.get("batch_size"), "lr": proxy.get("lr"),
                    "max_train_seconds": proxy.get("max_seconds"), "input_size": proxy.get("input_size")})
    latency = evaluator.get("latency")
    if isinstance(latency, str):
        try:
            key = json.loads(latency)
        except json.JSONDecodeError:
            key = {}
        backend = key.get("backend")
        if backend in ("onnxruntime", "torch", "litert", "executorch"):
            out.update({"backend": backend, "latency_threads": key.get("threads", 1), "url": None, "lut": None})
        elif backend == "remote":
            out.update({"url": key.get("url"), "lut": None})
        elif key.get("table"):
            out.update({"lut": key["table"], "url": None})
    out.update(_deployment_from_config(config))
    out["inherited_score"] = evaluator.get("metric")  # in the identity only when not top-1 accuracy
    if evaluator.get("kind") == "supernet":  # the space is the checkpoint's: no space option
        out["supernet"] = (config.get("evaluation") or {}).get("checkpoint") or UNKNOWN
    elif _kind((config.get("space") or {}).get("class", "")) in _KINDS.values():
        out["space"] = _kind(config["space"]["class"])
    return out


def _deployment_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """--precision, --score and --calibration of a study that did not record them: its evaluator's
    latency key (a quantizing backend names its precision when it is not fp32; a table's is the
    table's, UNKNOWN here) and its score (in the identity only under int8)."""
    evaluator = config.get("evaluator") or {}
    score = evaluator.get("score") if isinstance(evaluator.get("score"), Mapping) else {}
    out: dict[str, Any] = {"score": score.get("score", "fp32"),
                           "calibration": score.get("calibration") if score.get("score") == "int8" else None}
    try:
        key = json.loads(evaluator["latency"]) if isinstance(evaluator.get("latency"), str) else {}
    except json.JSONDecodeError:
        key = {}
    out["precision"] = UNKNOWN if not key else key.get("precision", UNKNOWN if key.get("table") else "fp32")
    return out


@contextlib.contextmanager
def new_study_record(storage: str, args: argparse.Namespace) -> Iterator[None]:
    """Store the command line of a new study in it before it runs (`search_resume` reads it back);
    if the run fails before the study holds a config, remove the file again (no half-made study)."""
    from mnas.study import get_storage

    path = Path(storage.removeprefix("sqlite:///"))
    existed = path.exists()
    record = {"command": "search", "version": RECORD_VERSION, "cwd": os.getcwd(),
              "args": {dest: getattr(args, dest, None) for dest in SEARCH_RECORDED}}
    store = get_storage(storage)
    try:
        store.set_meta(RECORD_KEY, record)
    finally:
        store.close()
    try:
        yield
    except BaseException:
        if not existed:
            _remove_if_no_study(path)
        raise


def _remove_if_no_study(path: Path) -> None:
    from mnas.study import SQLiteStorage

    try:
        with SQLiteStorage(path, read_only=True) as existing:
            if existing.get_meta("config") is not None or existing.count_trials():
                return
    except Exception:  # noqa: BLE001 - not readable: leave it for the user
        return
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(OSError):
            Path(f"{path}{suffix}").unlink()


def resume_command(command: str, option: str, path: str) -> str:
    """The line to print after an interruption: `mnas <command> --resume <option> <path>`."""
    import shlex

    return f"mnas {command} --resume {option} {shlex.quote(str(path))}"


# -- mnas supernet train -----------------------------------------------------------------------------
SUPERNET_SAFE = ("threads", "device")
SUPERNET_SPACE = ("space", "width_mult", "head", "strides", "skeleton", *CHOICE_NAMES)  # --input-size: the training's


def sidecar(out: Path) -> Path:
    """Where `mnas supernet train` keeps what its checkpoint does not hold (the directory it ran in, --lut)."""
    return Path(f"{out}.cli.json")


def write_supernet_sidecar(out: Path, args: argparse.Namespace) -> None:
    from mnas.train.checkpoint import atomic_write_json

    atomic_write_json({"command": "supernet train", "version": RECORD_VERSION, "cwd": os.getcwd(), "lut": args.lut},
                      sidecar(out))


def supernet_resume(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Fill `args` from the supernet checkpoint `out` (and its sidecar) and check the options given
    against it; returns the checkpoint's dict. Space options given are checked by `check_supernet_space`."""
    from mnas.oneshot.train import CHECKPOINT_FORMAT, SupernetTrainConfig
    from mnas.train.checkpoint import load_file

    try:
        state = load_file(out)
    except ValueError as exc:
        raise UsageError(str(exc).splitlines()[0]) from None
    if state.get("format") != CHECKPOINT_FORMAT or not isinstance(state.get("train_config"), dict):
        raise UsageError(f"--resume: {out} is not a mnas supernet checkpoint")
    try:
        extra = json.loads(sidecar(out).read_text())
    except (OSError, ValueError):
        extra = {}
    cwd = extra.get("cwd")
    defaults = SupernetTrainConfig().to_dict()
    tc = {**defaults, **state["train_config"]}
    train = {**defaults["train"], **(tc.get("train") or {})}
    source = (state.get("data") or {}).get("source") or {}
    stored: dict[str, Any] = {
        "data": source.get("data", UNKNOWN), "data_root": source.get("root"), "val_fraction": source.get("val_fraction",
                                                                                                          UNKNOWN),
        "seed": train["seed"], "epochs": int(train["epochs"]), "batch_size": train["batch_size"], "lr": train["lr"],
        "input_size": train["input_size"], "no_amp": not train["amp"], "warmup_epochs": tc["warmup_epochs"],
        "num_random": tc["num_random"], "no_sandwich": not tc["sandwich"], "no_distill": not tc["distill"],
        "sampler": tc["sampler"], "bands": tc["bands"], "eval_images": tc["eval_images"],
        "lut": extra.get("lut", UNKNOWN) if tc["sampler"] == "stratified" else UNKNOWN,
        "threads": train["threads"], "device": train["device"],
        "sharing": (state.get("config") or {}).get("sharing", "shared")}
    where, hint = str(out), ", or give another --out for a new supernet"
    given = given_options(args)
    for dest in ("data", "data_root", "lut"):
        value = stored[dest]
        if dest in given or value in (None, UNKNOWN) or is_keyword(value):
            continue
        path = resolve(str(value), cwd)
        if not path.exists():
            raise UsageError(f"--resume: {where} was trained with {flag(args, dest)} {value}, which is not there from"
                             f" here ({path}): give {flag(args, dest)} where it is now")
        stored[dest] = here(value, cwd) if cwd else value
    restore(args, stored, where=where, hint=hint, safe=SUPERNET_SAFE,
            equal={d: same_path(cwd) for d in ("data", "data_root", "lut")})
    if any(d in given for d in SUPERNET_SPACE):  # the given ones change the checkpoint's space
        settings = ((state.get("config") or {}).get("space") or {}).get("settings") or {}
        kind = _kind(((state.get("config") or {}).get("space") or {}).get("class", ""))
        if "space" in given and kind in ("mnasnet", "layerwise") and args.space != kind:
            raise refusal(flag(args, "space"), args.space, kind, where, hint)
        if kind in ("mnasnet", "layerwise"):
            args.space = kind
        for dest in ("width_mult", "head", "strides", *CHOICE_NAMES):
            if dest not in given and (kind == "mnasnet" or dest in ("width_mult", "head", "strides", "ops")):
                value = settings.get(SPACE_SETTING[dest])
                setattr(args, dest, show(value) if isinstance(value, (list, tuple)) else value)
        if kind == "layerwise" and "skeleton" not in given:  # its stages, stem, act and dropout (a --skeleton's)
            args.layerwise_base = {k: settings[k] for k in ("stem_chs", "stages", "dropout", "act") if k in settings}
    return state


def check_supernet_space(args: argparse.Namespace, state: Mapping[str, Any], net_config: Mapping[str, Any],
                         out: Path) -> None:
    """The space built from given space options must be the checkpoint's (one line otherwise)."""
    error = space_refusal(args, (state.get("config") or {}).get("space") or {}, net_config.get("space") or {}, str(out),
                          ", or give another --out for a new supernet", options=SUPERNET_SPACE)
    if error is not None:
        raise error


# -- mnas train / mnas instance train ----------------------------------------------------------------
def _stored_data(args: argparse.Namespace, source: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The data options of a checkpoint's `data.source` (a path as typed, relative to here)."""
    stored = {"data": source.get("data", UNKNOWN), "data_root": source.get("root"),
              "val_fraction": source.get("val_fraction", UNKNOWN), "seed": source.get("seed", UNKNOWN)}
    given = given_options(args)
    for dest in ("data", "data_root"):
        value = stored[dest]
        if dest not in given and value not in (None, UNKNOWN) and not is_keyword(value) and not resolve(str(value)).exists():
            raise UsageError(f"--resume: {where} was trained with {flag(args, dest)} {value}, which is not there from here"
                             f" ({resolve(str(value))}): give {flag(args, dest)} where it is now")
    return stored


def train_resume(args: argparse.Namespace, saved: Mapping[str, Any], where: str) -> None:
    """`mnas train --resume`: fill the data options from the checkpoint `saved` and check every given
    option against it (its config is the run's; --threads, --stop-after apply)."""
    config = dict(saved.get("config") or {})
    stored = _stored_data(args, (saved.get("data") or {}).get("source") or {}, where)
    stored.update({k: config.get(k, UNKNOWN) for k in ("epochs", "batch_size", "lr", "weight_decay", "label_smoothing",
                                                         "ema_decay", "input_size", "channels_last", "device")})
    stored["no_augment"] = not config["augment"] if "augment" in config else UNKNOWN
    restore(args, stored, where=where, hint=", or give another --out for a new run",
            equal={"data": same_path(None), "data_root": same_path(None)},
            keep=("epochs", "batch_size", "lr", "weight_decay", "label_smoothing", "ema_decay", "input_size",
                  "channels_last", "device", "no_augment"))


def instance_resume(args: argparse.Namespace, saved: Mapping[str, Any], where: str) -> None:
    """`mnas instance train --resume`: the same for an instance-aware run's checkpoint."""
    config = dict(saved.get("config") or {})
    stored = _stored_data(args, (saved.get("data") or {}).get("source") or {}, where)
    names = {"width": "width", "stem_stride": "stem_stride", "strides": "stage_strides", "pretrain_epochs":
             "pretrain_epochs", "search_epochs": "search_epochs", "finetune_epochs": "finetune_epochs",
             "batch_size": "batch_size", "window_end": "window_end"}
    stored.update({dest: config.get(key, UNKNOWN) for dest, key in names.items()})
    backend = ((saved.get("table") or {}).get("backend") or {}).get("backend")
    stored["latency"] = backend if backend in ("onnxruntime", "macs") else UNKNOWN
    restore(args, stored, where=where, hint=", or give another --out for a new run",
            equal={"data": same_path(None), "data_root": same_path(None)}, keep=(*names, "latency"))


def keep_source(data: Any, source: Mapping[str, Any]) -> None:
    """After the given data options were checked against a checkpoint's (the same file, or a moved
    one): the data keeps the path the run recorded, which its identity includes, not today's spelling."""
    for key in ("data", "root"):
        old, new = source.get(key), data.source.get(key)
        if old is not None and new is not None and old != new and not (is_keyword(old) or is_keyword(new)):
            data.source[key] = old
