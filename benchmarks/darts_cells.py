"""Issue 11's figures: DARTS vs GDAS derived cells, trained standalone, next to random cells.

For each space (NB201, DARTS), each search seed and each method (DARTS first order, GDAS) one
search with the CPU default `DartsConfig` (search net: its channels / cells); the derived cell,
expressed in the space's (CPU-sized) macro settings below, is trained standalone with one recipe
(`recipe("fast", ...)`, see TRAIN); `--random` random cells of the same space (`space.sample(i)`)
are trained identically. Every finished search and training is cached as JSON under `--out`
(default /tmp/darts_fig), so a rerun skips what is done and a killed run loses at most one job
(an unfinished training resumes from its checkpoint). Prints per search: seed, method, time,
final entropy, derived cell, parameter-free share, test accuracy +- binomial s.e. (n); then mean
+- s.e. over seeds per method and space, and the random cells' mean +- s.e.

Usage: ``python benchmarks/darts_cells.py [--spaces nb201 darts] [--seeds 0 1 2] [--random 5]``;
``--table`` prints the table from the cache without running anything.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import torch

from mnas.oneshot.darts import DartsConfig, param_free_share, search_darts
from mnas.space import as_arch
from mnas.space.cells.spaces import DartsSpace, NB201Space
from mnas.train.config import recipe
from mnas.train.data import load
from mnas.train.full import train_full

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10_10k.npz"
# The standalone networks (CPU-sized macro settings; a derived cell is expressed in these, so
# every cell of a space, derived or random, trains in the same skeleton).
# NB201: the CPU default search net's skeleton (8 channels, 1 cell per stage). DARTS: 4 channels,
# 3 cells (normal, reduce, reduce; 4 nodes each as in DARTS), since DartsSpace(channels=8, layers=5)
# trained at 26 images/s (358 s per epoch of 9,000 images) and its search net at C8 L3 took 10 s per
# step of 32 images here: neither fits 12 searches + 22 trainings in ~90 core-minutes.
SPACES = {"nb201": lambda: NB201Space(10, 32, channels=8, cells_per_stage=1),
          "darts": lambda: DartsSpace(10, 32, channels=4, layers=3)}
# Search: the CPU default DartsConfig (search net = the skeleton above); for DARTS a smaller run
# (1,000 images, batch 16, 3 epochs: 93 architecture steps) so one search takes minutes, not an hour.
SEARCH = {"nb201": {}, "darts": {"channels": 4, "darts_layers": 3, "train_images": 1000, "batch_size": 16, "epochs": 3}}
# One standalone recipe for every cell of a space: recipe("fast") (SGD Nesterov, cosine, label
# smoothing 0.1, lr 0.2 per 256 images) with batch 64 and a 0.2-epoch warm-up, on the 9,000
# training images (val_fraction 0.1), tested on the 2,000 test images; training seed 0 for every
# cell; EPOCHS per space (NB201's skeleton trains one epoch in ~30 s here, DARTS's in minutes).
TRAIN = {"batch_size": 64, "warmup_epochs": 0.2, "threads": 1, "seed": 0}
EPOCHS = {"nb201": 3, "darts": 1}
VAL_FRACTION = 0.1


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def _claim(lock: Path) -> bool:
    """Take `lock` for this process (False if a live process holds it), so two runs never share a job."""
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            text = lock.read_text().strip()
            try:
                os.kill(int(text), 0)
                return False
            except (ValueError, ProcessLookupError):
                lock.unlink(missing_ok=True)  # left by a dead run: take it over
                continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return True


def _cached(path: Path, job: Any) -> dict[str, Any] | None:
    """The cached record of `job`, or run it and cache it; None while another live run does it."""
    if path.is_file():
        return json.loads(path.read_text())
    lock = path.with_suffix(".lock")
    if not _claim(lock):
        return None
    if path.is_file():  # finished by another run between the check and the claim
        lock.unlink()
        return json.loads(path.read_text())
    before, t0, c0 = uptime(), time.perf_counter(), time.process_time()
    try:
        rec = job()
    finally:
        lock.unlink(missing_ok=True)
    rec.update(wall_s=time.perf_counter() - t0, cpu_s=time.process_time() - c0, uptime_before=before,
               uptime_after=uptime())
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rec, indent=1))
    os.replace(tmp, path)  # atomic: a killed run leaves no half-written record
    return rec


def search_config(space_name: str, method: str, seed: int) -> DartsConfig:
    return DartsConfig(strategy="gdas" if method == "gdas" else "darts", order=1, seed=seed, threads=1,
                       **SEARCH[space_name])


def run_search(space_name: str, method: str, seed: int, data: Any, out: Path) -> dict[str, Any] | None:
    space = SPACES[space_name]()
    cfg = search_config(space_name, method, seed)

    def job() -> dict[str, Any]:
        def show(r: dict[str, Any]) -> None:
            print(f"    {space_name} {method} seed {seed} epoch {r['epoch']}: entropy {r['entropy']:.4f} param-free"
                  f" {r['param_free']:.2f} {r['seconds']:.0f} s {r['arch']}", flush=True)

        r = search_darts(space, data, cfg, out=out / "ckpt" / f"search_{space_name}_{method}_s{seed}", resume=True,
                         progress=show)
        return {"space": space_name, "method": method, "seed": seed, "config": cfg.to_dict(), "arch": str(r.arch),
                "param_free": param_free_share(r.arch), "search_s": r.seconds,
                "entropy": [h["entropy"] for h in r.history], "val_acc": [h["val_acc"] for h in r.history],
                "epoch_archs": [h["arch"] for h in r.history], "alphas": r.alphas}

    return _cached(out / f"search_{space_name}_{method}_s{seed}.json", job)


def run_train(space_name: str, tag: str, arch_text: str, data: Any, out: Path) -> dict[str, Any] | None:
    cfg = recipe("fast", epochs=EPOCHS[space_name], **TRAIN)
    name = f"train_{space_name}_{tag}_e{EPOCHS[space_name]}"

    def job() -> dict[str, Any]:
        run_dir = out / "ckpt" / name
        m = train_full(as_arch(arch_text), data, cfg, run_dir, resume=(run_dir / "checkpoint.pt").is_file())
        return {"space": space_name, "tag": tag, "arch": arch_text, "test_accuracy": m["test_accuracy"],
                "n_test": m["num_test"], "val_accuracy": m["val_accuracy"], "train_s": m["seconds"],
                "recipe": cfg.to_dict()}

    return _cached(out / f"{name}.json", job)


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def _mean_se(xs: list[float]) -> str:
    if not xs:
        return "-"
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return f"{m:.3f} (n=1)"
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))
    return f"{m:.3f} +- {sd / math.sqrt(len(xs)):.3f} (n={len(xs)})"


def table(out: Path, spaces: list[str], methods: list[str], seeds: list[int], n_random: int) -> None:
    def get(name: str) -> dict[str, Any] | None:
        p = out / name
        return json.loads(p.read_text()) if p.is_file() else None

    print("| space | method | seed | search s (wall / cpu) | final entropy | derived cell | param-free | test acc +- s.e. (n) |")
    print("|---|---|---|---|---|---|---|---|")
    for sp in spaces:
        for method in methods:
            accs, shares = [], []
            for seed in seeds:
                s = get(f"search_{sp}_{method}_s{seed}.json")
                if s is None:
                    continue
                t = get(f"train_{sp}_{method}_s{seed}_e{EPOCHS[sp]}.json")
                acc = "(not trained)" if t is None else \
                    f"{t['test_accuracy']:.3f} +- {_se(t['test_accuracy'], t['n_test']):.3f} ({t['n_test']})"
                if t is not None:
                    accs.append(t["test_accuracy"])
                shares.append(s["param_free"])
                print(f"| {sp} | {method} | {seed} | {s['wall_s']:.0f} / {s['cpu_s']:.0f} | {s['entropy'][-1]:.4f} |"
                      f" `{s['arch']}` | {s['param_free']:.2f} | {acc} |")
            print(f"| {sp} | {method} | mean | | | | {_mean_se(shares)} | {_mean_se(accs)} |")
        accs, shares = [], []
        for i in range(n_random):
            t = get(f"train_{sp}_random{i}_e{EPOCHS[sp]}.json")
            if t is None:
                continue
            accs.append(t["test_accuracy"])
            shares.append(param_free_share(as_arch(t["arch"])))
            print(f"| {sp} | random | {i} | - | - | `{t['arch']}` | {shares[-1]:.2f} |"
                  f" {t['test_accuracy']:.3f} +- {_se(t['test_accuracy'], t['n_test']):.3f} ({t['n_test']}) |")
        print(f"| {sp} | random | mean | | | | {_mean_se(shares)} | {_mean_se(accs)} |")


def _show(what: str, rec: dict[str, Any] | None, key: str) -> None:
    if rec is None:
        print(f"  {what}: another run holds it, skipped", flush=True)
    else:
        print(f"  {what}: {key} {rec[key]:.3f} ({rec['wall_s']:.0f} s wall){' ' + rec['arch'] if key != 'test_accuracy' else ''}",
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--spaces", nargs="+", default=list(SPACES), choices=list(SPACES))
    ap.add_argument("--methods", nargs="+", default=["darts", "gdas"], choices=["darts", "gdas"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--random", type=int, default=5, help="random cells per space")
    ap.add_argument("--out", type=Path, default=Path("/tmp/darts_fig"))
    ap.add_argument("--table", action="store_true", help="only print the table from the cache")
    ap.add_argument("--no-train", action="store_true", help="searches only")
    ap.add_argument("--only-random", action="store_true", help="only the random cells' trainings")
    ap.add_argument("--reverse", action="store_true", help="take the jobs last first (for a second process)")
    ap.add_argument("--epochs", nargs="+", default=[], metavar="SPACE=N", help="standalone epochs, e.g. nb201=1")
    args = ap.parse_args()
    for item in args.epochs:
        sp, _, n = item.partition("=")
        if sp not in EPOCHS or not n.isdigit() or int(n) < 1:
            raise SystemExit(f"--epochs {item!r}: expected SPACE=N with SPACE one of {', '.join(EPOCHS)}")
        EPOCHS[sp] = int(n)
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.table:
        if not DATA.is_file():
            raise SystemExit(f"{DATA} is absent")
        torch.set_num_threads(1)
        data = load(DATA, val_fraction=VAL_FRACTION)
        print(f"data {data}; torch threads 1; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
        for sp in args.spaces:
            print(f"search {sp}: {search_config(sp, 'darts', 0)}", flush=True)
            print(f"train {sp}: {recipe('fast', epochs=EPOCHS[sp], **TRAIN)}", flush=True)
        print("uptime before:", uptime(), flush=True)
        for sp in args.spaces:
            print(f"space {sp}: {SPACES[sp]()}", flush=True)
            # seed-major, so a partial run has both methods for the first seeds; random cells last
            jobs = [] if args.only_random else [(m, seed) for seed in args.seeds for m in args.methods]
            jobs += [] if args.no_train else [("random", i) for i in range(args.random)]
            for kind, k in reversed(jobs) if args.reverse else jobs:
                if kind == "random":
                    t = run_train(sp, f"random{k}", str(SPACES[sp]().sample(k)), data, args.out)
                    _show(f"train {sp} random {k}", t, "test_accuracy")
                    continue
                s = run_search(sp, kind, k, data, args.out)
                _show(f"search {sp} {kind} seed {k}", s, "param_free")
                if s is not None and not args.no_train:
                    t = run_train(sp, f"{kind}_s{k}", s["arch"], data, args.out)
                    _show(f"train {sp} {kind} seed {k}", t, "test_accuracy")
        print("uptime after:", uptime(), flush=True)
    table(args.out, args.spaces, args.methods, args.seeds, args.random)


if __name__ == "__main__":
    main()
