"""How well supernets rank NAS-Bench-Macro's networks: inherited accuracy against the benchmark's
50-epoch, three-seed mean, on 250 sampled networks (no standalone training here).

For each checkpoint: Kendall tau with its 95% bootstrap interval, Spearman rho, top-10 overlap, the
mean tau inside 5 equal-count MACs bands, the supernet's training time (from the checkpoint), and
the same for the free predictors (MACs, parameters) and for scores derived from inherited accuracy:

- ``smoothed``: a ridge regression on the one-hot tokens fitted to the 250 inherited accuracies
  themselves (no ground truth), i.e. the additive part of inherited accuracy, less per-network
  evaluation noise;
- ``+macs``: inherited accuracy plus ``w`` times log MACs (standardised), for a few ``w``;
- ``-loss``: the same evaluations' inherited log-likelihood (negated mean cross-entropy).

Also printed per checkpoint: the op bias, from ridge fits on one-hot tokens (the additive part) of
the truth and of inherited accuracy: how much each gains from k5e6 over k3e3 against k3e3 over skip,
summed over the layers; and with several checkpoints, how far their log-likelihoods agree with each
other (Kendall tau) and how an average of their standardised scores ranks.

    python benchmarks/nbmacro_rank.py runs/a.pt runs/b.pt --data ../shared/data/cifar10_10k.npz
    python benchmarks/nbmacro_rank.py runs/a.pt --images 250 500 1000      # BN recalibration size
    python benchmarks/nbmacro_rank.py runs/a.pt --val-images 1000          # fewer scoring images
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TRUTH = ROOT / ".." / "shared" / "data" / "nas-bench-macro_cifar10.json"
DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "cifar10_10k.npz"


def one_hot(space, archs: list[str]) -> np.ndarray:
    from mnas.space import as_arch

    rows = []
    for a in archs:
        tokens = space.encode(as_arch(a))
        rows.append(np.concatenate([np.eye(len(d.choices))[t] for d, t in zip(space.decisions, tokens, strict=True)]))
    return np.array(rows)


def ridge_smooth(x: np.ndarray, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """In-sample fit of a ridge regression (intercept unpenalised)."""
    xm, ym = x.mean(0), y.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + alpha * np.eye(x.shape[1]), xc.T @ (y - ym))
    return xc @ w + ym


def op_bias(tokens: np.ndarray, y: np.ndarray) -> float:
    """(k5e6 - k3e3) / (k3e3 - skip) of the additive fit (`nbmacro_scores.additive`), summed over the layers."""
    sys.path.insert(0, str(Path(__file__).parent))
    from nbmacro_scores import additive

    k3, k5, _ = additive(tokens, y)
    return k5 / k3


def stats(pred, truth, macs, n_resamples: int) -> dict:
    from mnas.oneshot.rank import band_stats, rank_stats
    from mnas.oneshot.rank_truth import quantile_groups

    s = rank_stats(pred, truth, top_k=10, n_resamples=n_resamples)
    s["macs_bands"] = band_stats(pred, truth, quantile_groups(macs, 5))["mean_tau"]
    return s


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--truth", default=str(DEFAULT_TRUTH))
    p.add_argument("--n", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", type=int, nargs="+", default=[500], help="BN recalibration images (one run each)")
    p.add_argument("--val-images", type=int, help="score on this many validation images (a fixed seeded subset;"
                   " default all 2,000)")
    p.add_argument("--with-test", action="store_true",
                   help="score on the validation and test splits together (4,000 images): how much of the ranking"
                        " error is the scoring set's sampling noise (a diagnostic; a search must not select on test)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--json", help="also write every report here")
    args = p.parse_args()

    import torch

    from mnas.oneshot.rank_truth import rank_check_truth
    from mnas.oneshot.train import load_supernet
    from mnas.space import as_arch
    from mnas.space.ground_truth import load_ground_truth
    from mnas.train import load

    torch.set_num_threads(1)
    if not Path(args.truth).is_file() or not Path(args.data).is_file():
        print(f"needs {args.truth} and {args.data}", file=sys.stderr)
        return 2
    truth = load_ground_truth(args.truth)
    data = load(args.data, val_fraction=0.2, seed=0)
    subset = ""
    if args.val_images and args.val_images < len(data.y_val):
        import dataclasses

        keep = np.sort(np.random.default_rng(0).permutation(len(data.y_val))[:args.val_images])
        data = dataclasses.replace(data, x_val=data.x_val[keep], y_val=data.y_val[keep])
        subset = f"-val{args.val_images}"
    if args.with_test:
        import dataclasses

        data = dataclasses.replace(data, x_val=np.concatenate([data.x_val, data.x_test]),
                                   y_val=np.concatenate([data.y_val, data.y_test]))
        subset += "-withtest"
    print(f"# {truth.name}: {len(truth)} networks; data {len(data.y_train)} train / {len(data.y_val)} val;"
          f" n={args.n}, seed {args.seed}; load {os.getloadavg()[0]:.2f}")
    out = []
    for ckpt in args.checkpoints:
        net, state = load_supernet(ckpt)
        hist = state.get("history", [])
        cfg = state.get("config", {})
        train_cfg = state.get("train_config", {})
        ips = np.mean([h["images_per_second"] for h in hist]) if hist else float("nan")
        print(f"\n## {ckpt}: {state.get('epoch')} epochs, {state.get('seconds', 0) / 60:.1f} min of training"
              f" ({ips:.0f} img/s), width {net.space.width_mult}; {json.dumps(train_cfg)[:300]}")
        del cfg
        for images in args.images:
            t = time.perf_counter()
            rep = rank_check_truth(net, data, truth, n=args.n, seed=args.seed, num_images=images, n_resamples=args.bootstrap,
                                   workers=args.workers, top_k=10)
            seconds = time.perf_counter() - t
            archs = rep["archs"]
            inh = np.array([a["inherited"] for a in archs])
            acc = np.array([a["truth"] for a in archs])
            macs = np.array([a["macs"] for a in archs])
            smooth = ridge_smooth(one_hot(net.space, [a["supernet_arch"] for a in archs]), inh)
            z = (np.log(macs) - np.log(macs).mean()) / np.log(macs).std()
            zi = (inh - inh.mean()) / inh.std()
            loglik = -np.array([a["inherited_loss"] for a in archs])
            rows = {"inherited": inh, "-loss": loglik, "smoothed": smooth, "macs": macs,
                    "params": np.array([a["params"] for a in archs])}
            for w in (0.25, 0.5, 1.0):
                rows[f"inherited+{w:g}*macs"] = zi + w * z
            rows["-loss+0.25*macs"] = (loglik - loglik.mean()) / loglik.std() + 0.25 * z
            print(f"### {images} BN images, {rep['num_eval']} eval images: {seconds:.0f} s for {len(archs)} sub-networks"
                  f" ({seconds / len(archs):.2f} s each); ground truth seed-to-seed tau {rep['noise_ceiling']['tau']:.3f}")
            print(f"{'score':<22} {'tau':>6} {'95% CI':>14} {'rho':>6} {'top-10':>7} {'tau in 5 MACs bands':>20}")
            entry = {"checkpoint": ckpt, "images": images, "seconds": seconds, "train_seconds": state.get("seconds"),
                     "epochs": state.get("epoch"), "scores": {},
                     "archs": [{k: a[k] for k in ("arch", "supernet_arch", "inherited", "truth", "macs")} for a in archs]}
            # The inherited accuracies are deterministic for (checkpoint, BN images): share them with
            # benchmarks/nbmacro_search.py, whose cache is keyed by the full-width network.
            cache_path = Path(f"{ckpt}.inherited-{images}{subset}.json")
            cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
            cache.update({a["arch"]: a["inherited"] for a in archs})
            cache_path.write_text(json.dumps(cache))
            for name, pred in rows.items():
                s = stats(pred, acc, macs, args.bootstrap)
                entry["scores"][name] = s
                lo, hi = s["tau_ci"]
                print(f"{name:<22} {s['tau']:6.3f} [{lo:5.3f}, {hi:5.3f}] {s['rho']:6.3f} {s['top10_overlap'] * 10:5.0f}/10"
                      f" {s['macs_bands']:20.3f}")
            print(rep["verdict"])
            tokens = np.array([net.space.encode(as_arch(a["supernet_arch"])) for a in archs])
            print(f"op bias, (k5e6 - k3e3) / (k3e3 - skip) of the additive fit: truth {op_bias(tokens, acc):.3f},"
                  f" inherited accuracy {op_bias(tokens, inh):.3f}")
            entry["loglik"] = loglik.tolist()
            out.append(entry)
    if len(out) > 1:
        from scipy.stats import kendalltau

        truth_acc = np.array([a["truth"] for a in out[0]["archs"]])
        zs = [(np.array(e["loglik"]) - np.mean(e["loglik"])) / np.std(e["loglik"]) for e in out]
        for i in range(len(out)):
            for j in range(i + 1, len(out)):
                print(f"{out[i]['checkpoint']} ({out[i]['images']}) vs {out[j]['checkpoint']} ({out[j]['images']}):"
                      f" their log-likelihoods agree at tau {kendalltau(zs[i], zs[j])[0]:.3f}; averaged they rank"
                      f" at {kendalltau(zs[i] + zs[j], truth_acc)[0]:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
