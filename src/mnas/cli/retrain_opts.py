"""`mnas search ... --retrain-top K`: retrain the best K trials standalone after the search
(`mnas.loop.retrain.retrain_top`), so the reported best rests on real accuracy.

`add_retrain_arguments(parser)` adds the options; `check_retrain_arguments(args)` refuses bad
combinations before the search starts (exit 2); `run_retrain(args, study, data)` runs after it and
prints the inherited-against-standalone table (stderr under --json, whose one document is the
search report's, which then names the retrained pick as its best and, with --retrain-reference, holds
the comparison with the reference as fields: "retrain_reference", `reference_comparison`).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from mnas.cli._common import UsageError, positive_int, table


def add_retrain_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("retraining the best trials (after the search)")
    g.add_argument("--retrain-top", type=positive_int, metavar="K",
                   help="train the best K trials under the target standalone and report the best of them "
                   "(interrupted: rerun the same command with --resume to continue)")
    g.add_argument("--retrain-epochs", type=positive_int, metavar="N",
                   help="epochs of the 'fast' recipe (default 5 from scratch, 2 fine-tuning)")
    g.add_argument("--retrain-mode", choices=("scratch", "finetune"),
                   help="scratch (default: the network's own accuracy) or finetune (from the weights inherited "
                   "from --supernet)")
    g.add_argument("--retrain-seeds", type=positive_int, metavar="N",
                   help="train each retrained trial (and the --retrain-reference) with N seeds and rank them by the mean"
                   " (default 1; a short recipe's single training is mostly seed noise)")
    g.add_argument("--retrain-out", metavar="DIR", help="folder for the retrained models (default: STORAGE.retrain/)")
    g.add_argument("--retrain-reference", action="store_true",
                   help="also train the zoo network --target names (e.g. mnasnet_b1_x0.5) with the same recipe and"
                   " say whether the pick beats it")


def check_retrain_arguments(args: argparse.Namespace) -> None:
    """UsageError (exit 2) for options that cannot work, before any search time is spent."""
    k = getattr(args, "retrain_top", None)
    names = ("retrain_epochs", "retrain_mode", "retrain_out", "retrain_reference", "retrain_seeds")
    given = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n, None)]
    if k is None and given:
        raise UsageError(f"{', '.join(given)} go with --retrain-top K (how many trials to retrain)")
    if k is not None and getattr(args, "strategy", None) in ("enas", "darts", "gdas", "fbnet"):
        raise UsageError(f"--retrain-top goes with the trial-by-trial strategies (ppo, reinforce, evolution, random), not "
                         f"--strategy {args.strategy}: retrain its architecture with 'mnas train'")
    if getattr(args, "retrain_mode", None) == "finetune" and not getattr(args, "supernet", None):
        raise UsageError("--retrain-mode finetune starts from inherited weights: it needs --supernet CHECKPOINT")
    if getattr(args, "retrain_reference", False):
        target = _target(args)
        if target is None or target.reference is None:
            raise UsageError("--retrain-reference trains the network --target names: give a zoo target such as --target"
                             " mnasnet_b1_x0.5")
        if target.factor != 1.0:
            raise UsageError(f"--retrain-reference compares the pick with the network the target names at that"
                             f" network's latency, and '{target}' is {target.factor:g} of it: give --target"
                             f" {target.reference} (or drop --retrain-reference)")
        if getattr(args, "retrain_mode", None) == "finetune":
            raise UsageError("--retrain-reference trains the hand-designed network from scratch, which is no footing to"
                             " compare a fine-tuned pick on: drop --retrain-mode finetune (or --retrain-reference)")


def _target(args: argparse.Namespace) -> Any:
    """The parsed --target (on a resume, the study's recorded one; None for none or an unreadable one)."""
    from mnas.objectives import Target

    text = getattr(args, "target", None) or getattr(args, "stored_target", None)
    if not isinstance(text, str) or not text:
        return None
    try:
        return Target.parse(text)
    except ValueError:
        return None


def _reference(args: argparse.Namespace) -> str | None:
    """The zoo model the --target names (None for a target in ms or none)."""
    target = _target(args)
    return None if target is None else target.reference


def run_retrain(args: argparse.Namespace, study: Any, data: Any, storage: str | None = None,
                report: dict[str, Any] | None = None) -> int:
    """Retrain after the search; 0 when the best retrained trial is recorded, 1 when no trial meets
    the target or limits (said in one line), 130 when interrupted (finished retrainings are kept).
    `report`: a dict that gets the --retrain-reference comparison ("retrain_reference",
    `reference_comparison`) for the search's JSON document."""
    from mnas.loop.retrain import retrain_candidates, retrain_top

    check_retrain_arguments(args)
    _, why = retrain_candidates(study, args.retrain_top)
    if why:  # e.g. no trial meets the target: say so instead of retraining the largest
        print(f"mnas: --retrain-top: {why}", file=sys.stderr)
        return 1
    mode = args.retrain_mode or "scratch"
    storage = storage or getattr(args, "storage", None)
    out = Path(args.retrain_out) if args.retrain_out else Path(f"{storage or 'runs/search'}.retrain")
    quiet = bool(getattr(args, "quiet", False))
    say = (lambda _: None) if quiet else (lambda line: print(f"retrain: {line}", file=sys.stderr, flush=True))
    seeds = getattr(args, "retrain_seeds", None) or 1
    try:
        results = retrain_top(study, data, args.retrain_top, epochs=args.retrain_epochs, mode=mode,
                              supernet=getattr(args, "supernet", None), out=out, log=say, seeds=seeds)
    except KeyboardInterrupt:
        print(f"\nmnas: retraining interrupted; finished retrainings are saved in {storage} and {out}. Continue with "
              "the same command and --resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(f"--retrain-top: {str(exc).splitlines()[0]}") from None
    file = sys.stderr if getattr(args, "json", False) else sys.stdout
    rows = [{"n": r["trial"], "src": r["source_trial"], "inh": _pct(r["inherited_accuracy"]),
             "acc": _pct(r["accuracy"]) + ("" if r.get("accuracy_se") is None else f" +- {100 * r['accuracy_se']:.1f}"),
             "test": _pct(r["test_accuracy"]), "lat": f"{r['latency_ms']:.3f}", "reward": f"{r['reward']:.4f}",
             "s": f"{r['seconds']:.0f}" if r["seconds"] is not None else "?"} for r in results]
    epochs = results[0]["epochs"]
    over = "" if seeds == 1 else f"; mean +- s.e. over {seeds} seeds"
    print(f"\nretrained top {len(results)} ({mode}, 'fast' recipe, {epochs} epochs; accuracy on the validation split"
          f"{over}):", file=file)
    table(rows, [("trial", "n"), ("from trial", "src"), ("inherited", "inh"), ("standalone", "acc"), ("test", "test"),
                 ("latency ms", "lat"), ("reward", "reward"), ("train s", "s")], file=file)
    pick = results[0]
    which = "" if seeds == 1 else f" (its best seed's of {seeds})"
    print(f"final pick: trial {pick['trial']} (from search trial {pick['source_trial']}), standalone "
          f"{_pct(pick['accuracy'])} at {pick['latency_ms']:.3f} ms; weights{which}: {pick['model']}", file=file)
    # --trial, not --best: the weights are this trial's, whatever else an earlier retraining left in the study
    print(f"  export it: mnas export {storage or 'STUDY'} --trial {pick['trial']} --weights {pick['model']} --out"
          " model.onnx", file=file)
    note = earlier_best_note(study, pick["trial"])
    if note:
        print(note, file=file)
    if getattr(args, "retrain_reference", False):
        return _against_reference(args, study, data, out, pick, say, file, storage, report)
    return 0


def earlier_best_note(study: Any, pick: int) -> str | None:
    """One line when the study's best is not this round's pick: an earlier retraining with more seeds
    outranks this round's (`Study.best` lets the most seeds compete), so `export --best` and the report
    name that trial, not the one just printed."""
    best = study.best()
    if best is None or best.number == pick or best.accuracy_source != "standalone":
        return None
    n = len((best.extra or {}).get("seeds") or [None])
    return (f"  note: the study's best is trial {best.number} ({_pct(best.accuracy)}, retrained earlier with {n}"
            f" seed{'s' if n > 1 else ''}; the most seeds compete): 'mnas export --best' and 'mnas report' name it,"
            f" not trial {pick}")


def _against_reference(args: argparse.Namespace, study: Any, data: Any, out: Path, pick: dict[str, Any],
                       say: Any, file: Any, storage: str | None, report: dict[str, Any] | None = None) -> int:
    """Train the --target's zoo network with the same recipe and say, in one line, how the pick compares;
    the same comparison goes into `report` (`reference_comparison`) for --json."""
    from mnas.loop.retrain import retrain_reference

    name = _reference(args)
    try:
        ref = retrain_reference(study, data, name, epochs=args.retrain_epochs, out=out, log=say,
                                seeds=getattr(args, "retrain_seeds", None) or 1)
    except KeyboardInterrupt:
        print(f"\nmnas: reference training interrupted; the retrained pick is saved in {storage}. Continue with "
              "the same command and --resume", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(f"--retrain-reference: {str(exc).splitlines()[0]}") from None
    c = reference_comparison(name, pick, ref)
    if report is not None:
        report["retrain_reference"] = c
    diff = 100 * c["difference"]
    test = "" if c["test_difference"] is None else f", test {100 * c['test_difference']:+.1f}"
    n = c["seeds"]
    if n == 1:
        print(f"reference {name} ({ref['epochs']} epochs from scratch, seed {ref['seed']}): standalone "
              f"{_pct(ref['accuracy'])}, test {_pct(ref['test_accuracy'])}; the pick is {diff:+.1f} validation points"
              f"{test} — one seed each: compare over seeds (--retrain-seeds N) before trusting a gap of a"
              f" few points", file=file)
        if c["ship_reference"]:
            print(f"  the hand-designed network scored higher here: ship it (mnas train {name} --out DIR) unless more"
                  " seeds say otherwise", file=file)
        return 0
    se, z = 100 * c["difference_se"], c["z"]
    print(f"reference {name} ({ref['epochs']} epochs from scratch, seeds {ref['seeds'][0]}-{ref['seeds'][-1]}): "
          f"standalone {_pct(ref['accuracy'])} +- {100 * (ref.get('accuracy_se') or 0):.1f}, test "
          f"{_pct(ref['test_accuracy'])}; the pick is {diff:+.1f} +- {se:.1f} validation points"
          f" ({'no spread over the seeds' if z is None else f'{z:+.1f} s.e.'}, {n} seeds each){test}", file=file)
    weak = f" ({n} seeds: a Welch gap of 2 s.e. is weak evidence below 5)" if n < 5 else ""
    if c["verdict"] == "no_spread":
        print("  every seed scored the same: the seeds say nothing about the noise; add seeds or a longer recipe",
              file=file)
    elif c["verdict"] == "reference_higher":
        print(f"  the hand-designed network scored higher here: ship it (mnas train {name} --out DIR){weak}", file=file)
    elif c["verdict"] == "level":
        print("  the difference is within two standard errors: the pick and the hand-designed network are level"
              " here", file=file)
    else:
        print(f"  the pick scored higher by at least two standard errors{weak}", file=file)
    return 0


def reference_comparison(name: str, pick: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    """The retrained pick against the reference network, as the console line states it and `mnas search
    --json` reports it: accuracies are fractions (validation, as the trials'); "difference" is pick minus
    reference, "difference_se" its Welch standard error (None for one seed), "z" the difference in those
    standard errors rounded as printed (None for one seed or no spread); "verdict" is "one_seed",
    "no_spread", "reference_higher" (z <= -2), "level" or "pick_higher" (z >= 2), and "ship_reference"
    whether the line says to ship the reference (it scored higher: by 2 s.e., or at all with one seed)."""
    seeds = len(ref.get("seeds") or [ref["seed"]])
    diff = pick["accuracy"] - ref["accuracy"]
    test = None if pick.get("test_accuracy") is None or ref.get("test_accuracy") is None else \
        pick["test_accuracy"] - ref["test_accuracy"]
    se = z = None
    if seeds == 1:
        verdict = "one_seed"
    else:
        se = math.hypot(pick.get("accuracy_se") or 0.0, ref.get("accuracy_se") or 0.0)
        z = round(diff / se, 1) if se > 0 else None  # the verdict reads the figure it prints
        verdict = ("no_spread" if z is None else "reference_higher" if z <= -2 else "level" if z < 2
                   else "pick_higher")
    return {"reference": name, "reference_arch": ref.get("arch"), "epochs": ref.get("epochs"), "seeds": seeds,
            "reference_seeds": ref.get("seeds") or [ref["seed"]], "pick_trial": pick.get("trial"),
            "pick_accuracy": pick["accuracy"], "pick_accuracy_se": pick.get("accuracy_se"),
            "pick_test_accuracy": pick.get("test_accuracy"), "reference_accuracy": ref["accuracy"],
            "reference_accuracy_se": ref.get("accuracy_se"), "reference_test_accuracy": ref.get("test_accuracy"),
            "difference": diff, "difference_se": se, "z": z, "test_difference": test, "verdict": verdict,
            "ship_reference": verdict == "reference_higher" or (verdict == "one_seed" and diff < 0)}


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{100 * x:.1f}%"
