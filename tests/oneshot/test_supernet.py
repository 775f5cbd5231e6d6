"""The MnasNet supernet: every sub-network it holds is exactly the standalone build, with its weights."""

import numpy as np
import pytest
import torch

from mnas.models import build_model, count_macs, count_params
from mnas.oneshot import Supernet, arch_macs, build_supernet
from mnas.space import MnasNetSpace, decode_arch

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {
    "default-32": dict(num_classes=10, input_size=32, width_mult=0.25),
    "strided-16": dict(num_classes=5, input_size=16, width_mult=0.35, strides=(2, 1, 2, 1, 2, 1, 1, 1), head_chs=0,
                       act="swish"),
    "options": dict(num_classes=3, input_size=24, width_mult=0.5, ops=("mbconv3", "mbconv6", "ds"),
                    kernel_sizes=(3, 5, 7), se_ratios=(0.0, 0.25, 0.5), skips=("pool", "identity"),
                    filter_mults=(0.5, 1.0), layer_deltas=(0, 1, 2), act="hswish"),
    "conv-only": dict(num_classes=4, input_size=8, width_mult=0.25, ops=("conv",), kernel_sizes=(1, 3),
                      skips=("none", "pool"), se_ratios=(0.25,)),
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def supernet(request):
    torch.manual_seed(0)
    net = build_supernet(MnasNetSpace(**SPACES[request.param]), in_chans=2)
    _perturb_bn(net)
    return net


def _perturb_bn(module):
    """Random BN statistics and affine terms, so a wrong slice shows up in the outputs."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                for t in (m.weight, m.bias, m.running_mean):
                    t.copy_(torch.randn(t.shape, generator=g) * 0.2 + (1.0 if t is m.weight else 0.0))
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def _archs(net, n):
    rng = np.random.default_rng(0)
    return [net.largest_arch(), net.smallest_arch()] + [net.sample_arch(rng) for _ in range(n)]


def test_subnet_is_the_standalone_build_and_computes_what_the_supernet_does(supernet):
    space = supernet.space
    x = torch.randn(3, 2, space.input_size, space.input_size)
    supernet.eval()
    for arch in _archs(supernet, 6):
        sub = supernet.subnet(arch)
        ref = build_model(arch, space.num_classes, in_chans=2)
        assert str(sub) == str(ref)  # same module tree, layer by layer
        assert count_params(sub) == count_params(ref)
        assert [k for k in sub.state_dict()] == [k for k in ref.state_dict()]
        supernet.set_active(arch)
        with torch.no_grad():
            torch.testing.assert_close(sub.eval()(x), supernet(x), rtol=1e-4, atol=1e-5)


def test_tokens_and_arch_select_the_same_subnetwork(supernet):
    space = supernet.space
    x = torch.randn(2, 2, space.input_size, space.input_size)
    tokens = space.sample_tokens(3)
    supernet.eval()
    supernet.set_active_tokens(tokens)
    assert supernet.active_arch == space.decode(tokens)
    with torch.no_grad():
        a = supernet(x)
        supernet.set_active(space.decode(tokens))
        torch.testing.assert_close(a, supernet(x))


def test_train_mode_matches_and_updates_only_the_active_bn_slice():
    torch.manual_seed(0)
    space = MnasNetSpace(10, 16, width_mult=0.25)
    net = build_supernet(space)
    arch = net.smallest_arch()
    net.set_active(arch)
    sub = net.subnet(arch).train()
    net.train()
    bn = net.stages[0][0].ops["ds"].conv_pw.bn
    before = bn.running_mean.clone()
    x = torch.randn(4, 3, 16, 16)
    torch.manual_seed(5)  # the same dropout mask for both
    out = net(x)
    torch.manual_seed(5)
    torch.testing.assert_close(out, sub(x))
    c = arch.blocks[0].out_chs
    assert not torch.equal(bn.running_mean[:c], before[:c])
    assert torch.equal(bn.running_mean[c:], before[c:])
    sub2 = net.subnet(arch)
    torch.testing.assert_close(sub2.state_dict()["blocks.0.0.conv_pw.1.running_mean"],
                               sub.state_dict()["blocks.0.0.conv_pw.1.running_mean"])


def test_arch_macs_counts_what_count_macs_counts():
    space = MnasNetSpace(10, 32, width_mult=0.25)
    with_proj = decode_arch("r1_k3_s11_e1_i8_o16, proj_r1_k1_s22_i16_o24 | s1_h64_d0.0_relu")
    for arch in [space.sample(i) for i in range(4)] + [with_proj]:
        exact = count_macs(build_model(arch, 10), 32)
        assert abs(arch_macs(arch, 32, 10) - exact) <= 0.02 * exact  # pooling and SE gating are not counted


def test_largest_and_smallest_bound_sampled_archs():
    net = build_supernet(MnasNetSpace(10, 16, width_mult=0.25))
    macs = lambda a: arch_macs(a, 16, 10)  # noqa: E731
    sampled = [macs(net.sample_arch(i)) for i in range(30)]
    assert macs(net.smallest_arch()) <= min(sampled) and max(sampled) <= macs(net.largest_arch())


def test_config_round_trip_rebuilds_the_same_supernet():
    space = MnasNetSpace(7, 16, width_mult=0.35, kernel_sizes=(3, 5, 7), act="relu6")
    net = build_supernet(space, in_chans=1)
    again = Supernet.from_config(net.config())
    assert again.config() == net.config()
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
    again.load_state_dict(net.state_dict())


def test_bad_uses_fail_with_one_line_errors():
    net = build_supernet(MnasNetSpace(10, 16, width_mult=0.25))
    other = MnasNetSpace(10, 16, width_mult=1.0).sample(0)
    with pytest.raises(ValueError, match="does not fit the supernet"):
        net.set_active(other)
    with pytest.raises(ValueError, match="7 blocks|blocks, the space has"):
        net.set_active(decode_arch("r1_k3_s11_e1_i8_o16 | s1_h1280_d0.2_relu"))
    with pytest.raises(ValueError, match="unknown space class"):
        Supernet.from_config({"space": {"class": "Nope", "settings": {}}})
    with pytest.raises(ValueError, match="in_chans"):
        build_supernet(MnasNetSpace(10, 16), in_chans=0)
    with pytest.raises(ValueError, match="no supernet for"):
        build_supernet(object())
