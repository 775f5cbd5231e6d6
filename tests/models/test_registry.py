"""Registry-driven: every zoo model and a few hundred sampled architectures build, run forward
without NaN, give the right shape, and put a gradient on every parameter."""

import numpy as np
import pytest
import torch

from mnas.models import build_model
from mnas.space import ZOO_LISTING, MnasNetSpace, adapt_strides, get_arch


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Tiny tensors: one torch thread (see tests/conftest.py)."""


def _check(model, x, num_classes):
    y = model(x)
    assert y.shape == (x.shape[0], num_classes)
    assert torch.isfinite(y).all()
    y.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing, f"no finite gradient for {missing[:3]}"


@pytest.mark.parametrize("name", ZOO_LISTING)
def test_zoo_forward_and_gradients(name):
    torch.manual_seed(0)
    arch = adapt_strides(get_arch(name), 32)
    model = build_model(arch, num_classes=10)
    _check(model, torch.randn(2, 3, 32, 32), 10)
    model.eval()
    with torch.no_grad():
        assert build_model(str(arch), num_classes=10).eval()(torch.zeros(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize("input_size, width, seed", [(16, 0.5, 0), (8, 0.35, 1), (32, 0.25, 2)])
def test_sampled_architectures_build_and_train(input_size, width, seed):
    torch.manual_seed(seed)
    space = MnasNetSpace(10, input_size, width_mult=width, head_chs=64)
    rng = np.random.default_rng(seed)
    for _ in range(100):
        arch = space.sample(rng)
        model = build_model(arch, num_classes=10, in_chans=1 if input_size == 8 else 3)
        x = torch.randn(2, 1 if input_size == 8 else 3, input_size, input_size)
        _check(model, x, 10)


def test_model_carries_its_arch_string():
    arch = get_arch("mnasnet_small")
    assert build_model(arch).arch_string == str(arch)


def test_skip_ops_change_the_network():
    base = "r2_k3_s11_e3_i16_o16"
    x = torch.randn(1, 16, 8, 8)
    outs = {}
    for suffix in ("", "_poolskip", "_noskip"):
        torch.manual_seed(0)
        model = build_model(f"conv_r1_k3_s11_i16_o16_noskip, {base}{suffix} | s1_h0_d0.0_relu", num_classes=4, in_chans=3)
        block = model.blocks[1].eval()
        with torch.no_grad():
            outs[suffix] = block(x)
    assert not torch.allclose(outs[""], outs["_noskip"])
    assert not torch.allclose(outs["_poolskip"], outs["_noskip"])
    assert not torch.allclose(outs[""], outs["_poolskip"])
