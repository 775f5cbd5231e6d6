"""Distributed supernet training: two CPU processes (gloo) against one process on the same global batch.

Each rank trains the same sampled sub-networks on its half of every global batch. One process with
two micro-batches computes the same thing (the same halves, batch-norm statistics per half, the
gradients summed), so the parameters agree up to float summation order: tolerance 1e-5 after
4 steps (measured difference ~1e-7). Dropout is 0 in the tiny space: its masks would differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from mnas.oneshot.ddp import spawn
from mnas.oneshot.train import SupernetTrainConfig, train_supernet
from mnas.train import TrainConfig

sys.path.insert(0, str(Path(__file__).parent))
from _train_helpers import make_supernet, tiny_data, tiny_space  # noqa: E402

TOLERANCE = 1e-5


def _config(micro_batches: int) -> SupernetTrainConfig:
    return SupernetTrainConfig(train=TrainConfig(epochs=2, batch_size=32, lr=0.05, warmup_epochs=0.5, seed=1),
                               warmup_epochs=0.5, num_random=1, eval_images=0, micro_batches=micro_batches)


def _rank_main(rank: int, world: int, out: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    net = make_supernet(tiny_space())
    train_supernet(net, tiny_data(), _config(1), Path(out) / "ddp.pt")
    if rank == 0:
        torch.save({k: v for k, v in net.named_parameters()}, Path(out) / "params.pt")


@pytest.mark.slow  # two spawned processes import torch and join gloo: ~40 s on a busy 2-core machine
@pytest.mark.usefixtures("one_torch_thread")
def test_two_gloo_processes_equal_one_process(tmp_path):
    spawn(_rank_main, 2, str(tmp_path))
    ddp = torch.load(tmp_path / "params.pt")
    single = make_supernet(tiny_space())
    train_supernet(single, tiny_data(), _config(2))
    worst = max(float((p - ddp[k]).abs().max()) for k, p in single.named_parameters())
    assert worst < TOLERANCE
    moved = make_supernet(tiny_space())
    assert max(float((p - ddp[k]).abs().max()) for k, p in moved.named_parameters()) > 1e-3  # it did train
    assert torch.load(tmp_path / "ddp.pt", weights_only=True)["world_size"] == 2
