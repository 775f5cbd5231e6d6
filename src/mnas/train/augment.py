"""Batched augmentation and normalisation, as tensor operations on the training device.

A whole uint8 batch (B, H, W, C) is cropped, flipped, converted to float, normalised and resized
in a handful of kernels: the random crop and the flip are one gather with per-sample row and column
indices, so there is no per-sample Python work in the hot loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mnas.train.datasets import Augment

__all__ = ["BatchTransform", "random_crop_flip"]


def random_crop_flip(x: torch.Tensor, padding: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of each image after zero padding by `padding`, then a random horizontal flip.

    `x` is (B, H, W, C) of any dtype; the result has the same shape. Random numbers are drawn on the
    CPU from `generator` (so a seed gives the same batch on every device) and moved to x's device.
    """
    b, h, w, _ = x.shape
    if padding == 0 and not flip:
        return x
    if padding:
        x = F.pad(x, (0, 0, padding, padding, padding, padding))  # (B, H+2p, W+2p, C)
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=generator)
    cols = torch.arange(w).expand(b, w)
    if flip:
        flipped = torch.rand(b, 1, generator=generator) < 0.5
        cols = torch.where(flipped, (w - 1) - cols, cols)
    rows = (dy + torch.arange(h)).to(x.device)  # (B, H)
    cols = (dx + cols).to(x.device)  # (B, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return x[batch, rows[:, :, None], cols[:, None, :]]  # (B, H, W, C)


class BatchTransform:
    """uint8 (B, H, W, C) batch -> normalised float (B, C, S, S), augmented when training.

    The output is in channels_last memory layout when `channels_last` is true (the permute of an NHWC
    batch gives it for free), otherwise contiguous NCHW.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float], augment: Augment, size: int | None = None,
                 device: torch.device | str = "cpu", channels_last: bool = False):
        device = torch.device(device)
        std_t = torch.tensor([float(s) for s in std], device=device).view(1, -1, 1, 1)
        mean_t = torch.tensor([float(m) for m in mean], device=device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std as one multiply-add.
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t
        self.augment = augment
        self.size = size
        self.device = device
        self.channels_last = channels_last

    def __call__(self, x: torch.Tensor, train: bool, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if train:
            x = random_crop_flip(x, self.augment.crop_padding, self.augment.flip, generator)
        x = x.permute(0, 3, 1, 2).float()  # (B, C, H, W), channels_last in memory
        x = torch.addcmul(self.shift, x, self.scale)
        if self.size is not None and (x.shape[2] != self.size or x.shape[3] != self.size):
            down = self.size < x.shape[2]
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=down)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.contiguous(memory_format=fmt)
