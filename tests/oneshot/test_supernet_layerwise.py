"""The layer-wise supernet: sub-networks equal their standalone builds, token by token."""

import numpy as np
import pytest
import torch

from mnas.models import build_model, count_params
from mnas.oneshot import LayerwiseSupernet, Supernet, build_supernet
from mnas.space import LayerwiseSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPACES = {
    "default-32": dict(num_classes=10, input_size=32, width_mult=0.25),
    "custom": dict(num_classes=4, input_size=16, stem_chs=8, stem_stride=1, stages=((8, 2, 1), (16, 3, 2), (24, 2, 2)),
                   head_chs=0, act="hswish", ops=("k3e1", "k5e6_se0.25", "conv_k3", "k7e3", "skip")),
    "no-skip": dict(num_classes=3, input_size=8, width_mult=0.5, stages=((16, 2, 1), (24, 2, 2)), head_chs=32,
                    ops=("k3e3", "k3e6")),
}


@pytest.fixture(scope="module", params=sorted(SPACES))
def supernet(request):
    torch.manual_seed(0)
    net = build_supernet(LayerwiseSpace(**SPACES[request.param]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # random BN statistics, so that a wrong slice shows in the outputs
        for m in net.bn_modules():
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.2)
    return net.eval()


def test_subnets_equal_standalone_builds(supernet):
    space = supernet.space
    assert isinstance(supernet, LayerwiseSupernet)
    x = torch.randn(2, 3, space.input_size, space.input_size)
    rng = np.random.default_rng(0)
    for tokens in [space.sample_tokens(rng) for _ in range(6)] + [[0] * len(space.decisions)]:
        arch = space.decode(tokens)
        supernet.set_active_tokens(tokens)
        with torch.no_grad():
            by_tokens = supernet(x)
            sub = supernet.subnet()  # the active positions, as chosen by the tokens
            torch.testing.assert_close(sub.eval()(x), by_tokens, rtol=1e-4, atol=1e-5)
            ref = build_model(arch, space.num_classes)
            assert str(sub) == str(ref) and count_params(sub) == count_params(ref)
            canonical = supernet.subnet(arch)
            supernet.set_active(arch)
            torch.testing.assert_close(canonical.eval()(x), supernet(x), rtol=1e-4, atol=1e-5)


def test_every_layer_can_be_skipped_and_the_proj_layer_has_weights():
    space = LayerwiseSpace(10, 16, width_mult=0.5)  # stem 16 filters, stage 1 8, stage 2 16
    net = build_supernet(space)
    skip = space.ops.index("skip")
    arch = space.decode([skip] * len(space.decisions))
    assert all(b.op == "proj" for b in arch.blocks)
    net.set_active(arch)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 10)
    assert count_params(net.subnet(arch)) == count_params(build_model(arch, 10))
    assert "proj" in net.stages[0][0].ops and "proj" not in net.stages[1][1].ops  # only where shapes change


def test_non_canonical_tokens_use_their_own_positions():
    space = LayerwiseSpace(10, 16, stages=((16, 1, 1), (16, 3, 1)), head_chs=0)
    net = build_supernet(space).eval()
    a, skip = 0, space.ops.index("skip")
    first, last = [a, a, skip, skip], [a, skip, skip, a]
    assert space.decode(first) == space.decode(last)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        net.set_active_tokens(first)
        y1 = net(x)
        net.set_active_tokens(last)
        y2 = net(x)
        assert not torch.allclose(y1, y2)  # different positions, different weights
        torch.testing.assert_close(net.subnet().eval()(x), y2)


def test_config_round_trip():
    net = build_supernet(LayerwiseSpace(**SPACES["custom"]))
    again = Supernet.from_config(net.config())
    assert again.config() == net.config() and isinstance(again, LayerwiseSupernet)
    again.load_state_dict(net.state_dict())
