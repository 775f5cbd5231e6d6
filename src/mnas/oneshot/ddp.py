"""Distributed supernet training: the process group from `torchrun`'s environment, and a launcher
for several CPU processes on this machine (gloo), which the tests use.

`train_supernet` needs nothing else: when a default process group is initialised it wraps the
supernet in `DistributedDataParallel(find_unused_parameters=True)` and gives every rank its slice of
each global batch (see train.py). With ``torchrun --nproc-per-node N -m mnas.cli supernet train ...`` the
command line calls `init_from_env` first: NCCL on CUDA (one GPU per process, ``cuda:LOCAL_RANK``),
gloo on CPU.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["free_port", "init_from_env", "is_main", "shutdown", "spawn"]


def init_from_env(backend: str | None = None) -> tuple[int, int, str]:
    """Join the process group `torchrun` describes (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
    LOCAL_RANK); returns (rank, world size, device). Without those variables: (0, 1, "auto")."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, "auto"
    local = int(os.environ.get("LOCAL_RANK", 0))
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size(), f"cuda:{local}" if cuda else "cpu"


def is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _entry(rank: int, world: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        fn(rank, world, *args)
    finally:
        dist.destroy_process_group()


def spawn(fn: Callable[..., Any], world: int, *args: Any) -> None:
    """Run `fn(rank, world, *args)` in `world` CPU processes joined by gloo on 127.0.0.1 (`fn` must
    be importable: defined at module level)."""
    import torch.multiprocessing as mp

    mp.spawn(_entry, args=(world, free_port(), fn, args), nprocs=world, join=True)
