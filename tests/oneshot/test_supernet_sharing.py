"""`sharing="separate"`: every op candidate has weights of its own (FBNet's sharing), sub-networks still
equal their standalone builds, and the choice survives a config round trip."""

import numpy as np
import pytest
import torch

from mnas.models import build_model, count_params
from mnas.oneshot import Supernet, build_supernet
from mnas.space import LayerwiseSpace, MnasNetSpace

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAYERWISE = dict(num_classes=3, input_size=16, width_mult=0.25, stages=((16, 2, 1), (24, 2, 2)), head_chs=32,
                 ops=("skip", "k3e3", "k5e6", "k3e1_se0.25"))


def _spaces():
    return {"layerwise": LayerwiseSpace(**LAYERWISE), "mnasnet": MnasNetSpace(4, 16, width_mult=0.25)}


def _randomise_bn(net, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.bn_modules():
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return net.eval()


@pytest.mark.parametrize("kind", ["layerwise", "mnasnet"])
def test_separate_subnets_equal_standalone_builds(kind):
    space = _spaces()[kind]
    torch.manual_seed(0)
    net = _randomise_bn(build_supernet(space, sharing="separate"))
    x = torch.randn(2, 3, space.input_size, space.input_size)
    rng = np.random.default_rng(0)
    for _ in range(5):
        arch = space.sample(rng)
        net.set_active(arch)
        with torch.no_grad():
            sub = net.subnet(arch)
            torch.testing.assert_close(sub.eval()(x), net(x), rtol=1e-4, atol=1e-5)
        ref = build_model(arch, space.num_classes)
        assert str(sub) == str(ref) and count_params(sub) == count_params(ref)


def test_separate_candidates_do_not_share_weights():
    space = LayerwiseSpace(**LAYERWISE)
    small = space.decode([space.ops.index("k3e3")] * len(space.decisions))
    x = torch.randn(2, 3, 16, 16)
    changed = {}
    for sharing in ("shared", "separate"):
        torch.manual_seed(0)
        net = _randomise_bn(build_supernet(space, sharing=sharing))
        net.set_active(small)
        with torch.no_grad():
            before = net(x)
            for stage in net.stages:  # perturb every weight that k5e6 runs on
                for position in stage:
                    key = "mbconv" if sharing == "shared" else "mbconv_k5_e6_se0"
                    for p in position.ops[key].parameters():
                        p.add_(torch.randn_like(p))
            changed[sharing] = not torch.allclose(net(x), before)
    assert changed == {"shared": True, "separate": False}


def test_separate_has_more_weights_and_names_each_candidate():
    space = LayerwiseSpace(**LAYERWISE)
    shared, separate = build_supernet(space), build_supernet(space, sharing="separate")
    assert count_params(separate) > count_params(shared)
    assert set(separate.stages[0][1].ops) == {"mbconv_k3_e3_se0", "mbconv_k5_e6_se0", "ds_k3_e1_se250"}
    assert shared.sharing == "shared" and separate.sharing == "separate"


def test_sharing_config_round_trip_and_refusals():
    space = LayerwiseSpace(**LAYERWISE)
    config = build_supernet(space, sharing="separate").config()
    assert config["sharing"] == "separate"
    assert Supernet.from_config(config).sharing == "separate"
    assert "sharing" not in build_supernet(space).config()  # shared configs are as before the option
    with pytest.raises(ValueError, match="unknown sharing 'tied'"):
        Supernet.from_config({**config, "sharing": "tied"})
    with pytest.raises(ValueError, match="sharing='tied': expected one of shared, separate"):
        build_supernet(space, sharing="tied")


def test_separate_position_refuses_a_candidate_it_has_no_weights_for():
    from mnas.space import BlockSpec
    space = LayerwiseSpace(**LAYERWISE)
    position = build_supernet(space, sharing="separate").stages[0][1]
    k5e3 = BlockSpec("mbconv", 1, 5, 1, 3, position.max_in, position.max_out)
    with pytest.raises(ValueError, match="kernel 5 expansion 3 SE 0.0 has no weights of its own here"):
        position.check(k5e3)
    build_supernet(space).stages[0][1].check(k5e3)  # shared: k5e3 is a slice of the k5e6 superkernel
    with pytest.raises(ValueError, match="op 'conv' kernel 3 .* has no weights of its own here .this position's: ds_k3"):
        position.check(BlockSpec("conv", 1, 3, 1, 1, position.max_in, position.max_out))


def test_separate_refuses_two_candidates_that_would_share_a_name():
    space = LayerwiseSpace(**{**LAYERWISE, "ops": ("skip", "k3e3_se0.0625", "k3e3_se0.062")})
    with pytest.raises(ValueError, match="share the name 'mbconv_k3_e3_se62'"):
        build_supernet(space, sharing="separate")
    build_supernet(space)  # shared: both are slices of one superkernel
