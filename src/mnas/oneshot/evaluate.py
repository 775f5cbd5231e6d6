"""Inherited accuracy of a sub-network: BN statistics recalibrated on fixed training images, then
accuracy on the validation split.

The sub-network is taken out of the supernet (`net.subnet(arch)`: a plain model with the inherited
weights), its batch-norm statistics are reset and re-estimated as a cumulative average (momentum
None) over `num_images` training images in train mode — the same images, in the same order, for
every sub-network (chosen by `seed`, no augmentation) — and it is scored in eval mode. The supernet
itself is never modified, so evaluations are independent and can run in parallel processes.
Sharing weights leaves BN's running statistics meaningless for any one sub-network (they mix all
of them), which is why OFA and BigNAS recalibrate (REFERENCE.md).

`DEFAULT_CALIBRATION_IMAGES` comes from the tau-against-images curve of benchmarks/oneshot.py on
the CIFAR-10 subset (33 sub-networks, width 0.25; docs/design/oneshot-train.md): Kendall tau 0.09 /
0.20 / 0.17 / 0.23 with 250 / 500 / 1000 / 2000 images (95% intervals about +-0.25 each), at 3.9 /
4.6 / 6.2 / 10.6 s per sub-network. Beyond 500 the gain is inside the noise at up to 2.3x the time.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mnas.space import Arch, as_arch
from mnas.train.augment import BatchTransform
from mnas.train.datasets import NO_AUGMENT, Dataset
from mnas.train.loop import CPU_CHANNELS_LAST, resolve_device, threads

__all__ = ["DEFAULT_CALIBRATION_IMAGES", "SubnetResult", "calibration_indices", "evaluate_subnet",
           "evaluate_subnets", "recalibrate_bn"]

DEFAULT_CALIBRATION_IMAGES = 500


@dataclass(frozen=True)
class SubnetResult:
    """Inherited accuracy (fraction) and mean cross-entropy on `split`, and where the time went."""

    arch: str
    accuracy: float
    loss: float
    num_images: int
    num_eval: int
    seconds: float
    calibrate_seconds: float
    eval_seconds: float
    params: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def calibration_indices(data: Dataset, num_images: int, seed: int = 0) -> np.ndarray:
    """The fixed training images BN statistics are estimated on: a seeded sample, sorted (so that
    the first n of a larger set are not the same as a smaller set's — each size is its own sample)."""
    n = len(data.y_train)
    if num_images < 1:
        raise ValueError(f"num_images={num_images!r}: expected a positive number of calibration images")
    rng = np.random.default_rng([seed, 0xB4])
    return np.sort(rng.permutation(n)[: min(num_images, n)])


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Sequence[torch.Tensor]) -> None:
    """Reset every BatchNorm's running statistics of `model` and re-estimate them as the cumulative
    average over `batches` (already transformed (B, C, S, S) tensors); leaves `model` in eval mode."""
    bns = _bn_layers(model)
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
    model.train()
    try:
        for x in batches:
            model(x)
    finally:
        for m, mom in zip(bns, saved, strict=True):
            m.momentum = mom
        model.eval()


class _Prepared:
    """Calibration and validation batches of one data set, transformed once and reused for every
    sub-network (the transform is a fixed cost that does not depend on the architecture)."""

    def __init__(self, data: Dataset, num_images: int, split: str, batch_size: int, seed: int,
                 device: torch.device, channels_last: bool, input_size: int | None):
        tf = BatchTransform(data.mean, data.std, NO_AUGMENT, input_size, device, channels_last)
        idx = calibration_indices(data, num_images, seed)
        x_cal = data.x_train[idx]
        self.calibration = [tf(torch.from_numpy(np.ascontiguousarray(x_cal[i:i + batch_size])), train=False)
                            for i in range(0, len(x_cal), batch_size)]
        x_eval, y_eval = data.split(split)
        if not len(y_eval):
            raise ValueError(f"{data.name}: the {split} split is empty (load the data with val_fraction > 0)")
        self.eval_x = [tf(torch.from_numpy(np.ascontiguousarray(x_eval[i:i + batch_size])), train=False)
                       for i in range(0, len(x_eval), batch_size)]
        self.eval_y = [torch.from_numpy(np.ascontiguousarray(y_eval[i:i + batch_size])).to(device)
                       for i in range(0, len(y_eval), batch_size)]
        self.num_images, self.num_eval = len(idx), len(y_eval)
        self.key = (id(data), num_images, split, batch_size, seed, str(device), channels_last, input_size)


_PREPARED: dict[tuple, _Prepared] = {}


def _prepared(data: Dataset, num_images: int, split: str, batch_size: int, seed: int, device: torch.device,
              channels_last: bool, input_size: int | None) -> _Prepared:
    key = (id(data), num_images, split, batch_size, seed, str(device), channels_last, input_size)
    hit = _PREPARED.get(key)
    if hit is None:
        _PREPARED.clear()  # one data set at a time: the batches hold a copy of the images
        hit = _PREPARED[key] = _Prepared(data, num_images, split, batch_size, seed, device, channels_last, input_size)
    return hit


def evaluate_subnet(net: nn.Module, arch: Arch | str, data: Dataset, *,
                    num_images: int = DEFAULT_CALIBRATION_IMAGES, split: str = "val", batch_size: int = 250,
                    seed: int = 0, channels_last: bool | None = None, device: str = "cpu",
                    threads: int | None = 1, input_size: int | None = None) -> SubnetResult:
    """Inherited accuracy of `arch` in supernet `net`: BN recalibrated on `num_images` fixed training
    images (`seed`), then scored on `split`. Deterministic for fixed arguments; `net` is unchanged."""
    return _evaluate(net, as_arch(arch), data, num_images, split, batch_size, seed, channels_last, device, threads,
                     input_size)


def _evaluate(net: nn.Module, arch: Arch, data: Dataset, num_images: int, split: str, batch_size: int, seed: int,
              channels_last: bool | None, device: str, n_threads: int | None, input_size: int | None) -> SubnetResult:
    dev = resolve_device(device)
    cl = True if dev.type == "cuda" else (CPU_CHANNELS_LAST if channels_last is None else channels_last)
    with threads(n_threads):
        started = time.perf_counter()
        prep = _prepared(data, num_images, split, batch_size, seed, dev, cl, input_size)
        sub = net.subnet(arch).to(dev, memory_format=torch.channels_last if cl else torch.contiguous_format)
        t0 = time.perf_counter()
        recalibrate_bn(sub, prep.calibration)
        t1 = time.perf_counter()
        correct, loss_sum = 0, 0.0
        with torch.inference_mode():
            for x, y in zip(prep.eval_x, prep.eval_y, strict=True):
                logits = sub(x).float()
                loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
                correct += int((logits.argmax(1) == y).sum())
        t2 = time.perf_counter()
    return SubnetResult(str(arch), correct / prep.num_eval, loss_sum / prep.num_eval, prep.num_images, prep.num_eval,
                        t2 - started, t1 - t0, t2 - t1, sum(p.numel() for p in sub.parameters()))


# -- several sub-networks, optionally on several processes -------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(cls: type, config: dict[str, Any], state_dict: dict[str, Any], data: Dataset, n_threads: int) -> None:
    torch.set_num_threads(n_threads)
    net = cls.from_config(config)
    net.load_state_dict(state_dict)
    _WORKER.update(net=net.eval(), data=data)


def _worker_eval(arch: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    return evaluate_subnet(_WORKER["net"], arch, _WORKER["data"], **kwargs).to_dict()


def evaluate_subnets(net: nn.Module, archs: Sequence[Arch | str], data: Dataset, *, workers: int = 1,
                     **kwargs: Any) -> list[SubnetResult]:
    """`evaluate_subnet` for each of `archs`, in order. With `workers` > 1, in that many processes
    (each loads the supernet once, one torch thread each); the results equal the serial ones."""
    archs = [str(as_arch(a)) for a in archs]
    if workers <= 1 or len(archs) <= 1:
        return [evaluate_subnet(net, a, data, **kwargs) for a in archs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    kwargs = {**kwargs, "threads": 1}
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    with ProcessPoolExecutor(min(workers, len(archs)), mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(type(net), net.config(), state, data, 1)) as pool:
        results = list(pool.map(_worker_eval, archs, [kwargs] * len(archs)))
    return [SubnetResult(**r) for r in results]
