"""Issue 22: GDAS cells derived by discrete evaluation in the trained search net instead of the alphas'
arg-max (DARTS-PT's point, Wang et al. ICLR 2021: alpha magnitudes need not measure op strength).

For each finished search of `darts_converge.py` (``--tag``, GDAS, ``--seeds``), the saved search net
is loaded and, starting from the alpha cell (arg-max without ``none``), each edge in turn gets the op
whose discrete cell (`NB201SearchNet` mode "fixed") scores best on the search's own validation half
(batch norm recalibrated on 512 of its training images before each score); two sweeps at most. The
cell so chosen is trained with `darts_converge.py`'s standalone recipe (cached as tag
``<tag>-discrete``), so its figure sits beside the random cells' median in that script's table.

    python benchmarks/gdas_discrete.py --tag aux1nn --seeds 0 1 2
    python benchmarks/gdas_discrete.py --tag gunif --seeds 0 1 2     # the uniformly trained search nets
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from darts_cells import VAL_FRACTION  # noqa: E402
from darts_converge import DATA, run_train, space  # noqa: E402

from mnas.oneshot.darts import LEGACY_FIELDS, DartsConfig, _split, build_search_net  # noqa: E402
from mnas.train.augment import BatchTransform  # noqa: E402
from mnas.train.checkpoint import load_file  # noqa: E402


def cell_accuracy(net, ops: list[int], xt, xv, yv, transform) -> float:
    net.mode, net.fixed = "fixed", ops
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the recalibration batches
    net.train()
    with torch.no_grad():
        for i in range(0, 512, 128):
            net(transform(torch.from_numpy(xt[i:i + 128]), False))
        net.eval()
        hits = sum(int((net(transform(torch.from_numpy(xv[i:i + 250]), False)).argmax(1)
                        == torch.from_numpy(yv[i:i + 250])).sum()) for i in range(0, len(yv), 250))
    return hits / len(yv)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tag", required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", type=Path, default=Path("/tmp/darts_converge"))
    args = ap.parse_args()
    from mnas.train.data import load

    torch.set_num_threads(1)
    data, sp = load(DATA, val_fraction=VAL_FRACTION), space()
    names = list(sp.ops)
    choices = [i for i, o in enumerate(names) if o != "none"]
    for seed in args.seeds:
        rec = json.loads((args.out / f"search_{args.tag}_gdas_s{seed}.json").read_text())
        cfg = DartsConfig(**{**LEGACY_FIELDS, **rec["config"]})
        net = build_search_net(sp, cfg, data.channels)
        net.load_state_dict(load_file(args.out / "ckpt" / f"search_{args.tag}_gdas_s{seed}" / "search.pt")["net"])
        xt, _, xv, yv = _split(data, cfg)
        transform = BatchTransform(data.mean, data.std, data.augment)
        alpha = torch.tensor(rec["alphas"]["alpha"])
        alpha[:, names.index("none")] = -torch.inf
        ops = alpha.argmax(-1).tolist()
        start = (sp.decode(ops), best := cell_accuracy(net, ops, xt, xv, yv, transform))
        for _ in range(2):
            improved = False
            for edge in range(len(ops)):
                for op in choices:
                    if op != ops[edge]:
                        trial = [*ops[:edge], op, *ops[edge + 1:]]
                        acc = cell_accuracy(net, trial, xt, xv, yv, transform)
                        if acc > best + 1e-9:
                            best, ops, improved = acc, trial, True
            if not improved:
                break
        arch = sp.decode(ops)
        t = run_train(f"{args.tag}-discrete_gdas_s{seed}", str(arch), 3, 0, data, args.out)
        print(f"seed {seed}: alpha cell {start[0]} (search-net val {start[1]:.3f}) -> discrete {arch} ({best:.3f});"
              f" standalone test {t['test_accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
