"""Precision as a setting: static post-training int8 quantization, each runtime's own way.

Every runtime is given the same recipe — static PTQ, int8 weights quantized per output channel
(symmetric), int8 activations quantized per tensor from `calibration` example inputs — through the
quantizer that runtime ships:

- ONNX Runtime: `onnxruntime.quantization.quantize_static`, QDQ format, per-channel, MinMax;
- LiteRT: `litert_torch`'s PT2E quantizer (symmetric, per-channel), then conversion to .tflite;
- ExecuTorch: `XNNPACKQuantizer` (symmetric, per-channel) via PT2E, then XNNPACK lowering.

Calibration inputs: for a latency figure they are seeded random images (``N(0, 1)``, the
distribution `timing_model` calibrates batch norm on) — the quantized graph and its speed do not
depend on the values; for an exported model or an accuracy they are training images, always drawn by
`calibration_from_data` (which `mnas.evaluate.quantized.calibration_inputs` applies to a data set), so
the Python API, `mnas export` and a search's int8 score calibrate on the same images. Imports torch
(PT2E helpers, preprocessing) lazily; the ONNX path needs only numpy, onnx and onnxruntime.
"""

from __future__ import annotations

import importlib
import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

__all__ = ["DEFAULT_CALIBRATION", "PRECISIONS", "calibration_from_data", "check_calibration", "check_precision",
           "ort_quantize", "package_versions", "pt2e_quantize", "random_calibration", "runtime_module"]

PRECISIONS = ("fp32", "int8")
DEFAULT_CALIBRATION = 8  # images: enough for MinMax ranges on random inputs; pass more real images for accuracy

# The pip extra that brings each runtime's packages (pyproject.toml).
_RUNTIME_EXTRAS = {"ai_edge_litert": "litert", "litert_torch": "litert", "executorch": "executorch",
                   "torchao": "litert' or 'mnas[executorch]", "onnxruntime": "onnx", "onnx": "onnx"}


def runtime_module(module: str, purpose: str) -> ModuleType:
    """Import an optional runtime package, or ImportError with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        extra = _RUNTIME_EXTRAS.get(module.split(".")[0], "all")
        raise ImportError(f"{purpose} needs the optional package '{module.split('.')[0]}': "
                          f"pip install 'mnas[{extra}]' (with torch==2.13.0 pinned, e.g. pip install -c constraints.txt)"
                          ) from exc


def package_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the named distributions (e.g. 'ai-edge-litert'), the missing ones left out."""
    from importlib import metadata

    found = {}
    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def check_precision(precision: Any) -> str:
    """'fp32' or 'int8' (case-insensitive); ValueError naming the choices otherwise."""
    text = str(precision).strip().lower() if isinstance(precision, str) else None
    if text not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    return text


def check_calibration(n: Any) -> int:
    """A positive number of calibration images; ValueError otherwise."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"calibration={n!r}: expected a positive number of images")
    return int(n)


def random_calibration(shape: Sequence[int], n: int = DEFAULT_CALIBRATION, seed: int = 0) -> list[np.ndarray]:
    """`n` seeded standard-normal float32 inputs of `shape` (what latency measurement calibrates on)."""
    rng = np.random.default_rng([seed, 7])
    return [rng.standard_normal(tuple(shape), dtype=np.float32) for _ in range(check_calibration(n))]


def calibration_from_data(images: np.ndarray, n: int, mean: Sequence[float], std: Sequence[float],
                          seed: int = 0, input_size: int | None = None) -> list[np.ndarray]:
    """The one draw of int8 calibration images: `n` of `images` (uint8 NHWC; at most all of them), drawn
    without replacement with `seed`, as float32 (1, C, S, S) inputs preprocessed as the trainer evaluates
    (``(pixels / 255 - mean) / std``, resized to `input_size`, default the images' own size).

    `mnas.evaluate.quantized.calibration_inputs(data, n)` is this draw on `data`'s training images with its
    mean and std: a search's int8 score and `mnas export --precision int8` calibrate on it, so
    ``mnas.export(..., precision="int8", calibration=calibration_from_data(data.x_train, n, data.mean,
    data.std, input_size=S))`` writes the file they calibrate, for the same data, split and `n` (`S`: the
    model's input size; leave it out when it is the images' own). (Before, this function
    drew other images with another seed key.)"""
    images = np.asarray(images)
    if images.ndim != 4 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"calibration images of shape {images.shape} and dtype {images.dtype}: expected uint8 NHWC")
    n = min(check_calibration(n), len(images))
    pick = np.sort(np.random.default_rng([seed, 9]).choice(len(images), size=n, replace=False))
    return [x[None] for x in _as_evaluated(images[pick], mean, std, input_size)]


def _as_evaluated(images: np.ndarray, mean: Sequence[float], std: Sequence[float], size: int | None) -> np.ndarray:
    """uint8 NHWC images as float32 NCHW by the operations `mnas.train.augment.BatchTransform` evaluates with
    (a multiply-add, then a bilinear resize, antialiased when shrinking), so the values are the trainer's to
    the bit (`tests/export/test_export_calibration.py` holds them to it)."""
    import torch
    import torch.nn.functional as F

    std_t = torch.tensor([float(s) for s in std]).view(1, -1, 1, 1)
    mean_t = torch.tensor([float(m) for m in mean]).view(1, -1, 1, 1)
    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
        x = torch.addcmul(-mean_t / std_t, x, 1.0 / (255.0 * std_t))
        if size is not None and (x.shape[2] != size or x.shape[3] != size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=size < x.shape[2])
        return x.contiguous().numpy().astype(np.float32)


# -- ONNX Runtime: QDQ ----------------------------------------------------------------------
def ort_quantize(model: bytes, calibration: Sequence[np.ndarray], input_name: str | None = None) -> bytes:
    """ONNX bytes quantized statically for ONNX Runtime: QDQ, int8 weights per channel, int8
    activations, MinMax ranges from `calibration` (inputs of the model's one input)."""
    runtime_module("onnx", "int8 quantization for ONNX Runtime")
    quant = runtime_module("onnxruntime.quantization", "int8 quantization for ONNX Runtime")
    import onnx

    proto = onnx.load_from_string(model)
    name = input_name or proto.graph.input[0].name
    batches = list(calibration)
    if not batches:
        raise ValueError("int8 quantization needs at least one calibration input")

    class Reader(quant.CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._it, None)
            return None if x is None else {name: np.ascontiguousarray(x, dtype=np.float32)}

    with tempfile.TemporaryDirectory(prefix="mnas-q-") as tmp:
        src, dst = Path(tmp, "fp32.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(model)
        cwd, root = os.getcwd(), logging.getLogger()
        os.chdir(tmp)  # the calibrator writes an augmented model beside the working directory
        level = root.level
        root.setLevel(logging.ERROR)  # quantize_static advises pre-processing on the root logger, every call
        try:
            quant.quantize_static(str(src), str(dst), Reader(), quant_format=quant.QuantFormat.QDQ, per_channel=True,
                                  activation_type=quant.QuantType.QInt8, weight_type=quant.QuantType.QInt8,
                                  calibrate_method=quant.CalibrationMethod.MinMax,
                                  extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        finally:
            root.setLevel(level)
            os.chdir(cwd)
        return dst.read_bytes()


# -- PT2E (LiteRT, ExecuTorch) ----------------------------------------------------------------
def pt2e_quantize(model: Any, example: Any, calibration: Sequence[np.ndarray], quantizer: Any,
                  fold_quantize: bool = True) -> Any:
    """`model` (eval mode) captured with torch.export, observed on `calibration`, converted to a
    quantized (Q/DQ) graph module with `quantizer`'s recipe; returned in eval mode."""
    import torch

    pt2e = runtime_module("torchao.quantization.pt2e", "int8 quantization (PT2E)")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = model.eval()
    with torch.no_grad():
        captured = torch.export.export(model, (example,)).module()
        prepared = prepare_pt2e(captured, quantizer)
        for x in calibration:
            prepared(torch.as_tensor(np.asarray(x, np.float32)))
        converted = convert_pt2e(prepared, fold_quantize=fold_quantize)
    pt2e.move_exported_model_to_eval(converted)
    converted.training = False  # the converters read this flag (the graph is already in eval form)
    return converted
