"""`mnas supernet`: train a weight-sharing supernet, and measure how well it ranks sub-networks.

    mnas supernet train --data cifar10_10k.npz --width-mult 0.5 --epochs 10 --out runs/supernet.pt
    mnas supernet train ... --out runs/supernet.pt --resume          # continue after an interruption
    torchrun --nproc-per-node 4 -m mnas.cli supernet train ...             # DistributedDataParallel
    mnas supernet rank-check runs/supernet.pt --data cifar10_10k.npz --n 30 --workers 2 --json

`train` checkpoints after every epoch (atomically) and resumes exactly. `rank-check` trains the
sub-networks standalone (cached under --out, so an interrupted check continues) and reports Kendall
tau, Spearman rho and top-k overlap of inherited against standalone accuracy, overall and within
+-10% latency bands, with bootstrap intervals, beside MACs, parameters and latency, and the
seed-to-seed tau of standalone training (the noise ceiling).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mnas.cli._common import (
    UsageError,
    add_choice_options,
    add_skeleton_option,
    check_lut_file,
    check_space_options,
    emit_json,
    nonneg_int,
    positive_float,
    positive_int,
    space_from_args,
    table,
)
from mnas.cli._resume import (
    SUPERNET_SPACE,
    check_supernet_space,
    given_options,
    keep_source,
    resume_command,
    supernet_resume,
    track_given,
    write_supernet_sidecar,
)


def _space_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data and space (as for mnas search)")
    g.add_argument("--data", help="digits, cifar10/cifar100 (with --data-root), a .npz or an image folder (required;"
                                  " with --resume: the checkpoint's)")
    g.add_argument("--data-root", help="folder holding the CIFAR batches (for --data cifar10/cifar100)")
    g.add_argument("--val-fraction", type=float, default=0.2, help="training data held out for validation (default 0.2)")
    g.add_argument("--space", choices=("mnasnet", "layerwise", "nbmacro"), default="mnasnet",
                   help="mnasnet (factorized), layerwise (one op per layer) or nbmacro (NAS-Bench-Macro's space)")
    g.add_argument("--input-size", type=positive_int, help="resolution (default: the data's)")
    g.add_argument("--width-mult", "--width", type=positive_float, dest="width_mult",
                   help="scale every filter count (default 0.35 for images <= 16 px, else 1.0)")
    g.add_argument("--head", type=nonneg_int, help="head conv filters (default 1280; 256 for images <= 16 px)")
    g.add_argument("--strides", help="stem and block strides, e.g. 1,1,1,2,2,1,2,1 (default: adapted to the input size)")
    add_skeleton_option(g)
    add_choice_options(g)
    g.add_argument("--seed", type=nonneg_int, default=0,
                   help="seeds the validation split, the sampled sub-networks and the training (default 0)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("supernet", help="train a weight-sharing supernet; check how well it ranks sub-networks",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cmds = p.add_subparsers(dest="supernet_command", metavar="COMMAND")

    t = cmds.add_parser("train", help="train a supernet (sandwich rule, in-place distillation)")
    _space_args(t)
    g = t.add_argument_group("training")
    g.add_argument("--epochs", type=positive_int, default=10, help="epochs (default 10)")
    g.add_argument("--out", required=True, help="checkpoint file (written after every epoch)")
    g.add_argument("--resume", action="store_true",
                   help="continue --out where it stopped, with the settings it was trained with (--threads and"
                        " --device may change; other options must agree)")
    g.add_argument("--batch-size", type=positive_int, default=128, help="global batch (default 128)")
    g.add_argument("--lr", type=positive_float, help="learning rate (default 0.2 per 256 images)")
    g.add_argument("--warmup-epochs", type=float, default=1.0, help="epochs of the largest sub-network alone (default 1)")
    g.add_argument("--num-random", type=nonneg_int, default=2, help="random sub-networks per step (default 2)")
    g.add_argument("--no-distill", action="store_true", help="train the smaller sub-networks on labels, not the largest's output")
    g.add_argument("--no-sandwich", action="store_true",
                   help="train only --num-random sampled sub-networks per step, on the labels (single-path one-shot;"
                        " no largest/smallest, no distillation)")
    g.add_argument("--sampler", choices=("uniform", "stratified", "fair"), default="uniform",
                   help="how random sub-networks are drawn: uniform (default), stratified by latency band, or fair"
                        " (FairNAS: a step's sub-networks draw every op of every layer equally often; needs"
                        " --no-sandwich, and --num-random 3 on a space of 3 ops per layer is FairNAS's strict"
                        " fairness)")
    g.add_argument("--bands", type=positive_int, default=5, help="latency bands for --sampler stratified (default 5)")
    g.add_argument("--lut", help="latency lookup table for --sampler stratified (default: MACs)")
    g.add_argument("--sharing", choices=("shared", "separate"), default="shared",
                   help="shared (default): one superkernel per op family, a smaller kernel or expansion its centre"
                        " (Single-Path NAS); separate: weights of its own for every op of the space (FBNet)")
    g.add_argument("--eval-images", type=nonneg_int, default=500,
                   help="BN images for the per-epoch check of the largest and smallest (0: skip; default 500)")
    g.add_argument("--threads", type=positive_int, default=1, help="torch threads (default 1)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (under torchrun: cuda:LOCAL_RANK)")
    g.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA")
    t.add_argument("--json", action="store_true", help="print one JSON document at the end")
    t.add_argument("--quiet", action="store_true", help="no progress display")
    t.set_defaults(handler=cmd_train)
    track_given(t)

    r = cmds.add_parser("rank-check", help="inherited against standalone accuracy: tau, rho, bands, noise ceiling")
    r.add_argument("checkpoint", help="a supernet checkpoint from 'mnas supernet train'")
    r.add_argument("--data", required=True, help="the data the supernet was trained on")
    r.add_argument("--data-root", help="folder holding the CIFAR batches (for --data cifar10/cifar100)")
    r.add_argument("--val-fraction", type=float, default=0.2,
                   help="training data held out for validation, as the supernet was trained (default 0.2)")
    r.add_argument("--seed", type=nonneg_int, default=0,
                   help="seeds the validation split, the sub-networks drawn and their training (default 0)")
    r.add_argument("--n", type=positive_int,
                   help="random sub-networks (default 30, reference models added; with --ground-truth 250 of its networks)")
    r.add_argument("--ground-truth", metavar="FILE",
                   help="accuracies measured elsewhere (NAS-Bench-Macro's JSON as published, or a JSON/CSV of arch ->"
                        " accuracy, optionally per seed): no standalone training")
    r.add_argument("--bands", type=positive_int, default=5,
                   help="with --ground-truth: equal-count MACs bands for the within-band tau (default 5)")
    r.add_argument("--top-k", type=positive_int, help="top-k overlap (default 5; 10 with --ground-truth)")
    r.add_argument("--epochs", type=positive_float, default=5.0, help="standalone epochs ('fast' recipe; default 5)")
    r.add_argument("--batch-size", type=positive_int, default=128, help="standalone training batch (default 128)")
    r.add_argument("--noise", type=nonneg_int, default=8, help="sub-networks trained with a second seed (default 8)")
    r.add_argument("--images", type=positive_int, help="BN recalibration images (default: the evaluator's)")
    r.add_argument("--workers", type=positive_int, default=1, help="processes for the trainings (default 1)")
    r.add_argument("--lut", help="latency lookup table: latency bands and the latency predictor (default: MACs)")
    r.add_argument("--out", help="folder for the cached standalone results (default: next to the checkpoint)")
    r.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples for the intervals (default 1000)")
    r.add_argument("--json", action="store_true", help="print one JSON document")
    r.set_defaults(handler=cmd_rank_check)
    p.set_defaults(handler=lambda args: _missing(p))


def _missing(p: argparse.ArgumentParser) -> int:
    p.print_help(sys.stderr)
    return 2


def _data(args: argparse.Namespace):
    from mnas.train import load

    if not 0 <= args.val_fraction < 1:
        raise UsageError(f"--val-fraction {args.val_fraction}: expected a number in [0, 1)")
    return load(args.data, root=args.data_root, val_fraction=args.val_fraction, seed=args.seed)


def build_space(args: argparse.Namespace, data: Any):
    """The space --space and its options describe, for `data` (`space_from_args`: mnas search's defaults)."""
    return space_from_args(args, data.num_classes, data.input_size)


def _lut(path: str | None):
    if not path:
        return None
    from mnas.latency import LookupTable

    check_lut_file(path)
    return LookupTable.load(path)


def cmd_train(args: argparse.Namespace) -> int:
    import torch

    from mnas.oneshot.ddp import init_from_env, is_main, shutdown
    from mnas.oneshot.supernet import Supernet, build_supernet
    from mnas.oneshot.train import SupernetTrainConfig, train_supernet
    from mnas.train import recipe

    out = Path(args.out)
    if out.exists() and not args.resume:
        raise UsageError(f"{out} exists: add --resume to continue it, or choose another --out")
    if args.resume and not out.exists():
        raise UsageError(f"--resume: {out} does not exist")
    state = supernet_resume(args, out) if args.resume else None  # the checkpoint's settings, given options checked
    if state is None:
        check_space_options(args)  # an option the space does not take is named before a missing --data
    if args.data is None:
        raise UsageError("--data is required (the data to train the supernet on)")
    if args.no_sandwich and args.num_random < 1:
        raise UsageError("--no-sandwich trains only the sampled sub-networks: give --num-random 1 or more")
    if args.sampler == "fair" and not args.no_sandwich:
        raise UsageError("--sampler fair balances the ops only without the sandwich rule: add --no-sandwich (and"
                         " --num-random 3 for a space of 3 ops per layer)")
    if args.warmup_epochs < 0 or args.warmup_epochs > args.epochs:
        raise UsageError(f"--warmup-epochs {args.warmup_epochs}: expected a number in [0, --epochs={args.epochs}]")
    latency = _lut(args.lut)
    rank, world, device = init_from_env()
    try:
        data = _data(args)
        if state is not None:
            keep_source(data, (state.get("data") or {}).get("source") or {})
        if state is not None and not given_options(args) & {*SUPERNET_SPACE, "input_size"}:
            net = Supernet.from_config(state["config"])  # the checkpoint's space; its weights are loaded below
            space = net.space
        else:
            space = build_space(args, data)
            torch.manual_seed(args.seed)
            net = build_supernet(space, in_chans=data.channels, sharing=args.sharing)
            if state is not None:
                check_supernet_space(args, state, net.config(), out)
        train = recipe("fast", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, threads=args.threads,
                       seed=args.seed, input_size=args.input_size, amp=not args.no_amp,
                       device=device if world > 1 else args.device)
        config = SupernetTrainConfig(train=train, warmup_epochs=args.warmup_epochs, num_random=args.num_random,
                                     sandwich=not args.no_sandwich, distill=not args.no_distill,
                                     sampler=args.sampler, bands=args.bands,
                                     eval_images=args.eval_images)
        if state is not None:  # every stored setting (the CLI's and any other), with this run's threads and device
            stored = SupernetTrainConfig.from_dict({**SupernetTrainConfig().to_dict(), **state["train_config"]})
            config = stored.replace(train=stored.train.replace(threads=train.threads, device=train.device))
        elif is_main():
            write_supernet_sidecar(out, args)
        progress = _progress(args.quiet or args.json or not is_main())
        try:
            result = train_supernet(net, data, config, out, resume=args.resume, latency=latency, progress=progress,
                                    log=lambda m: print(m, file=sys.stderr) if is_main() else None)
        except KeyboardInterrupt:
            print(f"\nmnas: interrupted; the last finished epoch is saved in {out}. Resume with:"
                  f" {resume_command('supernet train', '--out', str(out))}", file=sys.stderr)
            return 130
        finally:
            close = getattr(progress, "close", None)
            if close:
                close()
    finally:
        shutdown()
    if not is_main() and world > 1:
        return 0
    if args.json:
        emit_json({"space": repr(space), **result})
        return 0
    last = result["history"][-1] if result["history"] else {}
    print(f"supernet: {out}   epochs: {result['epochs']}   steps: {result['steps']}   "
          f"{result['images_per_second']:.1f} img/s   {result['seconds']:.0f} s   world size: {result['world_size']}")
    if "val_accuracy_largest" in last:
        print(f"inherited val accuracy after BN recalibration: largest {last['val_accuracy_largest']:.4f}, "
              f"smallest {last['val_accuracy_smallest']:.4f}")
    return 0


def _progress(quiet: bool):
    from mnas.train.progress import ConsoleProgress

    class SupernetProgress(ConsoleProgress):
        """The proxy trainer's bar (loss, accuracy, images/s, time left in the epoch); each epoch's line
        adds the time left for the whole run."""

        def end_epoch(self, metrics: dict[str, Any]) -> None:
            super().end_epoch(metrics)
            if self.enabled:
                print(f"  time left: {metrics['eta_seconds']:.0f} s", file=sys.stderr, flush=True)

    return SupernetProgress(enabled=not quiet)


def cmd_rank_check(args: argparse.Namespace) -> int:
    import torch

    from mnas.oneshot.rank import rank_check
    from mnas.oneshot.train import load_supernet
    from mnas.train import recipe

    if not Path(args.checkpoint).is_file():
        raise UsageError(f"supernet checkpoint not found: {args.checkpoint}")
    truth = _ground_truth(args.ground_truth) if args.ground_truth else None
    latency = _lut(args.lut)
    torch.set_num_threads(1)
    try:
        net, state = load_supernet(args.checkpoint)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UsageError(f"{args.checkpoint}: not a usable supernet checkpoint ({str(exc).splitlines()[0][:200]})") from None
    data = _data(args)
    if data.num_classes != getattr(net.space, "num_classes", data.num_classes):
        raise UsageError(f"the supernet is for {net.space.num_classes} classes but --data has {data.num_classes}")
    if truth is not None:
        return _rank_check_truth(args, net, data, truth, latency)
    args.n = args.n or 30
    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix("").parent / (Path(args.checkpoint).stem + "-rank")
    standalone = recipe("fast", epochs=args.epochs, batch_size=args.batch_size, threads=1, seed=args.seed)
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    report = rank_check(net, data, n=args.n, recipe=standalone, out=out, workers=args.workers, latency=latency,
                        noise_subset=args.noise, seed=args.seed, num_images=args.images, n_resamples=args.bootstrap,
                        top_k=args.top_k or 5, log=log)
    if args.json:
        emit_json(report)
        return 0
    rows = _predictor_rows(report)
    if "noise_ceiling" in report:
        nc = report["noise_ceiling"]
        rows.append({"name": f"seed-to-seed (n={nc['n']})", "tau": f"{nc['tau']:.3f}",
                     "tau_ci": _ci(nc["tau_ci"]), "rho": f"{nc['rho']:.3f}", "rho_ci": _ci(nc["rho_ci"])})
    print(f"rank check: {report['n']} sub-networks, standalone 'fast' {args.epochs:g} epochs, "
          f"{report['num_images']} BN images, bands of +-10% {report['bands_by']}: sizes {report['bands']}")
    table(rows, [("predictor", "name"), ("tau", "tau"), ("95% CI", "tau_ci"), ("rho", "rho"), ("95% CI", "rho_ci"),
                 ("top-5", "top"), ("tau in bands", "bands")])
    if "noise_ceiling" in report and "icc" in report["noise_ceiling"]:
        nc = report["noise_ceiling"]
        print(f"standalone noise: seed sd {nc['seed_sd']:.4f} vs architecture sd {nc['arch_sd']:.4f}, intraclass"
              f" correlation {nc['icc']:.2f}: even a perfect predictor reaches tau of only about {nc['max_tau']:.2f}"
              f" against one seed of this recipe (train longer, or on more data, for a sharper ground truth)")
    print(f"report: {out / 'rank-check.json'}")
    return 0


def _predictor_rows(report: dict) -> list[dict]:
    """Table rows of inherited accuracy and each free predictor, as both rank checks print them."""
    loss = [_row("inherited -loss", report["inherited_loss"])] if "inherited_loss" in report else []
    smooth = report.get("inherited_smoothed")
    if smooth:
        name = "inherited -loss + marginal fit" if smooth["score"] == "likelihood" else "inherited + marginal fit"
        loss.append(_row(name, smooth))
    return [_row("inherited", report["inherited"])] + loss + [_row(name, s) for name, s in report["predictors"].items()]


def _ground_truth(path: str):
    from mnas.space.ground_truth import load_ground_truth

    try:
        truth = load_ground_truth(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if len(truth) < 4:  # Kendall tau, its interval and the bands are all NaN below that: said before any work
        raise UsageError(f"--ground-truth {path}: {len(truth)} distinct architectures: a rank check needs at least 4")
    return truth


def _rank_check_truth(args: argparse.Namespace, net: Any, data: Any, truth: Any, latency: Any) -> int:
    from mnas.oneshot.rank_truth import rank_check_truth

    out = Path(args.out) if args.out else Path(args.checkpoint).with_suffix("").parent / (Path(args.checkpoint).stem + "-rank")
    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        report = rank_check_truth(net, data, truth, n=args.n or 250, seed=args.seed, num_images=args.images,
                                  latency=latency, bands=args.bands, top_k=args.top_k or 10, n_resamples=args.bootstrap,
                                  workers=args.workers, out=out / "rank-check-truth.json", log=log)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        emit_json(report)
        return 0
    rows = _predictor_rows(report)
    if "noise_ceiling" in report:
        nc = report["noise_ceiling"]
        rows.append({"name": "seed-to-seed (ground truth)", "tau": f"{nc['tau']:.3f}", "tau_ci": _ci(nc["tau_ci"]),
                     "rho": f"{nc['rho']:.3f}", "rho_ci": _ci(nc["rho_ci"]),
                     "top": f"{next(v for k, v in nc.items() if k.startswith('top')):.2f}",
                     "bands": "", "macs_bands": f"{nc['in_macs_bands']['mean_tau']:.3f}"})
    k = args.top_k or 10
    print(f"rank check against {report['ground_truth']}: {report['n']} of {report['ground_truth_size']} networks"
          f" ({report['mapped']}), {report['num_images']} BN images, {report['num_eval']} evaluation images,"
          f" {report['subnets_per_minute']:.1f} sub-networks a minute")
    table(rows, [("predictor", "name"), ("tau", "tau"), ("95% CI", "tau_ci"), ("rho", "rho"), ("95% CI", "rho_ci"),
                 (f"top-{k}", "top"), (f"tau in +-10% {report['bands_by']} bands", "bands"),
                 (f"tau in {report['macs_bands']} MACs bands", "macs_bands")])
    print(report["verdict"])
    print(f"report: {out / 'rank-check-truth.json'}")
    return 0


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _row(name: str, s: dict[str, Any]) -> dict[str, str]:
    top = next((v for k, v in s.items() if k.startswith("top")), float("nan"))
    return {"name": name, "tau": f"{s['tau']:.3f}", "tau_ci": _ci(s["tau_ci"]), "rho": f"{s['rho']:.3f}",
            "rho_ci": _ci(s["rho_ci"]), "top": f"{top:.2f}", "bands": f"{s['in_bands']['mean_tau']:.3f}",
            "macs_bands": f"{s['in_macs_bands']['mean_tau']:.3f}" if "in_macs_bands" in s else ""}
