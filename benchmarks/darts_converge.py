"""Issue 22 part 2: do DARTS and GDAS at their CPU defaults decide? Searches, their per-epoch stability,
and (optionally) the derived cells trained standalone next to random cells of the space.

Each search is `search_darts(NB201Space(10, 32, channels=8, cells_per_stage=1), cifar10_10k, DartsConfig(
strategy=..., seed=..., threads=1, **overrides))` on ``../shared/data/cifar10_10k.npz`` (the 9,000
training images after a 10% validation split; the search caps and halves them itself). Every finished
search and training is a JSON under `--out` (a rerun skips what is done). Printed per search: epochs
run and why it stopped, CPU minutes (this process, one torch thread) and wall minutes, the mean entropy
per epoch as a share of uniform weights', the edges of the derived cell changed per epoch, the epochs
it has been unchanged at the end, its parameter-free share, and the cell.

``--train``: the derived cells and ``--random N`` random cells (`space.sample(i)`) trained with one
recipe (`darts_cells.TRAIN`'s: `recipe("fast", epochs=--train-epochs, batch_size=64, warmup_epochs=0.2)`),
in the same c8_n1 skeleton, tested on the 2,000 test images; ``--noise-seeds`` retrains the first random
cell with those training seeds, so the table shows the recipe's seed noise beside the differences.

Usage::

    python benchmarks/darts_converge.py --methods darts gdas --seeds 0 1 2            # CPU defaults (remedies on)
    python benchmarks/darts_converge.py --tag cap30 --set aux_skip=0 derive_none=True  # the defaults before issue 22's
    python benchmarks/darts_converge.py --tag free --set stop_unchanged=None epochs=20  # the whole trajectory
    python benchmarks/darts_converge.py --train --random 5 --noise-seeds 1 2
    python benchmarks/darts_converge.py --table                                        # from the cache
    python benchmarks/darts_converge.py --methods darts --seeds 0 1 2 3 4 --train --tag aux1 --set aux_skip=1.0 derive_none=True
    python benchmarks/darts_converge.py --tag aux1 --methods darts --seeds 0 1 2 3 4 --replay-nonone --train
    python benchmarks/darts_converge.py --train --cells conv3="|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|..."

A tag names one config: its cached searches and checkpoints are reused by the tag alone, so give a new
tag for new overrides (and spell out `aux_skip=0 derive_none=True` for the settings before the CPU default
changed in issue 22). ``--replay-nonone``: the cached searches of ``--tag`` re-derived without ``none`` in the arg-max
(``derive_none=False``) from their checkpoints' per-epoch alphas, the stopping rule replayed on the cells
so derived (exact where it stops no later than the recorded search did; else reported and skipped), cached
as tag ``<tag>-nonone``. ``--cells NAME=ARCH``: reference cells trained with the same recipe.
The table ends each method with the mean +- s.e. over seeds against the random cells' median.
"""

from __future__ import annotations

import argparse
import ast
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from mnas.oneshot.darts import LEGACY_FIELDS, DartsConfig, derive, param_free_share, search_darts, stop_reason
from mnas.space import as_arch
from mnas.space.cells.spaces import NB201Space

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_cells import TRAIN, VAL_FRACTION, _cached, _se  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"


def space() -> NB201Space:
    return NB201Space(10, 32, channels=8, cells_per_stage=1)  # the CPU default search net's skeleton


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def run_search(method: str, seed: int, overrides: dict[str, Any], tag: str, data: Any, out: Path) -> dict | None:
    cfg = DartsConfig(strategy=method, seed=seed, threads=1, **overrides)

    def job() -> dict[str, Any]:
        def show(r: dict[str, Any]) -> None:
            print(f"    {method} s{seed} epoch {r['epoch']}: entropy {r['entropy']:.4f}/{r['entropy_max']:.4f}"
                  f" aux_skip {r.get('aux_skip', 0):.2f} skip_dropout {r.get('skip_dropout', 0):.2f}"
                  f" changed {r['changed']} unchanged {r['unchanged_epochs']} param-free {r['param_free']:.2f}"
                  f" cpu {r['cpu_seconds']:.0f} s  {r['arch']}", flush=True)

        c0 = time.process_time()
        r = search_darts(space(), data, cfg, out=out / "ckpt" / f"search_{tag}_{method}_s{seed}", resume=True,
                         progress=show)
        keep = ("epoch", "entropy", "entropy_max", "changed", "unchanged_epochs", "param_free", "arch", "val_acc",
                "train_acc", "cpu_seconds", "seconds", "aux_skip", "skip_dropout")
        return {"method": method, "seed": seed, "tag": tag, "config": cfg.to_dict(), "arch": str(r.arch),
                "param_free": param_free_share(r.arch), "stop_reason": r.stop_reason, "search_s": r.seconds,
                "search_cpu_s": r.cpu_seconds, "process_cpu_s": time.process_time() - c0,
                "epochs": [{k: h.get(k) for k in keep} for h in r.history], "alphas": r.alphas}

    return _cached(out / f"search_{tag}_{method}_s{seed}.json", job)


def replay_nonone(method: str, seed: int, tag: str, out: Path) -> dict | None:
    """The search of (tag, method, seed) re-derived with ``derive_none=False`` from its checkpoint's history."""
    from mnas.train.checkpoint import load_file

    src = out / f"search_{tag}_{method}_s{seed}.json"
    ckpt = out / "ckpt" / f"search_{tag}_{method}_s{seed}" / "search.pt"
    if not src.is_file() or not ckpt.is_file():
        return None
    rec = json.loads(src.read_text())
    cfg = DartsConfig(**{**LEGACY_FIELDS, **rec["config"], "derive_none": False})  # a record before the fields: off
    history = load_file(ckpt)["history"]
    epochs, prev, unchanged, reason = [], None, 0, ""
    for h in history:
        logits = {k: torch.tensor(v).log() for k, v in h["softmax"].items()}
        arch = derive(space(), logits, none=False)
        edges = list(arch.ops)
        warm = bool(h.get("warmup"))
        changed = None if warm or prev is None else sum(a != b for a, b in zip(prev, edges, strict=True))
        unchanged = unchanged + 1 if changed == 0 else 0
        r = {**{k: h.get(k) for k in ("epoch", "entropy", "entropy_max", "cpu_seconds", "seconds", "aux_skip",
                                      "skip_dropout")},
             "arch": str(arch), "changed": changed, "unchanged_epochs": unchanged, "param_free": param_free_share(arch)}
        epochs.append(r)
        prev = None if warm else edges
        if not warm:
            reason = stop_reason(r, cfg, h["epoch"] == cfg.epochs)
            if reason:
                break
    if not reason:
        print(f"  replay {tag} {method} s{seed}: the rule without none would run past the recorded"
              f" {len(history)} epochs ({rec['stop_reason']}): not replayable", flush=True)
        return None
    last = epochs[-1]
    return {"method": method, "seed": seed, "tag": f"{tag}-nonone", "config": cfg.to_dict(), "arch": last["arch"],
            "param_free": last["param_free"], "stop_reason": reason, "search_s": last["seconds"],
            "search_cpu_s": last["cpu_seconds"], "epochs": epochs, "replayed_from": src.name}


def run_train(name: str, arch_text: str, epochs: int, seed: int, data: Any, out: Path) -> dict | None:
    from mnas.train.config import recipe
    from mnas.train.full import train_full

    cfg = recipe("fast", epochs=epochs, **{**TRAIN, "seed": seed})
    key = f"train_{name}_e{epochs}_t{seed}"

    def job() -> dict[str, Any]:
        run_dir = out / "ckpt" / key
        m = train_full(as_arch(arch_text), data, cfg, run_dir, resume=(run_dir / "checkpoint.pt").is_file())
        return {"name": name, "arch": arch_text, "train_seed": seed, "test_accuracy": m["test_accuracy"],
                "n_test": m["num_test"], "val_accuracy": m["val_accuracy"], "train_s": m["seconds"],
                "recipe": cfg.to_dict()}

    return _cached(out / f"{key}.json", job)


def _mean_sd(xs: list[float]) -> str:
    if not xs:
        return "-"
    m = statistics.fmean(xs)
    return f"{m:.3f}" if len(xs) < 2 else f"{m:.3f} +- {statistics.stdev(xs):.3f} sd (n={len(xs)})"


def table(out: Path, tag: str, methods: list[str], seeds: list[int], n_random: int, epochs: int,
          noise: list[int], cells: dict[str, str] | None = None) -> None:
    cells = cells or {}
    def get(name: str) -> dict | None:
        p = out / name
        return json.loads(p.read_text()) if p.is_file() else None

    rand = [t["test_accuracy"] for i in range(n_random) if (t := get(f"train_random{i}_e{epochs}_t0.json"))]
    median = statistics.median(rand) if rand else None
    print("| method | seed | epochs run | stop | CPU min | wall min | entropy / uniform per epoch | edges changed per "
          "epoch | unchanged at end | param-free | derived cell | test acc +- s.e. |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for method in methods:
        accs = []
        for seed in seeds:
            s = get(f"search_{tag}_{method}_s{seed}.json")
            if s is None:
                continue
            ep = s["epochs"]
            ratios = ", ".join(f"{e['entropy'] / e['entropy_max']:.2f}" for e in ep)
            changed = ", ".join("-" if e["changed"] is None else str(e["changed"]) for e in ep)
            t = get(f"train_{tag}_{method}_s{seed}_e{epochs}_t0.json")
            acc = "-" if t is None else f"{t['test_accuracy']:.3f} +- {_se(t['test_accuracy'], t['n_test']):.3f}"
            if t is not None:
                accs.append(t["test_accuracy"])
            cell = s["arch"].split(" | ")[0].replace("|", "\\|")
            print(f"| {method} | {seed} | {len(ep)} | {s['stop_reason']} | {s['search_cpu_s'] / 60:.1f} |"
                  f" {s['search_s'] / 60:.1f} | {ratios} | {changed} | {ep[-1]['unchanged_epochs']} |"
                  f" {s['param_free']:.2f} | `{cell}` | {acc} |")
        if accs:
            print(f"| {method} | mean | | | | | | | | | | {_mean_sd(accs)} |")
            if median is not None:
                m = statistics.fmean(accs)
                se = statistics.stdev(accs) / len(accs) ** 0.5 if len(accs) > 1 else float("nan")
                above = sum(a > median for a in accs)
                print(f"| {method} | vs random median {median:.3f} | | | | | | | | | | {m - median:+.3f} +- {se:.3f}"
                      f" s.e. (mean {m:.3f}; {above} of {len(accs)} seeds above the median) |")
    for name in cells:
        t = get(f"train_cell_{name}_e{epochs}_t0.json")
        if t is not None:
            cell = t["arch"].split(" | ")[0].replace("|", "\\|")
            print(f"| cell {name} | | | | | | | | | {param_free_share(as_arch(t['arch'])):.2f} | `{cell}` |"
                  f" {t['test_accuracy']:.3f} +- {_se(t['test_accuracy'], t['n_test']):.3f} |")
    accs = []
    for i in range(n_random):
        t = get(f"train_random{i}_e{epochs}_t0.json")
        if t is None:
            continue
        accs.append(t["test_accuracy"])
        cell = t["arch"].split(" | ")[0].replace("|", "\\|")
        print(f"| random | {i} | | | | | | | | {param_free_share(as_arch(t['arch'])):.2f} | `{cell}` |"
              f" {t['test_accuracy']:.3f} +- {_se(t['test_accuracy'], t['n_test']):.3f} |")
    if accs:
        print(f"| random | mean (median {statistics.median(accs):.3f}) | | | | | | | | | | {_mean_sd(accs)} |")
    runs = [get(f"train_random0_e{epochs}_t{s}.json") for s in [0, *noise]]
    runs = [r for r in runs if r is not None]
    if len(runs) > 1:
        accs = [r["test_accuracy"] for r in runs]
        print(f"\nseed noise of the recipe: random cell 0 trained with seeds {[r['train_seed'] for r in runs]}:"
              f" {', '.join(f'{a:.3f}' for a in accs)} ({_mean_sd(accs)})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["darts", "gdas"], choices=["darts", "gdas"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", nargs="+", default=[], metavar="FIELD=VALUE", help="DartsConfig overrides")
    ap.add_argument("--tag", default="default", help="names this config's cached searches")
    ap.add_argument("--train", action="store_true", help="train the derived cells (and --random cells) standalone")
    ap.add_argument("--random", type=int, default=0, help="random cells to train")
    ap.add_argument("--noise-seeds", type=int, nargs="*", default=[], help="retrain random cell 0 with these seeds")
    ap.add_argument("--train-epochs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("/tmp/darts_converge"))
    ap.add_argument("--table", action="store_true", help="only print the table from the cache")
    ap.add_argument("--replay-nonone", action="store_true",
                    help="re-derive --tag's cached searches without none (derive_none=False); tag <tag>-nonone")
    ap.add_argument("--cells", nargs="+", default=[], metavar="NAME=ARCH", help="reference cells to train")
    args = ap.parse_args()
    overrides = {}
    for item in args.set:
        key, _, value = item.partition("=")
        overrides[key] = _value(value)
    if args.tag == "default" and overrides:
        raise SystemExit("--set changes the config: name it with --tag")
    args.out.mkdir(parents=True, exist_ok=True)
    cells = dict(item.split("=", 1) for item in args.cells)
    if args.replay_nonone:
        for seed in args.seeds:
            for method in args.methods:
                rec = replay_nonone(method, seed, args.tag, args.out)
                if rec is not None:
                    path = args.out / f"search_{rec['tag']}_{method}_s{seed}.json"
                    path.write_text(json.dumps(rec, indent=1))
                    print(f"  replay {rec['tag']} {method} s{seed}: {rec['stop_reason']} after {len(rec['epochs'])}"
                          f" epochs; {rec['arch']}", flush=True)
        args.tag = f"{args.tag}-nonone"
    if not args.table:
        from mnas.train.data import load

        torch.set_num_threads(1)
        data = load(DATA, val_fraction=VAL_FRACTION)
        print(f"data {data}; config {DartsConfig(**{'strategy': args.methods[0], **overrides})}; load {uptime()}",
              flush=True)
        for seed in args.seeds:
            for method in args.methods:
                path = args.out / f"search_{args.tag}_{method}_s{seed}.json"
                if args.replay_nonone:  # only the replayable ones, never a fresh search
                    s = json.loads(path.read_text()) if path.is_file() else None
                else:
                    s = run_search(method, seed, overrides, args.tag, data, args.out)
                if s is None:
                    print(f"  {method} seed {seed}: another run holds it", flush=True)
                    continue
                print(f"  {method} seed {seed}: {s['stop_reason']} after {len(s['epochs'])} epochs,"
                      f" {s['search_cpu_s'] / 60:.1f} CPU min; {s['arch']}", flush=True)
                if args.train:
                    run_train(f"{args.tag}_{method}_s{seed}", s["arch"], args.train_epochs, 0, data, args.out)
        if args.train:
            for i in range(args.random):
                run_train(f"random{i}", str(space().sample(i)), args.train_epochs, 0, data, args.out)
            for seed in args.noise_seeds:
                run_train("random0", str(space().sample(0)), args.train_epochs, seed, data, args.out)
            for name, arch in cells.items():
                text = arch if " | " in arch else f"{arch} | c8_n1"
                run_train(f"cell_{name}", text, args.train_epochs, 0, data, args.out)
        print(f"load after: {uptime()}", flush=True)
    table(args.out, args.tag, args.methods, args.seeds, args.random, args.train_epochs, args.noise_seeds, cells)


if __name__ == "__main__":
    main()
