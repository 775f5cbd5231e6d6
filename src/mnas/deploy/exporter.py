"""`export(arch_or_model, path, format=...)`: an architecture, a built model or a trained model file
to ONNX, TorchScript, JSON, LiteRT (.tflite) or ExecuTorch (.pte); ONNX, .tflite and .pte also in
int8 (`precision='int8'`, static PTQ with each runtime's quantizer, see `mnas.latency.quantize`).

ONNX: opset 17, input ``input`` (N, C, H, W) with a dynamic batch, output ``output`` (N, classes),
batch norm folded; the file's metadata holds ``mnas.arch`` (canonical string), ``mnas.num_classes``,
``mnas.in_chans``, ``mnas.input_size`` and, from a trained model file, ``mnas.normalization`` and
``mnas.class_names`` (JSON). TorchScript: `torch.jit.trace` in eval mode, the same metadata as
``extra/mnas.json`` in the archive. JSON: the Arch's JSON fields (``blocks``, ``stem_stride``, ...),
plus ``arch`` (canonical string), ``model`` (classes, channels, input size, params, MACs) and
``trial`` (the trial's figures, when there is one).
"""

from __future__ import annotations

import io
import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mnas.models import build_model, profile
from mnas.space import Arch, as_arch, get_arch, is_zoo_name
from mnas.study import Trial
from mnas.train.checkpoint import atomic_write_bytes

__all__ = ["FORMATS", "ExportResult", "export", "format_from_path"]

FORMATS = ("onnx", "torchscript", "json", "tflite", "pte")
_SUFFIXES = {".onnx": "onnx", ".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript",
             ".torchscript": "torchscript", ".json": "json", ".tflite": "tflite", ".pte": "pte"}
QUANTIZABLE = ("onnx", "tflite", "pte")  # formats written in int8 too (each runtime's own quantizer)
# A written file must reproduce PyTorch's logits within this (float32, folded batch norm).
CHECK_ATOL, CHECK_RTOL = 1e-4, 1e-3


@dataclass(frozen=True)
class ExportResult:
    """What was written: the file, its format, the architecture and the model's input and output."""

    path: str
    format: str
    arch: str
    input_size: int
    num_classes: int
    in_chans: int
    bytes: int
    trial: int | None = None
    weights: str | None = None
    max_abs_diff: float | None = None  # set by check=True
    trained: bool | None = None  # False: random weights built here; None: a module given by the caller
    normalization: dict[str, Any] | None = None  # the input normalisation the weights were trained with
    precision: str = "fp32"
    calibration: int | None = None  # int8: how many inputs calibrated the activation ranges
    calibration_source: str | None = None  # int8: 'data' (training images) or 'random' (seeded N(0, 1))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def input_note(self) -> str:
        """One line on what the model expects as input (and whether its weights are trained)."""
        dtype = "int8 (scale and zero point in the file)" if self.format == "tflite" and self.precision == "int8" \
            else "float32"
        shape = f"input {dtype} NCHW 1x{self.in_chans}x{self.input_size}x{self.input_size}"
        if self.normalization:
            return (f"{shape}, pixels scaled to [0, 1] then (x - mean) / std with mean {self.normalization.get('mean')}"
                    f" std {self.normalization.get('std')}")
        if self.trained is False:
            return f"{shape}; UNTRAINED: random weights, about chance accuracy (no normalisation recorded)"
        return f"{shape}; no input normalisation recorded"


def format_from_path(path: str | os.PathLike[str]) -> str:
    """The export format a file name implies (.onnx, .pt/.pth/.ts, .json); ValueError otherwise."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ValueError(f"cannot tell the export format from '{Path(path).name}': name the file .onnx, .pt, .json,"
                         f" .tflite or .pte, or give the format ({', '.join(FORMATS)})")
    return _SUFFIXES[suffix]


def _to_arch(value: Arch | str | Trial) -> Arch:
    if isinstance(value, Trial):
        value = value.arch
    if isinstance(value, str) and is_zoo_name(value.strip()):
        return get_arch(value.strip())
    return as_arch(value)


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return value


def _agree(name: str, given: int | None, saved: int, weights: str) -> int:
    if given is not None and given != saved:
        raise ValueError(f"{name}={given} but {weights} was trained with {name}={saved}: leave {name} out to use"
                         " the file's")
    return saved


def export(arch_or_model: Arch | str | Trial | nn.Module | None, path: str | os.PathLike[str], format: str | None = None,
           *, input_size: int | None = None, num_classes: int | None = None, in_chans: int | None = None,
           weights: str | os.PathLike[str] | None = None, trial: Trial | None = None, check: bool = False,
           opset: int | None = None, precision: str = "fp32", calibration: Any = None) -> ExportResult:
    """Write `arch_or_model` to `path` as ONNX, TorchScript or JSON (`format` defaults to the suffix's).

    `arch_or_model`: an `Arch`, its canonical string, a zoo name, a study `Trial`, or a built module
    (a model built by `mnas.models.build_model` keeps its architecture in ``arch_string``; any other module
    exports to ONNX/TorchScript only).
    `weights`: a ``model.pt`` from `mnas train`; its weights are loaded, its architecture must equal
    the given one (or pass None to export the file as it is), and classes, channels and input size
    come from it (`input_size` may still override the resolution). Defaults otherwise: 224, 1000, 3.
    `check=True` reloads the written file (onnxruntime / `torch.jit.load` / LiteRT / ExecuTorch) and
    compares its logits with PyTorch's, raising RuntimeError past tolerance (fp32); the largest
    difference is returned (for int8 it is reported, not enforced).
    `format='tflite'` (extra litert) or ``'pte'`` (extra executorch): the network as LiteRT or
    ExecuTorch runs it, XNNPACK-delegated. `precision='int8'` (onnx, tflite, pte): static
    post-training quantization with the runtime's own quantizer, per-channel weights, activation
    ranges from `calibration` — a list of float32 (1, C, H, W) inputs normalised as in training, or a
    number of seeded random inputs (default 8). Draw the images with
    ``mnas.latency.quantize.calibration_from_data(data.x_train, n, data.mean, data.std, input_size=S)``
    (or ``mnas.evaluate.quantized.calibration_inputs(data, n, input_size=S)``, the same draw; `S` the
    model's input size when the search ran with another than the data's): they are the images `mnas
    export --precision int8 --calibration n` and a search's int8 score calibrate on for that data and split.
    """
    from mnas.latency.quantize import DEFAULT_CALIBRATION, check_precision

    fmt = (format or format_from_path(path)).lower()
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {format!r}: expected one of {', '.join(FORMATS)}")
    precision = check_precision(precision)
    if precision == "int8" and fmt not in QUANTIZABLE:
        raise ValueError(f"precision int8 is written as {', '.join(QUANTIZABLE)}, not {fmt}: choose one of those formats")
    calibration = DEFAULT_CALIBRATION if calibration is None else calibration
    if isinstance(arch_or_model, Trial):
        trial = trial or arch_or_model
    model: nn.Module | None = arch_or_model if isinstance(arch_or_model, nn.Module) else None
    arch = None if arch_or_model is None or model is not None else _to_arch(arch_or_model)
    if model is not None and isinstance(getattr(model, "arch_string", None), str):
        arch = as_arch(model.arch_string)  # every built model of a registered family carries its text
    info: dict[str, Any] = {}
    if weights is not None:
        if model is not None:
            raise ValueError("pass either a built model or weights=, not both")
        from mnas.train.full import load_model

        model, info = load_model(weights)
        saved = as_arch(info["arch"])
        if arch is not None and str(arch) != str(saved):
            raise ValueError(f"{weights} holds a different architecture: it has '{saved}', the export asked for"
                             f" '{arch}'")
        arch = saved
        num_classes = _agree("num_classes", num_classes, int(info["num_classes"]), str(weights))
        in_chans = _agree("in_chans", in_chans, int(info["in_chans"]), str(weights))
        input_size = input_size or int(info.get("input_size") or 224)
    if model is None and arch is None:
        raise ValueError("nothing to export: pass an architecture, a model, or weights=")
    input_size = _positive("input_size", input_size or 224)
    in_chans = _positive("in_chans", in_chans or _model_in_chans(model) or 3)
    num_classes = _positive("num_classes", num_classes or _model_classes(model) or 1000)
    was_training = model.training if model is not None else False
    trained = True if weights is not None else (None if model is not None else False)
    if model is None:
        model = build_model(arch, num_classes=num_classes, in_chans=in_chans)
        if fmt != "json":  # JSON is the architecture only; ONNX/TorchScript carry (random) weights
            warnings.warn(f"mnas.export writes an UNTRAINED network to {Path(path).name} (random weights, about chance"
                          " accuracy): pass weights='DIR/model.pt' from mnas train to export trained weights",
                          UserWarning, stacklevel=2)
    try:
        result = _write(model.eval(), arch, Path(path), fmt, input_size, num_classes, in_chans, info, trial, weights,
                        check, opset, precision, calibration)
        quant = {}
        if precision == "int8":
            quant = {"calibration": calibration if isinstance(calibration, int) else len(calibration),
                     "calibration_source": "random" if isinstance(calibration, int) else "data"}
        return replace(result, trained=trained, normalization=info.get("normalization"), precision=precision, **quant)
    finally:
        model.train(was_training)


def _write(model: nn.Module, arch: Arch | None, path: Path, fmt: str, input_size: int, num_classes: int, in_chans: int,
           info: Mapping[str, Any], trial: Trial | None, weights: Any, check: bool, opset: int | None,
           precision: str = "fp32", calibration: Any = 8) -> ExportResult:

    meta = {"arch": str(arch) if arch is not None else None, "num_classes": num_classes, "in_chans": in_chans,
            "input_size": input_size}
    for key in ("normalization", "class_names"):
        if info.get(key) is not None:
            meta[key] = info[key]
    shape = (1, in_chans, input_size, input_size)
    if fmt == "json":
        if arch is None:
            raise ValueError("JSON export needs an architecture: this module is not an mnas model")
        data = _json_doc(arch, model, meta, trial, weights, info)
        payload = (json.dumps(data, indent=2) + "\n").encode()
    elif fmt == "onnx":
        payload = _onnx(model, shape, {**meta, **({"precision": precision} if precision != "fp32" else {})}, opset)
        if precision == "int8":
            from mnas.latency.quantize import ort_quantize, random_calibration

            inputs = random_calibration(shape, calibration) if isinstance(calibration, int) else calibration
            payload = ort_quantize(payload, inputs)
    elif fmt == "tflite":
        from mnas.latency.litert import tflite_bytes

        payload = tflite_bytes(model, shape, precision, calibration)
    elif fmt == "pte":
        from mnas.latency.executorch_backend import pte_bytes

        payload = pte_bytes(model, shape, precision, calibration)
    else:
        payload = _torchscript(model, shape, meta)
    atomic_write_bytes(payload, path)  # never a half-written export; the umask's mode, as open() gives
    diff = _check(model, path, fmt, shape, enforce=precision == "fp32") if check and fmt != "json" else None
    return ExportResult(str(path), fmt, meta["arch"] or "", input_size, num_classes, in_chans, len(payload),
                        trial.number if trial is not None else None, str(weights) if weights else None, diff)


def _model_in_chans(model: nn.Module | None) -> int | None:
    """Input channels of the first convolution (registration order is the forward order in every family)."""
    if model is None:
        return None
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return getattr(first, "in_channels", None)


def _model_classes(model: nn.Module | None) -> int | None:
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Linear):
        return classifier.out_features
    if model is None:
        return None
    last = None  # no `classifier`: the last Linear (a user's family may name it otherwise)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            last = m
    return getattr(last, "out_features", None)


def _json_doc(arch: Arch, model: nn.Module, meta: Mapping[str, Any], trial: Trial | None, weights: Any,
              info: Mapping[str, Any]) -> dict[str, Any]:
    prof = profile(model, input_size=meta["input_size"], in_chans=meta["in_chans"])
    doc: dict[str, Any] = {**arch.to_dict(), "arch": str(arch)}
    doc["model"] = {k: meta[k] for k in ("num_classes", "in_chans", "input_size")}
    doc["model"].update(params=prof.params, macs=prof.macs)
    if trial is not None:
        doc["trial"] = {k: v for k, v in trial.to_dict().items() if k not in ("arch", "tokens", "extra")}
        if trial.likelihood_scored:  # its accuracy is the search's likelihood score: say so, top-1 beside it
            doc["trial"].update(score_metric="likelihood", top1_accuracy=trial.top1)
    if weights is not None:
        doc["weights"] = {"path": str(weights), "metrics": _plain(info.get("metrics")),
                          "normalization": info.get("normalization"), "class_names": info.get("class_names")}
    return doc


def _plain(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _onnx(model: nn.Module, shape: tuple[int, ...], meta: Mapping[str, Any], opset: int | None) -> bytes:
    from mnas._util import require
    from mnas.latency.export import OPSET, onnx_bytes

    onnx = require("onnx", "ONNX export")
    raw = onnx_bytes(model, shape, opset=opset or OPSET,
                     dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    proto = onnx.load_from_string(raw)
    for key, value in meta.items():
        if value is not None:
            entry = proto.metadata_props.add()
            entry.key, entry.value = f"mnas.{key}", value if isinstance(value, str) else json.dumps(value)
    proto.producer_name = "mnas"
    return proto.SerializeToString()


def _torchscript(model: nn.Module, shape: tuple[int, ...], meta: Mapping[str, Any]) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export; it still works
        traced = torch.jit.trace(model, torch.zeros(shape))
        torch.jit.save(traced, buffer, _extra_files={"mnas.json": json.dumps(meta)})
    return buffer.getvalue()


def _check(model: nn.Module, path: Path, fmt: str, shape: tuple[int, ...], enforce: bool = True) -> float:
    """Largest |difference| between the written file's logits and PyTorch's on a seeded batch of 2
    (RuntimeError past tolerance when `enforce`; an int8 file is reported, not judged)."""
    x = torch.randn((2,) + shape[1:], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
        if fmt == "tflite":
            from mnas.latency.litert import run_tflite

            got = torch.from_numpy(run_tflite(path.read_bytes(), x.numpy()))
        elif fmt == "pte":
            from mnas.latency.executorch_backend import run_pte

            got = torch.from_numpy(run_pte(path.read_bytes(), x.numpy()))
        elif fmt == "onnx":
            from mnas._util import require

            ort = require("onnxruntime", "checking an ONNX export")
            session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = torch.jit.load(str(path))(x)
    diff = float((got - expected).abs().max())
    if enforce and not torch.allclose(got, expected, atol=CHECK_ATOL, rtol=CHECK_RTOL):
        raise RuntimeError(f"the exported {fmt} file's logits differ from PyTorch's by up to {diff:.3g}")
    return diff
