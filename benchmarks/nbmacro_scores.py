"""Which score of one inherited evaluation ranks NAS-Bench-Macro best, and what the supernet gets
wrong (issue 19, item 2; the figures of docs/design/nbmacro.md, "Item 2's levers").

For each checkpoint: the 250 networks of `nbmacro_rank.py` (seed 0) are taken out of the supernet,
their BN recalibrated on 500 training images, and their logits on the 2,000 validation images kept
(``<checkpoint>.logits-<images>.npz``, float16; a rerun reuses them). From the same logits:

- Kendall tau [95% bootstrap interval], top-10 overlap and tau inside 5 MACs bands of inherited
  accuracy, of the inherited log-likelihood (negated mean cross-entropy) and of the mean probability
  of the true class; a paired bootstrap of tau(log-likelihood) - tau(accuracy);
- both scores on random subsets of 250 / 500 / 1,000 of the validation images (8 draws each);
- the additive part (a ridge fit on one-hot tokens, alpha 1) of the truth and of the supernet's
  scores: what each gains from k3e3 over skip and from k5e6 over k3e3, summed over the 8 layers, and
  the fit's R2;
- the log-likelihood combined with MACs (standardised, + c z(log MACs)), a free predictor;
- with several checkpoints: how far their log-likelihoods agree (Kendall tau), and how their
  averaged standardised scores rank;
- each score smoothed by its marginal-effects fit on one-hot tokens (`+ marginal fit`: the mean of the
  score and `mnas.strategies.boundary.marginal_fit` of the 250 scores; stop 29), and that fit alone
  over every distinct network of the benchmark (predicted from the 250, so 3,719 of them unseen).

``--sample-seed S`` draws another 250 networks (cache ``<checkpoint>.logits-<images>-s<S>.npz``).

    python benchmarks/nbmacro_scores.py runs/a.pt runs/b.pt --workers 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import DATA, TRUTH  # noqa: E402

_NET: dict = {}


def _init(path: str) -> None:
    import torch

    from mnas.oneshot.train import load_supernet

    torch.set_num_threads(1)
    _NET["net"] = load_supernet(path)[0].eval()


def _logits(job: tuple) -> np.ndarray:
    import torch

    from mnas.oneshot.evaluate import _prepared, recalibrate_bn
    from mnas.train.loop import CPU_CHANNELS_LAST

    arch, data, images = job
    prep = _prepared(data, images, "val", 250, 0, torch.device("cpu"), CPU_CHANNELS_LAST, None)
    sub = _NET["net"].subnet(arch)
    if CPU_CHANNELS_LAST:
        sub = sub.to(memory_format=torch.channels_last)
    recalibrate_bn(sub, prep.calibration)
    with torch.inference_mode():
        return torch.cat([sub(x).float() for x in prep.eval_x]).numpy().astype(np.float16)


def logits_for(ckpt: str, archs: list[str], data, images: int, workers: int,
               tag: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(n, val, classes) logits of `archs` in the supernet `ckpt`, and the validation labels; cached."""
    cache = Path(f"{ckpt}.logits-{images}{tag}.npz")
    y = np.asarray(data.y_val)
    if cache.is_file():
        hit = np.load(cache, allow_pickle=False)
        if list(hit["archs"]) == archs and np.array_equal(hit["val_y"], y):
            return hit["val_logits"].astype(np.float32), y
    jobs = [(a, data, images) for a in archs]
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init,
                                 initargs=(ckpt,)) as pool:
            out = list(pool.map(_logits, jobs, chunksize=4))
    else:
        _init(ckpt)
        out = [_logits(j) for j in jobs]
    logits = np.stack(out)
    np.savez(cache, archs=np.array(archs), val_logits=logits, val_y=y)
    return logits.astype(np.float32), y


def scores(logits: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    from scipy.special import log_softmax

    lp = log_softmax(logits, axis=-1)[:, np.arange(len(y)), y]
    return {"accuracy": (logits.argmax(-1) == y).mean(1), "log-likelihood": lp.mean(1),
            "p(true class)": np.exp(lp).mean(1)}


def additive(tokens: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """(k3e3 - skip, k5e6 - k3e3) summed over the layers, in v's units, and R2 of the ridge fit."""
    x = np.concatenate([np.eye(3)[tokens[:, j]] for j in range(tokens.shape[1])], 1)
    xm, ym = x.mean(0), v.mean()
    xc = x - xm
    w = np.linalg.solve(xc.T @ xc + np.eye(x.shape[1]), xc.T @ (v - ym))
    fit = xc @ w + ym
    w = w.reshape(-1, 3)
    r2 = 1 - ((v - fit) ** 2).sum() / ((v - v.mean()) ** 2).sum()
    return float((w[:, 1] - w[:, 0]).sum()), float((w[:, 2] - w[:, 1]).sum()), float(r2)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="+")
    p.add_argument("--data", default=str(DATA))
    p.add_argument("--truth", default=str(TRUTH))
    p.add_argument("--n", type=int, default=250)
    p.add_argument("--images", type=int, default=500, help="BN recalibration images")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the 250 networks drawn (default 0)")
    args = p.parse_args()
    if args.n < 10 or args.images < 1 or args.bootstrap < 10 or args.workers < 1:
        print("--n >= 10, --images >= 1, --bootstrap >= 10 and --workers >= 1", file=sys.stderr)
        return 2
    if not Path(args.truth).is_file() or not Path(args.data).is_file():
        print(f"needs {args.truth} and {args.data}", file=sys.stderr)
        return 2

    import torch
    from scipy.stats import kendalltau

    from mnas.oneshot.rank import band_stats, rank_stats
    from mnas.oneshot.rank_truth import _sample, free_predictors, quantile_groups
    from mnas.oneshot.train import load_supernet
    from mnas.space import as_arch
    from mnas.space.ground_truth import load_ground_truth
    from mnas.space.presets import nas_bench_macro_space
    from mnas.strategies.boundary import marginal_fit
    from mnas.train import load

    torch.set_num_threads(1)
    truth = load_ground_truth(args.truth)
    data = load(args.data, val_fraction=0.2, seed=0)
    entries = [truth.entries[i] for i in _sample(truth, args.n, args.sample_seed)]
    acc = np.array([e.accuracy for e in entries])
    tokens = np.array([e.tokens for e in entries])
    distinct = list({e.arch: e for e in reversed(truth.entries)}.values())
    macs = np.array(free_predictors([as_arch(e.arch) for e in entries], nas_bench_macro_space(), 3, None)["macs"], float)
    groups = quantile_groups(macs, 5)
    rng = np.random.default_rng(0)
    k3, k5, r2 = additive(tokens, 100 * acc)
    print(f"# {truth.name}: {len(entries)} networks (seed {args.sample_seed}); {args.images} BN images,"
          f" {len(data.y_val)} validation images; truth: k3e3 over skip {k3:.2f} points, k5e6 over k3e3 {k5:.2f}"
          f" (share {k5 / k3:.3f}), additive R2 {r2:.2f}")
    standard: list[np.ndarray] = []
    for ckpt in args.checkpoints:
        net, state = load_supernet(ckpt)
        archs = [truth.arch_in(e, net.space) for e in entries]
        tag = f"-s{args.sample_seed}" if args.sample_seed else ""
        logits, y = logits_for(ckpt, archs, data, args.images, args.workers, tag)
        print(f"\n## {ckpt}: {state.get('epoch')} epochs, {state.get('seconds', 0) / 60:.1f} min of training;"
              f" {json_config(state)}")
        sc = scores(logits, y)
        print(f"{'score':<30} {'tau':>6} {'95% CI':>15} {'top-10':>7} {'tau in 5 MACs bands':>20}"
              f" {'k5e6/k3e3 share':>16} {'additive R2':>12}")
        onehot = np.eye(3)[tokens].reshape(len(tokens), -1)
        for name in list(sc):
            sc[f"{name} + marginal fit"] = 0.5 * (sc[name] + marginal_fit(onehot, sc[name])(onehot))
        for name, v in sc.items():
            s = rank_stats(v, acc, top_k=10, n_resamples=args.bootstrap)
            a3, a5, ar2 = additive(tokens, v)
            print(f"{name:<30} {s['tau']:6.3f} [{s['tau_ci'][0]:5.3f}, {s['tau_ci'][1]:5.3f}] {s['top10_overlap'] * 10:5.0f}/10"
                  f" {band_stats(v, acc, groups)['mean_tau']:20.3f} {a5 / a3:16.3f} {ar2:12.2f}")
        all_tokens = np.array([e.tokens for e in distinct])
        all_fit = marginal_fit(onehot, sc["log-likelihood"])(np.eye(3)[all_tokens].reshape(len(all_tokens), -1))
        print(f"the log-likelihood's marginal fit over all {len(distinct)} distinct networks (predicted from these"
              f" {len(entries)}): tau {kendalltau(all_fit, [e.accuracy for e in distinct])[0]:.3f}")
        d = []
        for _ in range(args.bootstrap):
            i = rng.integers(0, len(acc), len(acc))
            d.append(kendalltau(sc["log-likelihood"][i], acc[i])[0] - kendalltau(sc["accuracy"][i], acc[i])[0])
        d = np.array(d)
        diff = kendalltau(sc["log-likelihood"], acc)[0] - kendalltau(sc["accuracy"], acc)[0]
        print(f"tau(log-likelihood) - tau(accuracy) = {diff:+.4f}: paired bootstrap s.d. {d.std():.4f}, 95%"
              f" [{np.percentile(d, 2.5):+.4f}, {np.percentile(d, 97.5):+.4f}], share <= 0: {np.mean(d <= 0):.3f}")
        for n in (250, 500, 1000):
            if n >= len(y):
                continue
            taus: dict[str, list[float]] = {"accuracy": [], "log-likelihood": []}
            for _ in range(8):
                keep = rng.choice(len(y), n, replace=False)
                sub = scores(logits[:, keep], y[keep])
                for name in taus:
                    taus[name].append(kendalltau(sub[name], acc)[0])
            print(f"{n} validation images (8 draws): " + ", ".join(
                f"{k} {np.mean(v):.3f} +- {np.std(v, ddof=1):.3f} sd" for k, v in taus.items()))
        ll = sc["log-likelihood"]
        z_ll, z_macs = (ll - ll.mean()) / ll.std(), (np.log(macs) - np.log(macs).mean()) / np.log(macs).std()
        print("log-likelihood + c z(log MACs): " + ", ".join(
            f"c {c}: tau {kendalltau(z_ll + c * z_macs, acc)[0]:.3f}, bands"
            f" {band_stats(z_ll + c * z_macs, acc, groups)['mean_tau']:.3f}" for c in (0.1, 0.25, 0.5)))
        standard.append(z_ll)
    for i in range(len(standard)):
        for j in range(i + 1, len(standard)):
            print(f"{args.checkpoints[i]} vs {args.checkpoints[j]}: log-likelihoods agree at tau"
                  f" {kendalltau(standard[i], standard[j])[0]:.3f}; averaged they rank at"
                  f" {kendalltau(standard[i] + standard[j], acc)[0]:.3f}")
    return 0


def json_config(state: dict) -> str:
    t = state.get("train_config", {})
    width = state.get("config", {}).get("space", {}).get("settings", {}).get("width_mult")
    return ", ".join(f"{k} {t.get(k)}" for k in ("sandwich", "distill", "num_random", "sampler")) + f", width {width}"


if __name__ == "__main__":
    sys.exit(main())
