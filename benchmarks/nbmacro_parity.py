"""Parity of `mnas.space.presets.nas_bench_macro_space` with NAS-Bench-Macro: every one of the 6,561
keys is built (`mnas.build_model`) and its parameter count compared with the file's; the MACs mnas
counts are compared with the file's FLOPs (the ratio, and the Kendall tau between the two).

    python benchmarks/nbmacro_parity.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _nbmacro import TRUTH  # noqa: E402


def main() -> int:
    from scipy.stats import kendalltau

    from mnas.models import build_model, count_params
    from mnas.oneshot.sampling import estimate_macs
    from mnas.space.presets import nas_bench_macro_space

    if not TRUTH.is_file():
        print(f"needs {TRUTH}", file=sys.stderr)
        return 2
    doc = json.loads(TRUTH.read_text())
    space = nas_bench_macro_space()
    started = time.perf_counter()
    mismatched, macs, flops = [], [], []
    built: dict[str, int] = {}
    for key in sorted(doc):
        arch = space.decode([int(c) for c in key])
        text = str(arch)
        if text not in built:
            built[text] = count_params(build_model(arch, 10))
        if built[text] != doc[key]["params"]:
            mismatched.append((key, built[text], doc[key]["params"]))
        macs.append(estimate_macs(arch, 32, 10, 3))
        flops.append(doc[key]["flops"])
    macs, flops = np.array(macs, float), np.array(flops, float)
    print(f"{len(doc)} keys, {len(built)} distinct networks built in {time.perf_counter() - started:.0f} s")
    print(f"parameter counts equal to the file's: {len(doc) - len(mismatched)} of {len(doc)}")
    for key, ours, theirs in mismatched[:10]:
        print(f"  {key}: mnas {ours:,} vs file {theirs:,}")
    print(f"mnas MACs / file FLOPs: median {np.median(macs / flops):.4f} (range {np.min(macs / flops):.4f}-"
          f"{np.max(macs / flops):.4f}); Kendall tau {kendalltau(macs, flops).statistic:.4f}")
    return 0 if not mismatched else 1


if __name__ == "__main__":
    sys.exit(main())
