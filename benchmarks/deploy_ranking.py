"""Kendall tau between runtimes and precisions over sampled architectures of the factorized space.

    OMP_NUM_THREADS=1 python benchmarks/deploy_ranking.py --n 200 --size 224 \\
        --backends onnxruntime/fp32,onnxruntime/int8 --out runs/ranking_ort.json

Resumable (same --out and settings). Prints the summary as JSON: tau for every pair of backends,
the int8/fp32 latency ratio per runtime (median, range). Issue 20 item 5.

Two processes on two cores: give the second another --seed and --out (another sample of the same
space), then pool them: ``--pool OTHER.json`` adds the rows of comparisons with the same space and
backends (an architecture measured twice counts once, as --out measured it), and ``--no-measure``
only summarises what the files hold.
"""

from __future__ import annotations

import argparse
import json
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--backends", default="onnxruntime/fp32,onnxruntime/int8")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.add_argument("--plot", help="also draw the latencies against the first backend's (PNG)")
    p.add_argument("--pool", nargs="+", default=[], metavar="FILE",
                   help="other comparisons of the same space and backends (other seeds) to summarise with --out")
    p.add_argument("--no-measure", action="store_true", help="measure nothing: summarise --out (and --pool)")
    args = p.parse_args()

    from mnas.latency import get_backend
    from mnas.latency.ranking import compare_rankings, summarize
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(args.num_classes, args.size, width_mult=args.width)
    backends = {}
    for item in args.backends.split(","):
        runtime, _, precision = item.partition("/")
        backends[item] = get_backend(runtime, threads=1, precision=precision or "fp32")

    def progress(done: int, total: int, what: str) -> None:
        print(f"{done}/{total} {what}", file=sys.stderr, flush=True)

    if args.no_measure:
        with open(args.out) as f:
            data = json.load(f)
    else:
        compare_rankings(space, backends, args.n, args.seed, args.out, progress)
        with open(args.out) as f:
            data = json.load(f)
    seen, seeds = {r["arch"] for r in data["rows"]}, [data["seed"]]
    for path in args.pool:
        with open(path) as f:
            other = json.load(f)
        same = {k: other.get(k) for k in ("format", "space_type", "space", "backends")}
        if same != {k: data.get(k) for k in same}:
            print(f"--pool {path}: another space or other backends than {args.out}", file=sys.stderr)
            return 2
        seeds.append(other["seed"])
        rows = [r for r in other["rows"] if r["arch"] not in seen]
        seen |= {r["arch"] for r in rows}
        data["rows"] += rows
    summary = summarize(data)
    summary["pooled_seeds"] = seeds
    summary["n"] = summary["measured"]  # the pooled count, not --out's sample size
    summary["kendall_ci95"] = bootstrap_ci(summary["latency_ms"])
    if args.plot:
        from mnas.latency.ranking import plot_rankings

        plot_rankings(summary, args.plot)
    summary.pop("archs")
    summary.pop("latency_ms")
    for ratio in summary["int8_over_fp32"].values():
        ratio.pop("per_arch")
    print(json.dumps(summary, indent=1))
    return 0


def bootstrap_ci(latency_ms: dict) -> dict:
    """95% bootstrap interval (paired, over architectures) of Kendall tau for every pair of backends."""
    from itertools import combinations

    from mnas.oneshot.rank import rank_stats

    return {f"{a} vs {b}": rank_stats(latency_ms[a], latency_ms[b])["tau_ci"] for a, b in combinations(latency_ms, 2)}


if __name__ == "__main__":
    raise SystemExit(main())
