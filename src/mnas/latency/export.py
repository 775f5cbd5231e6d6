"""PyTorch side of measurement: a model fit to be timed, and its ONNX export in memory.

`timing_model` calibrates batch norm once on random data so that every layer's output has unit
scale. An untrained network's activations otherwise shrink layer after layer (1e-9 after a dozen
squeeze-excite layers), and tiny or denormal floats make arithmetic data-dependent; a trained
network's do not, so this is the representative case. Imports torch: not for the device server.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mnas.models import build_model
from mnas.space import Arch

__all__ = ["calibrate_bn", "onnx_bytes", "timing_model", "torch_threads"]

OPSET = 17


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run PyTorch with `n` intra-op threads, then restore. Process-wide: PyTorch has no per-thread
    setting. Tiny graphs export and calibrate 10-50x faster on one thread than on a contended pool."""
    previous = torch.get_num_threads()
    if previous == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def calibrate_bn(model: nn.Module, input_shape: tuple[int, ...], seed: int = 0) -> nn.Module:
    """Set every BatchNorm's running statistics from one seeded random batch; returns the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if norms:
        saved = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: one batch sets the statistics exactly
        shape = (max(2, input_shape[0]),) + tuple(input_shape[1:])  # BN needs > 1 value per channel
        gen = torch.Generator().manual_seed(seed)
        model.train()
        with torch.no_grad(), torch_threads(1):
            model(torch.randn(shape, generator=gen))
        for m, momentum in zip(norms, saved, strict=True):
            m.momentum = momentum
    return model.eval()


def timing_model(arch: Arch, input_size: int, num_classes: int = 1000, batch_size: int = 1,
                 in_chans: int = 3) -> nn.Module:
    """`build_model(arch)` in eval mode with calibrated batch norm: what the backends time."""
    model = build_model(arch, num_classes=num_classes, in_chans=in_chans)
    return calibrate_bn(model, (batch_size, in_chans, input_size, input_size))


def onnx_bytes(model: nn.Module, input_shape: tuple[int, ...] | int, opset: int = OPSET, **kwargs: Any) -> bytes:
    """The model as an ONNX file in memory: one input ``input`` of `input_shape` (an int means
    1 x 3 x s x s), one output ``output``, batch norm folded (eval mode), constants folded.

    Uses the TorchScript-based exporter (``dynamo=False``): offline, deterministic, and several
    times faster than the dynamo exporter for these small convolutional graphs.
    """
    if isinstance(input_shape, int):
        input_shape = (1, 3, input_shape, input_shape)
    was_training = model.training
    model.eval()
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad(), torch_threads(1):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (torch.zeros(tuple(input_shape)),), buffer, dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=["output"], do_constant_folding=True, **kwargs)
    finally:
        model.train(was_training)
    return buffer.getvalue()
