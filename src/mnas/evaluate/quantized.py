"""Accuracy after int8 quantization, in the runtime that will run the network (issue 20 item 3).

`quantized_accuracy(model, data, runtime)`: calibrate on N training images (preprocessed exactly as
the trainer's evaluation does: normalised, resized to the input size, no augmentation), quantize with
the runtime's own quantizer (`mnas.latency.quantize`: QDQ for ONNX Runtime, PT2E for LiteRT and
ExecuTorch), run the quantized file in that runtime on a split, and count top-1 hits.

`ProxyEvaluator(..., score="int8")` calls it in the worker after proxy training: the trial records
``accuracy_fp32`` and ``accuracy_int8`` (in its extra) and the reward uses the one chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["QUANTIZED_RUNTIMES", "SCORES", "calibration_inputs", "int8_scores", "quant_settings", "quantized_accuracy",
           "quantized_runtime"]

QUANTIZED_RUNTIMES = ("onnxruntime", "litert", "executorch")
SCORES = ("fp32", "int8")
_EVAL_BATCH = 256


def quantized_runtime(latency: Any) -> str:
    """The runtime whose int8 accuracy goes with a latency backend: the one it measures (a lookup
    table: the one it was measured in); ONNX Runtime for PyTorch eager."""
    runtime = getattr(latency, "deployment", ("onnxruntime", "fp32"))[0]
    return runtime if runtime in QUANTIZED_RUNTIMES else "onnxruntime"


def _preprocess(data: Any, images: np.ndarray, input_size: int) -> np.ndarray:
    import torch

    from mnas.train.augment import BatchTransform
    from mnas.train.datasets import NO_AUGMENT

    transform = BatchTransform(data.mean, data.std, NO_AUGMENT, input_size, "cpu", False)
    with torch.no_grad():
        return transform(torch.from_numpy(np.ascontiguousarray(images)), train=False).numpy().astype(np.float32)


def calibration_inputs(data: Any, calibration: int = 100, input_size: int | None = None,
                       seed: int = 0) -> list[np.ndarray]:
    """The `calibration` training images of `data` (drawn without replacement with `seed`) that an int8
    score calibrates on, as float32 (1, C, S, S) inputs preprocessed as the trainer evaluates (normalised
    with `data.mean`/`data.std`, resized to `input_size`). `mnas export --precision int8` calibrates on
    the same ones, so the file it writes is the one the search scored. The draw is
    `mnas.latency.quantize.calibration_from_data` on ``data.x_train`` (one draw for the CLI and the Python API)."""
    from mnas.latency.quantize import calibration_from_data

    return calibration_from_data(data.x_train, calibration, data.mean, data.std, seed,
                                 int(input_size or data.input_size))


def quantized_accuracy(model: Any, data: Any, runtime: str = "onnxruntime", calibration: int = 100,
                       split: str = "val", input_size: int | None = None, seed: int = 0) -> float:
    """Top-1 accuracy in [0, 1] of `model` quantized to int8 for `runtime` and run there on `data`'s
    `split`; calibrated on `calibration` training images drawn with `seed`."""

    from mnas.latency.export import torch_threads

    if runtime not in QUANTIZED_RUNTIMES:
        raise ValueError(f"runtime {runtime!r}: int8 accuracy is measured in {', '.join(QUANTIZED_RUNTIMES)}")
    size = int(input_size or data.input_size)
    calib = calibration_inputs(data, calibration, size, seed)
    x_all, y_all = data.split(split)
    if not len(y_all):
        raise ValueError(f"{getattr(data, 'name', 'the data')}: the {split} split is empty")
    shape = (1, int(data.channels), size, size)
    model = _for_conversion(model)
    correct = 0
    with torch_threads(1):
        if runtime == "onnxruntime":
            import onnxruntime as ort

            from mnas.latency.export import onnx_bytes
            from mnas.latency.quantize import ort_quantize

            raw = onnx_bytes(model, shape, dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads, opts.log_severity_level = 1, 1, 3
            session = ort.InferenceSession(ort_quantize(raw, calib), opts, providers=["CPUExecutionProvider"])
            run = lambda x: session.run(None, {"input": x})[0]  # noqa: E731
        elif runtime == "litert":
            from mnas.latency.litert import run_tflite, tflite_bytes, tflite_interpreter

            interpreter = tflite_interpreter(tflite_bytes(model, shape, "int8", calib))
            run = lambda x: run_tflite(interpreter, x)  # noqa: E731
        else:
            from mnas.latency.executorch_backend import pte_bytes, pte_method, run_pte

            method = pte_method(pte_bytes(model, shape, "int8", calib))
            run = lambda x: run_pte(method, x)  # noqa: E731
        for i in range(0, len(y_all), _EVAL_BATCH):
            logits = run(_preprocess(data, x_all[i:i + _EVAL_BATCH], size))
            correct += int((np.asarray(logits).argmax(1) == np.asarray(y_all[i:i + _EVAL_BATCH])).sum())
    return correct / len(y_all)


def _for_conversion(model: Any) -> Any:
    """A copy of `model` in eval mode with its weights in the default (NCHW-contiguous) layout. Training
    on the CPU leaves them channels_last (`mnas.train.loop.CPU_CHANNELS_LAST`), which ExecuTorch's
    XNNPACK lowering refuses in int8 ('ChannelsLastTaggedReshapePass'): every trained candidate of a
    `--backend executorch --score int8` search failed. The caller's model is left as it is."""
    import copy

    import torch

    return copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()


def quant_settings(latency: Any, score: str, record_int8: bool, int8_runtime: str | None,
                   calibration: int) -> dict[str, Any] | None:
    """What an evaluator passes to its workers to score int8 (None: float only); ValueError for bad settings."""
    from mnas.latency.quantize import check_calibration

    if score not in SCORES:
        raise ValueError(f"score={score!r}: expected one of {', '.join(SCORES)}")
    if int8_runtime is not None and int8_runtime not in QUANTIZED_RUNTIMES:
        raise ValueError(f"int8_runtime={int8_runtime!r}: expected one of {', '.join(QUANTIZED_RUNTIMES)}")
    if score != "int8" and not record_int8:
        return None
    return {"runtime": int8_runtime or quantized_runtime(latency), "calibration": check_calibration(calibration),
            "score": score}


def int8_scores(model: Any, data: Any, quant: dict[str, Any], fp32: float, input_size: int) -> dict[str, Any]:
    """Worker side: the int8 accuracy of a trained (or BN-recalibrated) `model` next to its float one,
    as the trial keeps them; ``accuracy`` is replaced when the score is int8. A network the quantizer or
    the runtime cannot take fails the trial under ``score='int8'`` and is recorded as None otherwise."""
    import time

    t0 = time.perf_counter()
    try:
        int8 = quantized_accuracy(model, data, quant["runtime"], int(quant.get("calibration", 100)),
                                  input_size=input_size)
    except (RuntimeError, ValueError) as exc:
        reason = f"int8 quantization for {quant['runtime']} failed: {str(exc).strip().splitlines()[0][:200]}"
        if quant.get("score") == "int8":
            return {"ok": False, "accuracy": None, "failure": reason, "accuracy_fp32": fp32}
        return {"accuracy_fp32": fp32, "accuracy_int8": None, "int8_failure": reason}
    scores = {"accuracy_fp32": fp32, "accuracy_int8": int8, "int8_runtime": quant["runtime"],
              "int8_seconds": time.perf_counter() - t0}
    if quant.get("score") == "int8":
        scores["accuracy"] = int8
    return scores
