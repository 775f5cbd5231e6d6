"""Latency of zoo networks in ONNX Runtime, LiteRT and ExecuTorch, fp32 and int8, one thread.

    OMP_NUM_THREADS=1 python benchmarks/deploy_latency.py --models mobilenetv2_x0.5 --sizes 32,224 --out figs.json

Each row: median and CV (the shared protocol, thread CPU clock), wall median, conversion seconds, and
the load average when it was taken (the figures are only comparable on a quiet machine). A runtime
that is not installed is skipped with a note. Issue 20's closing-note figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="mobilenetv2_x0.5,mnasnet_a1_x0.5,mnasnet_b1_x0.5,mnasnet_small")
    p.add_argument("--sizes", default="32,224")
    p.add_argument("--runtimes", default="onnxruntime,litert,executorch")
    p.add_argument("--precisions", default="fp32,int8")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--out", help="write the rows as JSON here too")
    args = p.parse_args()

    from mnas.latency import get_backend
    from mnas.space import get_arch

    rows = []
    for model in args.models.split(","):
        arch = get_arch(model)
        for size in (int(s) for s in args.sizes.split(",")):
            for runtime in args.runtimes.split(","):
                for precision in args.precisions.split(","):
                    try:
                        backend = get_backend(runtime, threads=1, precision=precision)
                    except ImportError as exc:
                        print(f"skip {runtime}: {exc}", file=sys.stderr)
                        continue
                    start = time.perf_counter()
                    r = backend.measure(arch, size, args.num_classes)
                    row = {"model": model, "input_size": size, "runtime": runtime, "precision": precision,
                           "median_ms": r.median_ms, "cv": r.cv, "iqr_ms": r.iqr_ms, "n": r.n, "clock": r.clock,
                           "wall_median_ms": r.wall_median_ms, "seconds": time.perf_counter() - start,
                           "loadavg": os.getloadavg()[0]}
                    rows.append(row)
                    print(f"{model:18s} {size:4d} {runtime:12s} {precision:5s} {r.median_ms:9.3f} ms"
                          f"  CV {100 * r.cv:5.1f}%  wall {r.wall_median_ms:9.3f} ms  ({row['seconds']:.0f} s,"
                          f" load {row['loadavg']:.1f})", flush=True)
                    if args.out:
                        with open(args.out, "w") as f:
                            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
