"""Batched augmentation: the gather matches a per-sample reference; normalisation and layout."""

from __future__ import annotations

import numpy as np
import torch

from mnas.train.augment import BatchTransform, random_crop_flip
from mnas.train.datasets import Augment


def _reference(x: torch.Tensor, padding: int, flip: bool, seed: int) -> torch.Tensor:
    """Per-sample crop and flip with the same random draws as random_crop_flip (the slow, obvious way)."""
    g = torch.Generator().manual_seed(seed)
    b, h, w, _ = x.shape
    dy = torch.randint(0, 2 * padding + 1, (b, 1), generator=g)
    dx = torch.randint(0, 2 * padding + 1, (b, 1), generator=g)
    flips = torch.rand(b, 1, generator=g) < 0.5 if flip else torch.zeros(b, 1, dtype=torch.bool)
    padded = torch.zeros(b, h + 2 * padding, w + 2 * padding, x.shape[3], dtype=x.dtype)
    padded[:, padding:padding + h, padding:padding + w] = x
    out = []
    for i in range(b):
        crop = padded[i, dy[i, 0]:dy[i, 0] + h, dx[i, 0]:dx[i, 0] + w]
        out.append(crop.flip(1) if flips[i, 0] else crop)
    return torch.stack(out)


def test_crop_and_flip_match_the_per_sample_reference():
    x = torch.randint(0, 256, (16, 6, 7, 3), dtype=torch.uint8)
    for padding, flip in [(2, True), (1, False), (0, True), (3, True)]:
        got = random_crop_flip(x, padding, flip, torch.Generator().manual_seed(5))
        assert got.shape == x.shape and got.dtype == torch.uint8
        assert torch.equal(got, _reference(x, padding, flip, 5)), (padding, flip)


def test_flip_only_gives_the_image_or_its_mirror_and_both_occur():
    x = torch.randint(0, 256, (64, 5, 5, 1), dtype=torch.uint8)
    got = random_crop_flip(x, 0, True, torch.Generator().manual_seed(0))
    same = (got == x).flatten(1).all(1)
    mirrored = (got == x.flip(2)).flatten(1).all(1)
    assert bool((same | mirrored).all()) and same.any() and mirrored.any()
    assert torch.equal(random_crop_flip(x, 0, False), x)


def test_transform_normalises_and_uses_the_requested_layout():
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    for channels_last in (True, False):
        t = BatchTransform(mean, std, Augment(0, False), channels_last=channels_last)
        out = t(x, train=False)
        expected = (x.permute(0, 3, 1, 2).float() / 255 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
            std).view(1, 3, 1, 1)
        assert out.shape == (4, 3, 8, 8)
        assert torch.allclose(out, expected, atol=1e-5)
        assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)


def test_transform_resizes_and_augments_only_when_training():
    x = torch.randint(0, 256, (3, 8, 8, 1), dtype=torch.uint8)
    t = BatchTransform((0.5,), (0.25,), Augment(2, True), size=16)
    assert t(x, train=False).shape == (3, 1, 16, 16)
    assert torch.equal(t(x, train=False), t(x, train=False))
    a = t(x, train=True, generator=torch.Generator().manual_seed(1))
    b = t(x, train=True, generator=torch.Generator().manual_seed(1))
    c = t(x, train=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert np.isfinite(a.numpy()).all()
