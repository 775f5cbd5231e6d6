"""Test accuracy of trained models in float (PyTorch) and int8 in each deployment runtime (issue 20).

    OMP_NUM_THREADS=1 python benchmarks/deploy_accuracy.py \\
        --models runs/item5/compare/mobilenetv2_x0.5-seed0 runs/item5/compare/mnasnet_b1_x0.5-seed0 \\
        --runtimes onnxruntime,litert,executorch --calibration 200 --json runs/deploy_accuracy.json

Each DIR holds model.pt and metrics.json from `mnas train` (full training, or `--recipe proxy --out DIR`).
The data and its splits are rebuilt as the training made them (`mnas.train.load` with the source, the
validation fraction and the split seed that DIR/checkpoint.pt or model.pt recorded; --data,
--val-fraction and --split-seed override them), and the float test accuracy is measured again in
PyTorch with the training's own evaluation (`mnas.train.loop.Loop.evaluate`) beside the figure
metrics.json recorded, so a data or split mismatch shows. The int8 figures are
`mnas.evaluate.quantized.quantized_accuracy` on the test split: static post-training quantization
with each runtime's own quantizer, calibrated on --calibration training images (the same draw for
every runtime), run in ONNX Runtime (QDQ), LiteRT (.tflite) and ExecuTorch (.pte, XNNPACK).

Per figure: accuracy, its binomial standard error sqrt(p (1 - p) / n), the drop from the float
accuracy (points, float - int8), the seconds it took (conversion, calibration and evaluation) and the
1-minute load average before and after. It prints measured numbers only and asserts nothing; a runtime
that is not installed or fails is a line saying so, and the others still run.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

RUNTIMES = ("onnxruntime", "litert", "executorch")
_MODULES = {"onnxruntime": ("onnxruntime", "onnx"), "litert": ("ai_edge_litert", "litert_torch"),
            "executorch": ("executorch",)}


def _runtimes(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [n for n in names if n not in RUNTIMES]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a comma-separated list of {', '.join(RUNTIMES)}")
    return list(dict.fromkeys(names))


def _load1() -> float:
    return round(os.getloadavg()[0], 2)


def _se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n) if n else math.nan


def _data_source(directory: Path, info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """How the model's data was loaded: DIR/checkpoint.pt's (full training) or model.pt's (proxy run)
    recorded source, each overridden by the options given."""
    from mnas.train.checkpoint import load_file

    source: dict[str, Any] = {}
    checkpoint = directory / "checkpoint.pt"
    if checkpoint.is_file():
        source = dict((load_file(checkpoint).get("data") or {}).get("source") or {})
    if not source:
        source = dict((info.get("data") or {}).get("source") or {})
    if args.data:
        source["data"] = args.data
    if args.val_fraction is not None:
        source["val_fraction"] = args.val_fraction
    if args.split_seed is not None:
        source["seed"] = args.split_seed
    if not source.get("data"):
        raise ValueError(f"{directory}: neither checkpoint.pt nor model.pt records the training data: give --data"
                         " (and --val-fraction, --split-seed as the training used them)")
    source.setdefault("val_fraction", 0.1)
    source.setdefault("seed", int((info.get("config") or {}).get("seed") or 0))
    return source


def _measure_model(directory: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from mnas.evaluate.quantized import quantized_accuracy
    from mnas.train import load
    from mnas.train.config import TrainConfig
    from mnas.train.full import load_model
    from mnas.train.loop import Loop

    model_path, metrics_path = directory / "model.pt", directory / "metrics.json"
    for path in (model_path, metrics_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (a DIR from 'mnas train ... --out DIR' holds model.pt and"
                                    " metrics.json)")
    model, info = load_model(model_path)
    recorded = json.loads(metrics_path.read_text())
    source = _data_source(directory, info, args)
    data = load(source["data"], root=source.get("root"), val_fraction=float(source["val_fraction"]),
                seed=int(source["seed"]), image_size=int(source.get("image_size") or info.get("input_size") or 32))
    input_size = int(info.get("input_size") or data.input_size)
    n_test = len(data.y_test)
    record: dict[str, Any] = {
        "model": str(directory), "arch": info["arch"], "data": dict(source), "input_size": input_size,
        "num_train": len(data.y_train), "num_val": len(data.y_val), "num_test": n_test,
        "calibration": args.calibration, "recorded_test_accuracy": recorded.get("test_accuracy"),
        "normalization_matches": [round(float(m), 6) for m in data.mean] == [
            round(float(m), 6) for m in (info.get("normalization") or {}).get("mean", data.mean)],
    }
    print(f"\n{directory}: {info['arch'][:90]}{'...' if len(info['arch']) > 90 else ''}")
    print(f"  data {source['data']} (val_fraction {source['val_fraction']}, split seed {source['seed']}):"
          f" train {len(data.y_train)}, val {len(data.y_val)}, test {n_test}; {input_size}x{input_size}")
    config = TrainConfig.from_dict(dict(info.get("config") or {}, device="cpu"))
    load_before, t0 = _load1(), time.perf_counter()
    with torch.no_grad():
        fp32, _ = Loop(model, data, config, train=False).evaluate("test")
    figures = {"fp32": {"runtime": "pytorch", "precision": "fp32", "accuracy": fp32, "se": _se(fp32, n_test),
                        "drop": 0.0, "seconds": time.perf_counter() - t0, "load_before": load_before,
                        "load_after": _load1()}}
    print(f"  {'what':<22} {'accuracy':>9} {'SE':>7} {'drop':>8} {'seconds':>8}  load before/after")
    _line("fp32 PyTorch", figures["fp32"], record["recorded_test_accuracy"])
    for runtime in args.runtimes:
        missing = [m for m in _MODULES[runtime] if importlib.util.find_spec(m) is None]
        name = f"int8 {runtime}"
        if missing:
            figures[name] = {"runtime": runtime, "precision": "int8", "error": f"not installed: {', '.join(missing)}"}
            print(f"  {name:<22} not installed ({', '.join(missing)}: pip install 'mnas[{runtime}]')", flush=True)
            continue
        load_before, t0 = _load1(), time.perf_counter()
        try:
            int8 = quantized_accuracy(model, data, runtime, calibration=args.calibration, split="test",
                                      input_size=input_size, seed=args.seed)
        except Exception as exc:  # noqa: BLE001 - a benchmark: say what failed, go on with the others
            message = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            figures[name] = {"runtime": runtime, "precision": "int8", "error": f"{type(exc).__name__}: {message}",
                             "seconds": time.perf_counter() - t0}
            print(f"  {name:<22} failed after {time.perf_counter() - t0:.0f} s: {type(exc).__name__}: {message}",
                  flush=True)
            continue
        figures[name] = {"runtime": runtime, "precision": "int8", "accuracy": int8, "se": _se(int8, n_test),
                         "drop": fp32 - int8, "seconds": time.perf_counter() - t0, "load_before": load_before,
                         "load_after": _load1()}
        _line(name, figures[name])
    record["figures"] = figures
    return record


def _line(name: str, f: dict[str, Any], recorded: float | None = None) -> None:
    note = ""
    if recorded is not None:
        note = f"   (metrics.json: {recorded:.4f}{', reproduced' if recorded == f['accuracy'] else ', DIFFERENT'})"
    print(f"  {name:<22} {f['accuracy']:>9.4f} {f['se']:>7.4f} {100 * f['drop']:>+7.2f}p {f['seconds']:>8.1f}"
          f"  {f['load_before']:.2f}/{f['load_after']:.2f}{note}", flush=True)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")  # one line, no usage dump


def main(argv: list[str] | None = None) -> int:
    from mnas.cli._common import positive_int

    p = _Parser(description=__doc__.splitlines()[0],
                                epilog="drop: float minus int8 accuracy, in points; SE: binomial standard error")
    p.add_argument("--models", nargs="+", required=True, metavar="DIR",
                   help="directories from 'mnas train ... --out DIR' (model.pt and metrics.json)")
    p.add_argument("--runtimes", type=_runtimes, default=list(RUNTIMES),
                   help=f"comma-separated int8 runtimes (default {','.join(RUNTIMES)})")
    p.add_argument("--calibration", type=positive_int, default=200, metavar="N",
                   help="training images the int8 models are calibrated on (default 200)")
    p.add_argument("--seed", type=int, default=0, help="seed of the calibration images drawn (default 0)")
    p.add_argument("--data", help="the training data (default: what DIR/checkpoint.pt or model.pt recorded)")
    p.add_argument("--val-fraction", type=float, help="validation share of the training data (default: recorded)")
    p.add_argument("--split-seed", type=int, help="seed of the validation split (default: recorded)")
    p.add_argument("--json", metavar="OUT", help="also write every figure to this JSON file")
    args = p.parse_args(argv)
    for directory in args.models:
        if not Path(directory).is_dir():
            p.error(f"--models {directory}: not a directory (give directories written by 'mnas train --out DIR')")
    if args.json and Path(args.json).is_dir():
        p.error(f"--json {args.json}: a directory; give a file name")

    import torch

    torch.set_num_threads(1)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    print(f"started {started}, load {', '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} CPUs,"
          f" torch threads 1, calibration {args.calibration} training images")
    records = []
    for directory in args.models:
        try:
            records.append(_measure_model(Path(directory), args))
        except (ValueError, FileNotFoundError) as exc:
            print(f"{directory}: {str(exc).strip().splitlines()[0]}", file=sys.stderr)
            records.append({"model": directory, "error": str(exc).strip().splitlines()[0]})
    if args.json:
        from mnas.train.checkpoint import atomic_write_json

        atomic_write_json({"started": started, "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                           "calibration": args.calibration, "seed": args.seed, "runtimes": args.runtimes,
                           "models": records}, args.json)
        print(f"\nwritten: {args.json}")
    return 1 if any("error" in r for r in records) else 0


if __name__ == "__main__":
    raise SystemExit(main())
