"""Kendall tau between runtimes and precisions over sampled architectures of the factorized space.

    OMP_NUM_THREADS=1 python benchmarks/deploy_ranking.py --n 200 --size 224 \\
        --backends onnxruntime/fp32,onnxruntime/int8 --out runs/ranking_ort.json

Resumable (same --out and settings). Prints the summary as JSON: tau for every pair of backends,
the int8/fp32 latency ratio per runtime (median, range). Issue 20 item 5.
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
    args = p.parse_args()

    from mnas.latency import get_backend
    from mnas.latency.ranking import compare_rankings
    from mnas.space import MnasNetSpace

    space = MnasNetSpace(args.num_classes, args.size, width_mult=args.width)
    backends = {}
    for item in args.backends.split(","):
        runtime, _, precision = item.partition("/")
        backends[item] = get_backend(runtime, threads=1, precision=precision or "fp32")

    def progress(done: int, total: int, what: str) -> None:
        print(f"{done}/{total} {what}", file=sys.stderr, flush=True)

    summary = compare_rankings(space, backends, args.n, args.seed, args.out, progress)
    if args.plot:
        from mnas.latency.ranking import plot_rankings

        plot_rankings(summary, args.plot)
    summary.pop("archs")
    summary.pop("latency_ms")
    for ratio in summary["int8_over_fp32"].values():
        ratio.pop("per_arch")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
