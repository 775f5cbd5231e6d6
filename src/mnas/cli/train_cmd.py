"""`mnas train ARCH`: full training (checkpoint every epoch, --resume) or one proxy run (--recipe proxy).

`--recipe proxy` (or `--proxy`) is the search's own trainer with the search's defaults, so
`mnas train ARCH --recipe proxy --seed S` reproduces the accuracy `mnas search --seed S` recorded
for ARCH: the same validation split (PROXY_VAL_FRACTION, split seed S), the same training seed
(`mnas.evaluate.trial_seed(S, ARCH)`), the same 3 epochs of batch 32 at lr 0.05 on one thread.
With `--out DIR` it also writes DIR/model.pt (the format `train_full` writes: `mnas export --weights`
takes it) and DIR/metrics.json, so exporting what a search recorded is `mnas train <trial arch>
--recipe proxy --seed S --out DIR` then `mnas export --weights DIR/model.pt`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mnas.cli._common import (
    UsageError,
    check_data_args,
    emit_json,
    load_run_checkpoint,
    nonneg_int,
    positive_float,
    positive_int,
    resolve_arch,
)
from mnas.cli._resume import keep_source, resume_command, track_given, train_resume


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one architecture (full training with checkpoints, or --recipe proxy)",
                       description="Train ARCH on a data set. Full training writes DIR/checkpoint.pt every epoch"
                                   " and DIR/model.pt at the end. --recipe proxy runs the search's proxy training"
                                   " instead and reproduces the accuracy 'mnas search --seed S' recorded for ARCH;"
                                   " with --out DIR it writes DIR/model.pt (for 'mnas export --weights') and"
                                   " DIR/metrics.json.")
    p.add_argument("arch", metavar="ARCH", nargs="?",
                   help="zoo name, canonical string or JSON file (with --resume: the checkpoint's)")
    p.add_argument("--data", help="'digits' (default), 'cifar10', 'cifar100', a .npz file or an image folder")
    p.add_argument("--data-root", help="folder of the official CIFAR batches (with --data cifar10/cifar100)")
    p.add_argument("--download", action="store_true", help="download and verify CIFAR into --data-root if missing")
    p.add_argument("--out", help="output directory (checkpoint.pt, model.pt, metrics.json; with --recipe proxy: model.pt"
                                 " and metrics.json, optional)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run checkpointed in --out with the settings it was trained with (--threads and"
                        " --stop-after may change; other options must agree)")
    p.add_argument("--recipe", choices=("fast", "paper", "proxy"),
                   help="fast (default): 30 epochs for small data on a CPU; paper: MnasNet's 350-epoch recipe;"
                        " proxy: one run of the search's candidate training (same split, seed and settings as"
                        " 'mnas search'), reporting validation accuracy")
    p.add_argument("--proxy", action="store_true", help="the same as --recipe proxy")
    p.add_argument("--epochs", type=positive_float, help="epochs (default: the recipe's, 30 fast / 350 paper / 3 proxy)")
    p.add_argument("--steps", type=positive_int, help="a --proxy run's budget in steps instead of epochs")
    p.add_argument("--batch-size", type=positive_int,
                   help="images per step (default: the recipe's, 128 fast and paper / 32 proxy)")
    p.add_argument("--lr", type=positive_float, help="learning rate at the batch size (default: the recipe's per"
                                                     " 256 images, scaled)")
    p.add_argument("--weight-decay", type=float, help="L2 weight decay (default: the recipe's, 5e-5 fast / 1e-5 paper)")
    p.add_argument("--label-smoothing", type=float, help="label smoothing (default: the recipe's, 0.1)")
    p.add_argument("--ema-decay", type=float, help="keep an EMA of the weights (paper: 0.9999)")
    p.add_argument("--input-size", type=positive_int, help="resize images to this size (default: the data's)")
    p.add_argument("--no-adapt-strides", action="store_true",
                   help="keep a zoo model's 224x224 strides at small input sizes")
    p.add_argument("--no-augment", action="store_true", help="no random crop or flip")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="memory layout on CPU (default: the faster one measured here, channels_last)")
    p.add_argument("--val-fraction", type=_fraction,
                   help="training data held out for validation (default 0.1; 0.2 with --recipe proxy, as mnas search)")
    p.add_argument("--seed", type=nonneg_int,
                   help="seed of the validation split and the training (default 0); with --recipe proxy the study"
                        " seed of 'mnas search --seed', from which the candidate's training seed is derived")
    p.add_argument("--threads", type=positive_int,
                   help="torch threads of the training (default: 1 with --recipe proxy, as mnas search's --threads;"
                        " otherwise the idle cores by the load average, at most 4, so a busy machine is not thrashed)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to train (default auto: CUDA if present)")
    p.add_argument("--max-train-seconds", "--max-seconds", dest="max_seconds", type=positive_float, metavar="S",
                   help="cap on the training loop's wall-clock seconds, as mnas search's --max-train-seconds: a"
                        " proxy run then stops early and says so (proxy runs only)")
    p.add_argument("--stop-after", type=positive_int, metavar="N",
                   help="stop after N epochs of this call, leaving a checkpoint to --resume")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="print the final figures as one JSON document")
    p.set_defaults(handler=cmd_train)
    track_given(p)


def _overrides(args: argparse.Namespace) -> dict:
    return {k: v for k, v in {
        "epochs": args.epochs, "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr,
        "weight_decay": args.weight_decay,
        "label_smoothing": args.label_smoothing, "ema_decay": args.ema_decay, "input_size": args.input_size,
        "channels_last": args.channels_last, "seed": args.seed, "threads": args.threads, "device": args.device,
        "max_seconds": args.max_seconds, "augment": False if args.no_augment else None,
    }.items() if v is not None}


def _log(args: argparse.Namespace, text: str) -> None:
    if not args.quiet:
        print(text, file=sys.stderr, flush=True)


def cmd_train(args: argparse.Namespace) -> int:
    from mnas.space import adapt_strides, is_zoo_name
    from mnas.train import data as datamod
    from mnas.train.config import PROXY_VAL_FRACTION, TrainConfig, auto_threads, recipe
    from mnas.train.full import CHECKPOINT

    if args.arch is None and not args.resume:
        raise UsageError("give ARCH, the architecture to train (a zoo name, a block string or a JSON file)")
    if args.proxy and args.recipe not in (None, "proxy"):
        raise UsageError(f"--proxy is --recipe proxy: it cannot be combined with --recipe {args.recipe}")
    args.proxy = args.proxy or args.recipe == "proxy"
    if args.proxy and (args.resume or args.stop_after):
        raise UsageError("--resume and --stop-after apply to full training, not to --recipe proxy")
    if not args.proxy and (args.steps or args.max_seconds):
        raise UsageError("--steps and --max-train-seconds apply to --recipe proxy runs; full training runs whole --epochs")
    saved = None
    if args.resume:
        if not args.out:
            raise UsageError("--resume needs --out DIR, the directory of the run to continue")
        saved = load_run_checkpoint(args.out, CHECKPOINT, "mnas.checkpoint/1", "mnas training")
        train_resume(args, saved, args.out)  # the data options restored, every given option checked
    elif not args.proxy and not args.out:
        raise UsageError("full training needs --out DIR (or pass --proxy for one proxy run)")
    elif args.proxy and args.out:
        _check_proxy_out(Path(args.out))
    arch = resolve_arch(args.arch) if args.arch is not None else None
    overrides = _overrides(args)

    source = saved["data"]["source"] if saved else {}
    if not saved:
        check_data_args(args.data, args.data_root, has_download=True)
    default_val = PROXY_VAL_FRACTION if args.proxy else 0.1
    data = datamod.load(
        args.data or source.get("data", "digits"), root=args.data_root or source.get("root"),
        val_fraction=args.val_fraction if args.val_fraction is not None else source.get("val_fraction", default_val),
        seed=args.seed if args.seed is not None else source.get("seed", 0), download=args.download,
        image_size=args.input_size or source.get("image_size", 32))
    if saved:
        keep_source(data, source)
    _log(args, f"data: {data!r}")

    if saved:
        config = TrainConfig.from_dict(dict(saved["config"], **overrides))
    else:
        config = recipe("proxy" if args.proxy else args.recipe or "fast", **overrides)
    if config.threads is None:
        config = config.replace(threads=auto_threads())

    input_size = config.input_size or data.input_size
    if arch is None:  # resuming without ARCH: the checkpoint's, already laid out for its input size
        from mnas.space import as_arch

        arch = as_arch(saved["arch"])
    elif is_zoo_name(args.arch.strip()) and not args.no_adapt_strides:
        arch = adapt_strides(arch, input_size)
    if saved is not None and str(arch) != saved["arch"]:
        raise UsageError(f"ARCH {args.arch[:60]}: {args.out} was trained with a different architecture"
                         f" ({saved['arch'][:80]}); drop ARCH to resume it, or give another --out for a new run")
    strides = [arch.stem_stride] + [b.stride for b in arch.blocks] if hasattr(arch, "blocks") else None
    if strides is not None:  # only a block chain has per-block strides (the zoo's adaptation); cells fix theirs
        _log(args, f"strides: stem {strides[0]}, blocks {' '.join(map(str, strides[1:]))} at {input_size}x{input_size}"
               + (" (adapted from the zoo's 224x224 strides; --no-adapt-strides keeps them)"
                  if args.arch and is_zoo_name(args.arch.strip()) and not args.no_adapt_strides else ""))

    if args.proxy:
        return _proxy(args, arch, data, config)
    _log(args, f"threads: {config.threads}" + ("" if args.threads else " (idle cores by the load average; --threads N)"))
    return _full(args, arch, data, config)


def _check_proxy_out(out: Path) -> None:
    """--recipe proxy --out DIR: a new directory, or one without a model or checkpoint (one line otherwise)."""
    from mnas.train.full import CHECKPOINT, MODEL

    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: a file, not a directory: give a directory for model.pt and metrics.json")
    held = [name for name in (MODEL, CHECKPOINT) if (out / name).exists()]
    if held:
        raise UsageError(f"--out {out} already holds {held[0]}: a proxy run does not overwrite a trained model; choose"
                         " another --out")
    try:  # made now, so an unwritable place is said before the training, not after it
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot make the directory ({exc.strerror or exc}): give a writable one") from None


def _save_proxy(args: argparse.Namespace, arch, data, config, model, result, split_seed: int) -> dict:
    """DIR/model.pt in `train_full`'s format (`mnas.train.full.load_model` and `mnas export --weights` read
    it; "data" names the training data, for the export's int8 calibration) and DIR/metrics.json. The test
    accuracy is measured after the run (evaluation only: the weights and the printed figures are the run's)."""
    from mnas.train.checkpoint import atomic_save, atomic_write_json
    from mnas.train.full import METRICS, MODEL, data_identity
    from mnas.train.loop import Loop

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test_accuracy = test_loss = None  # JSON has no NaN: none without a test split
    if len(data.y_test):
        test_accuracy, test_loss = Loop(model, data, config, train=False).evaluate("test")
    input_size = config.input_size or data.input_size
    final = {"arch": str(arch), "data": data.name, "recipe": "proxy", "split_seed": split_seed,
             "training_seed": config.seed, **result.to_dict(), "val_accuracy": result.accuracy,
             "val_loss": result.loss, "test_accuracy": test_accuracy, "test_loss": test_loss,
             "num_train": len(data.y_train), "num_val": len(data.y_val), "num_test": len(data.y_test),
             "input_size": input_size, "model": str(out / MODEL)}
    state_dict = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_save({"format": "mnas.model/1", "arch": str(arch), "num_classes": data.num_classes,
                 "in_chans": data.channels, "input_size": input_size, "state_dict": state_dict,
                 "normalization": {"mean": [float(m) for m in data.mean], "std": [float(v) for v in data.std]},
                 "class_names": list(data.class_names), "metrics": final, "config": config.to_dict(),
                 "data": data_identity(data)}, out / MODEL)
    atomic_write_json(final, out / METRICS)
    return final


def _proxy(args: argparse.Namespace, arch, data, config) -> int:
    from mnas._util import seed_everything
    from mnas.evaluate import trial_seed
    from mnas.models import build_model
    from mnas.train import train_proxy

    # The search's seed rule and worker steps (mnas.evaluate.train_candidate): the trial's numbers.
    seed = trial_seed(config.seed, str(arch))
    _log(args, f"proxy: {config.epochs:g} epochs, batch {config.batch_size}, lr {config.lr:g}, {config.threads} thread(s),"
               f" split seed {config.seed}, training seed {seed} (as 'mnas search --seed {config.seed}' trains it)")
    split_seed = config.seed
    config = config.replace(seed=seed)
    seed_everything(seed)
    model = build_model(arch, num_classes=data.num_classes, in_chans=data.channels)
    result = train_proxy(model, data, config)
    saved = _save_proxy(args, arch, data, config, model, result, split_seed) if args.out and result.ok else None
    if saved is not None:
        test = "none: no test split" if saved["test_accuracy"] is None else f"{saved['test_accuracy']:.4f}"
        _log(args, f"model: {saved['model']} (test accuracy {test}); export it with 'mnas export"
                   f" --weights {saved['model']} --format tflite --precision int8'")
    if args.json:
        emit_json({"arch": str(arch), "data": data.name, "training_seed": seed, **result.to_dict(),
                   **({"model": saved["model"], "test_accuracy": saved["test_accuracy"]} if saved else {})})
    elif result.ok:
        print(f"val accuracy {result.accuracy:.4f}  loss {result.loss:.4f}  {result.images_per_second:.1f} img/s"
              f"  {result.steps} steps ({result.epochs:.2f} epochs) in {result.seconds:.1f}s"
              + ("  (stopped at --max-train-seconds)" if result.truncated else ""))
    else:
        print(f"failed: {result.failure}")
    return 0 if result.ok else 1


def _full(args: argparse.Namespace, arch, data, config) -> int:
    from mnas.train.full import train_full
    from mnas.train.loop import NonFiniteLoss
    from mnas.train.progress import ConsoleProgress

    if config.epochs != int(config.epochs):
        raise UsageError(f"--epochs {config.epochs}: full training runs whole epochs")
    progress = ConsoleProgress(enabled=not args.quiet)
    try:
        final = train_full(arch, data, config, args.out, resume=args.resume, stop_after=args.stop_after,
                           progress=progress, log=lambda s: _log(args, s))
    except NonFiniteLoss as exc:
        print(f"mnas: training failed: {exc}; the last good checkpoint is in {args.out}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    if final.get("stopped"):
        _log(args, f"stopped after epoch {final['epoch']} of {final['epochs']}: resume with:"
                   f" {resume_command('train', '--out', args.out)}")
        if args.json:
            emit_json(final)
        return 0
    if args.json:
        emit_json(final)
    else:
        print(f"test accuracy {final['test_accuracy']:.4f}  (val {final['val_accuracy'] or float('nan'):.4f})"
              f"  {final['epochs']} epochs in {final['seconds']:.0f}s  model: {final['model']}")
    return 0
