"""Ranking quality of a supernet, measured: inherited against standalone accuracy.

`rank_check` trains K sub-networks standalone (random ones spread over latency bands, plus the
reference models that are in the space) and reports Kendall tau, Spearman rho and top-k overlap
between their inherited and standalone accuracies — over all, and within +-10% latency bands —
with bootstrap confidence intervals; beside them the tau of the free predictors (MACs, parameters,
latency) on the same sub-networks, and the seed-to-seed tau of standalone training on a subset
(the noise ceiling: no predictor can rank better than the training it is compared with).

Standalone trainings are the expensive part, so each result is cached as a JSON file per
(architecture, recipe, seed) in the output folder; an interrupted rank-check continues where it
stopped, and trainings can run on several processes.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mnas.oneshot.sampling import estimate_macs
from mnas.space import Arch, SearchSpace, as_arch, get_arch
from mnas.space.zoo import for_space
from mnas.train.checkpoint import atomic_write_json

__all__ = ["REFERENCES", "band_groups", "choose_archs", "rank_stats", "reference_archs", "reliability", "standalone_accuracy",
           "train_standalone"]

REFERENCES = ("mobilenetv2", "mnasnet_b1", "mnasnet_a1", "mnasnet_small")


def choose_archs(space: SearchSpace, n: int, predictor: Callable[[Arch], float], seed: int = 0, bands: int = 5,
                 pool: int = 2000) -> list[Arch]:
    """`n` distinct random architectures spread evenly over `bands` equal-width bands of
    `predictor` (a pool of `pool` uniform samples, binned; bands taken in turn, a random member
    each time), so the fast and slow ends are represented, not only the middle."""
    rng = np.random.default_rng([seed, 0x52414E4B])
    seen, archs = set(), []
    for _ in range(pool):
        a = space.sample(rng)
        if str(a) not in seen:
            seen.add(str(a))
            archs.append(a)
    values = np.array([predictor(a) for a in archs])
    edges = np.linspace(values.min(), values.max(), bands + 1)
    members = [list(rng.permutation(np.flatnonzero((values >= lo) & ((values < hi) | (b == bands - 1)))))
               for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True))]
    chosen: list[Arch] = []
    while len(chosen) < min(n, len(archs)):
        for m in members:
            if m and len(chosen) < n:
                chosen.append(archs[m.pop()])
    return chosen


def reference_archs(space: SearchSpace) -> dict[str, Arch]:
    """Zoo models at the space's width and strides that the space contains (with the space's
    activation where that is the only difference, named ``<zoo>_x<w>@<act>``)."""
    width = float(getattr(space, "width_mult", 1.0))
    size = int(getattr(space, "input_size", 224))
    found: dict[str, Arch] = {}
    for name in REFERENCES:
        base = for_space(get_arch(name, width), size, getattr(space, "strides", None))
        label = f"{name}_x{width:g}"
        act = getattr(space, "act", base.act)
        same_act = replace(base, act=act)
        same_globals = replace(same_act, dropout=getattr(space, "dropout", base.dropout),
                               head_chs=getattr(space, "head_chs", base.head_chs))
        for arch, tag in ((base, label), (same_act, f"{label}@{act}"), (same_globals, f"{label}@space")):
            try:
                found[tag] = space.decode(space.encode(arch))
                break
            except ValueError:
                continue
    return found


# -- standalone training, cached --------------------------------------------------------------------

def _cache_path(folder: Path, arch: str, recipe: dict[str, Any], seed: int, data_key: str) -> Path:
    digest = hashlib.sha256(json.dumps([arch, recipe, seed, data_key], sort_keys=True).encode()).hexdigest()[:20]
    return folder / f"standalone-{digest}.json"


def data_key(data: Any) -> str:
    """What a cached standalone result depends on in the data: its name, split sizes and a digest of
    the training and validation arrays — not the path it was loaded from, so the same file reached
    as ``../shared/x.npz`` or ``/work/shared/x.npz`` (or a copy) finds the same results."""
    digest = hashlib.sha256()
    for array in (data.x_train, data.y_train, data.x_val, data.y_val):
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(memoryview(array).cast("B"))
    return f"{getattr(data, 'name', '?')}:{len(data.y_train)}:{len(data.y_val)}:{digest.hexdigest()[:24]}"


def train_standalone(arch: str, data: Any, recipe: Any, seed: int) -> dict[str, Any]:
    """Train `arch` from scratch on `data` with `recipe` (a TrainConfig) and `seed`; validation accuracy."""
    import torch

    from mnas._util import seed_everything
    from mnas.models import build_model, count_params
    from mnas.train import train_proxy

    started = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        seed_everything(seed)
        model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
        result = train_proxy(model, data, recipe.replace(seed=seed))
    return {"arch": arch, "seed": seed, "ok": result.ok, "accuracy": result.accuracy, "failure": result.failure,
            "params": count_params(model),
            "macs": estimate_macs(as_arch(arch), data.input_size, data.num_classes, data.channels),
            "seconds": time.perf_counter() - started, "images_per_second": result.images_per_second,
            "recipe": recipe.to_dict()}


def _train_and_cache(arch: str, data: Any, recipe: Any, seed: int, path: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    result = train_standalone(arch, data, recipe, seed)
    atomic_write_json(result, path)
    return result


def standalone_accuracy(jobs: Sequence[tuple[str, int]], data: Any, recipe: Any, folder: str | Path, *,
                        workers: int = 1, log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Standalone results for (arch, seed) pairs, read from `folder` where cached, trained (and
    cached) otherwise — on `workers` processes. Same order as `jobs`."""
    log = log or (lambda _: None)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    recipe_key = {k: v for k, v in recipe.to_dict().items() if k not in ("threads", "device", "eval_batch_size")}
    key = data_key(data)
    paths = [_cache_path(folder, a, recipe_key, s, key) for a, s in jobs]
    results: list[dict[str, Any] | None] = [json.loads(p.read_text()) if p.is_file() else None for p in paths]
    todo = [i for i, r in enumerate(results) if r is None]
    log(f"standalone: {len(jobs) - len(todo)} cached, {len(todo)} to train")
    if todo and workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
            futures = {pool.submit(_train_and_cache, jobs[i][0], data, recipe, jobs[i][1], str(paths[i])): i for i in todo}
            for k, fut in enumerate(as_completed(futures), 1):
                results[futures[fut]] = fut.result()
                log(f"standalone {k}/{len(todo)}: acc {results[futures[fut]]['accuracy']}")
    else:
        for k, i in enumerate(todo, 1):
            results[i] = _train_and_cache(jobs[i][0], data, recipe, jobs[i][1], str(paths[i]))
            log(f"standalone {k}/{len(todo)}: acc {results[i]['accuracy']} in {results[i]['seconds']:.0f}s")
    return results  # type: ignore[return-value]


# -- statistics ---------------------------------------------------------------------------------------

def _tau(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import kendalltau

    t = kendalltau(a, b).statistic
    return float(t) if np.isfinite(t) else math.nan


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else math.nan


def top_k_overlap(pred: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Fraction of the true top-k (by `truth`) that are also in the top-k by `pred`."""
    k = min(k, len(pred))
    return len(set(np.argsort(-pred)[:k]) & set(np.argsort(-truth)[:k])) / k if k else math.nan


def _interval(stat: Callable[[np.ndarray, np.ndarray], float], a: np.ndarray, b: np.ndarray, n_resamples: int,
              seed: int) -> list[float]:
    """95% percentile bootstrap interval of `stat` over paired resamples (scipy.stats.bootstrap)."""
    from scipy.stats import bootstrap

    if len(a) < 4:
        return [math.nan, math.nan]
    res = bootstrap((a, b), stat, paired=True, vectorized=False, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    lo, hi = res.confidence_interval
    return [float(lo), float(hi)]


def rank_stats(pred: Sequence[float], truth: Sequence[float], *, top_k: int = 5, n_resamples: int = 1000,
               seed: int = 0) -> dict[str, Any]:
    """Kendall tau, Spearman rho (each with a 95% bootstrap interval) and top-k overlap of `pred`
    against `truth`."""
    a, b = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    return {"n": int(len(a)), "tau": _tau(a, b), "tau_ci": _interval(_tau, a, b, n_resamples, seed),
            "rho": _rho(a, b), "rho_ci": _interval(_rho, a, b, n_resamples, seed + 1),
            f"top{top_k}_overlap": top_k_overlap(a, b, top_k)}


def band_groups(latency: Sequence[float], width: float = 0.10, min_size: int = 4) -> list[list[int]]:
    """Indices grouped into latency bands of +-`width` around a centre: bands are consecutive
    intervals [c (1 - w), c (1 + w)] from the fastest up; bands with fewer than `min_size` members
    are dropped (no tau on three points)."""
    lat = np.asarray(latency, dtype=float)
    order = np.argsort(lat)
    groups, start = [], 0
    while start < len(order):
        lo = lat[order[start]]
        hi = lo * (1 + width) / (1 - width)
        end = start
        while end < len(order) and lat[order[end]] <= hi:
            end += 1
        groups.append([int(i) for i in order[start:end]])
        start = end
    return [g for g in groups if len(g) >= min_size]


def band_stats(pred: Sequence[float], truth: Sequence[float], groups: list[list[int]]) -> dict[str, Any]:
    """tau inside each band, and their mean weighted by the number of pairs."""
    a, b = np.asarray(pred, dtype=float), np.asarray(truth, dtype=float)
    per = []
    for g in groups:
        per.append({"n": len(g), "tau": _tau(a[g], b[g])})
    weights = [p["n"] * (p["n"] - 1) / 2 for p in per if np.isfinite(p["tau"])]
    taus = [p["tau"] for p in per if np.isfinite(p["tau"])]
    mean = float(np.average(taus, weights=weights)) if taus else math.nan
    return {"bands": per, "mean_tau": mean}


def free_predictors(archs: Sequence[Arch], space: SearchSpace, in_chans: int = 3,
                    latency: Any = None) -> dict[str, list[float]]:
    """MACs, parameters and (if a latency backend or predictor is given) latency of each arch."""
    from mnas.models import build_model, count_params

    size, classes = int(getattr(space, "input_size", 224)), int(getattr(space, "num_classes", 1000))
    out: dict[str, list[float]] = {
        "macs": [float(estimate_macs(a, size, classes, in_chans)) for a in archs],
        "params": [float(count_params(build_model(a, classes, in_chans))) for a in archs],
    }
    if latency is not None:
        if hasattr(latency, "predict"):
            out["latency_ms"] = [float(latency.predict(a)) for a in archs]
        else:
            out["latency_ms"] = [float(latency.measure(a, size, classes, in_chans=in_chans).median_ms) for a in archs]
    return out


def as_archs(items: Sequence[Arch | str]) -> list[Arch]:
    return [as_arch(a) for a in items]


def reliability(seed_a: Sequence[float], seed_b: Sequence[float]) -> dict[str, float]:
    """How much of the standalone accuracies' spread is the architectures' rather than the seed's, from
    two seeds of the same sub-networks: the seed-to-seed standard deviation, the standard deviation of
    the architectures' two-seed means, and the intraclass correlation ICC(1) (one-way, k = 2).
    `max_tau` bounds the Kendall tau against one seed of this recipe of any predictor of the seed-free
    accuracy (a supernet cannot know the seed): (2/pi) asin(sqrt ICC) under a normal model, 0 when
    ICC <= 0. A tau goal above it cannot be met with this recipe, however good the supernet."""
    return reliability_seeds(np.column_stack([np.asarray(seed_a, dtype=float), np.asarray(seed_b, dtype=float)]))


def reliability_seeds(per_arch: Sequence[Sequence[float]]) -> dict[str, float]:
    """`reliability` over k >= 2 seeds per architecture: the first k of each, k the fewest any has
    (a balanced one-way design); ICC(1) = (MSB - MSW) / (MSB + (k - 1) MSW), the architecture sd
    that of the k-seed means; ``k`` is returned with the figures."""
    k = min((len(v) for v in per_arch), default=0)
    if len(per_arch) < 2 or k < 2:
        raise ValueError(f"reliability needs two seeds of at least 2 sub-networks, got {len(per_arch)} with"
                         f" {k} seed(s) in common")
    values = np.array([list(v)[:k] for v in per_arch], dtype=float)
    n = len(values)
    means = values.mean(axis=1)
    ms_between = k * float(((means - values.mean()) ** 2).sum()) / (n - 1)
    ms_within = float(((values - means[:, None]) ** 2).sum()) / (n * (k - 1))
    total = ms_between + (k - 1) * ms_within
    icc = (ms_between - ms_within) / total if total > 0 else float("nan")
    bound = 2 / math.pi * math.asin(math.sqrt(icc)) if icc > 0 else 0.0
    return {"seed_sd": math.sqrt(ms_within), "arch_sd": float(means.std(ddof=1)), "icc": icc,
            "max_tau": bound if math.isfinite(icc) else float("nan"), "k": k}


# -- the check ------------------------------------------------------------------------------------------

def rank_report(inherited: Sequence[float], standalone: Sequence[float], predictors: dict[str, Sequence[float]],
                band_by: Sequence[float], noise: tuple[Sequence[float], Sequence[float]] | None = None, *,
                band_width: float = 0.10, top_k: int = 5, n_resamples: int = 1000, seed: int = 0,
                inherited_loss: Sequence[float] | None = None) -> dict[str, Any]:
    """Inherited accuracy's ranking quality against `standalone`, beside each free predictor's, over
    all and within +-`band_width` bands of `band_by` (latency, or MACs without a latency source);
    `noise`: (seed A, seed B) standalone accuracies of a subset, whose tau is the noise ceiling.
    `inherited_loss`: the same evaluations' mean cross-entropy; its negation (the inherited
    log-likelihood) is ranked too, as ``report["inherited_loss"]``: it uses every image's confidence,
    not just the argmax, and ranked NAS-Bench-Macro better than inherited accuracy from half the
    evaluation images (docs/design/nbmacro.md)."""
    groups = band_groups(band_by, band_width)
    report: dict[str, Any] = {"n": len(standalone), "band_width": band_width,
                              "bands": [len(g) for g in groups]}
    report["inherited"] = {**rank_stats(inherited, standalone, top_k=top_k, n_resamples=n_resamples, seed=seed),
                           "in_bands": band_stats(inherited, standalone, groups)}
    if inherited_loss is not None:
        neg = [-float(v) for v in inherited_loss]
        report["inherited_loss"] = {**rank_stats(neg, standalone, top_k=top_k, n_resamples=n_resamples, seed=seed),
                                    "in_bands": band_stats(neg, standalone, groups)}
    report["predictors"] = {}
    for name, values in predictors.items():
        report["predictors"][name] = {**rank_stats(values, standalone, top_k=top_k, n_resamples=n_resamples, seed=seed),
                                      "in_bands": band_stats(values, standalone, groups)}
    if noise is not None and len(noise[0]) >= 2:
        report["noise_ceiling"] = rank_stats(noise[0], noise[1], top_k=top_k, n_resamples=n_resamples, seed=seed)
        report["noise_ceiling"]["mean_abs_diff"] = float(np.mean(np.abs(np.subtract(noise[0], noise[1]))))
        report["noise_ceiling"].update(reliability(noise[0], noise[1]))
    return report


def rank_check(net: Any, data: Any, *, n: int = 30, recipe: Any = None, out: str | Path = "rank-check",
               workers: int = 1, latency: Any = None, noise_subset: int = 8, seed: int = 0,
               num_images: int | None = None, references: bool = True, band_width: float = 0.10, top_k: int = 5,
               n_resamples: int = 1000, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train `n` random sub-networks of `net`'s space (spread over latency bands) and the reference
    models it contains standalone with `recipe` (default: `mnas.train.recipe("fast", epochs=5)`),
    `noise_subset` of them with a second seed, and compare with their inherited accuracy (see
    `rank_report`). Standalone results are cached in `out` (resumable); the report is written to
    ``out/rank-check.json`` and returned."""
    from mnas.oneshot.evaluate import DEFAULT_CALIBRATION_IMAGES, evaluate_subnets
    from mnas.oneshot.sampling import make_predictor
    from mnas.train import recipe as make_recipe

    log = log or (lambda _: None)
    if n < 2:
        raise ValueError(f"n={n}: a rank check needs at least 2 sub-networks")
    recipe = recipe or make_recipe("fast", epochs=5)
    space = net.space
    in_chans = getattr(data, "channels", 3)
    predictor = make_predictor(space, latency, in_chans)
    archs = choose_archs(space, n, predictor, seed)
    names = [f"random{i}" for i in range(len(archs))]
    if references:
        have = {str(a) for a in archs}
        for name, arch in reference_archs(space).items():
            if str(arch) not in have:
                archs.append(arch)
                names.append(name)
    keys = [str(a) for a in archs]
    noise_subset = min(noise_subset, len(archs))
    jobs = [(a, seed) for a in keys] + [(a, seed + 1) for a in keys[:noise_subset]]
    started = time.perf_counter()
    trained = standalone_accuracy(jobs, data, recipe, out, workers=workers, log=log)
    standalone_seconds = time.perf_counter() - started
    failed = [r["arch"] for r in trained if not r["ok"]]
    if failed:
        raise ValueError(f"{len(failed)} standalone trainings failed (first: {failed[0][:80]}): use another recipe")
    standalone = [r["accuracy"] for r in trained[:len(keys)]]
    noise = ([r["accuracy"] for r in trained[:noise_subset]], [r["accuracy"] for r in trained[len(keys):]])
    started = time.perf_counter()
    results = evaluate_subnets(net, keys, data, num_images=num_images or DEFAULT_CALIBRATION_IMAGES, workers=workers)
    inherited_seconds = time.perf_counter() - started
    inherited = [r.accuracy for r in results]
    predictors = free_predictors(archs, space, in_chans, latency)
    band_by = predictors.get("latency_ms", predictors["macs"])
    report = rank_report(inherited, standalone, predictors, band_by, noise, band_width=band_width, top_k=top_k,
                         n_resamples=n_resamples, seed=seed, inherited_loss=[r.loss for r in results])
    report.update({
        "bands_by": "latency_ms" if "latency_ms" in predictors else "macs",
        "recipe": recipe.to_dict(), "num_images": results[0].num_images, "num_eval": results[0].num_eval,
        "standalone_seconds": standalone_seconds, "inherited_seconds": inherited_seconds,
        "subnets_per_minute": 60 * len(keys) / max(inherited_seconds, 1e-9),
        "archs": [{"name": nm, "arch": k, "inherited": i, "inherited_loss": r.loss, "standalone": s,
                   **{p: v[j] for p, v in predictors.items()}}
                  for j, (nm, k, i, s, r) in enumerate(zip(names, keys, inherited, standalone, results, strict=True))],
    })
    atomic_write_json(report, Path(out) / "rank-check.json")
    return report
