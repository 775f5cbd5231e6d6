"""The meta-graph: shapes, per-image routing, plain route networks, the controller."""

from __future__ import annotations

import pytest
import torch

from mnas.instance.controller import Controller
from mnas.instance.metagraph import STAGES, MetaGraph, MetaGraphConfig, canonical_policy
from mnas.instance.routes import fixed_routes, policy_bits

CFG = MetaGraphConfig(width=0.25, input_size=16, num_classes=4, stem_stride=1)


@pytest.fixture
def meta(one_torch_thread):
    torch.manual_seed(0)
    return MetaGraph(CFG).eval()


def test_layers_follow_mobilenetv2_stages():
    shapes = MetaGraphConfig(width=0.5).layers()
    assert len(shapes) == sum(r for _, r, _ in STAGES) == 17
    assert [s.stride for s in shapes if s.stride == 2] == [2, 2, 2]
    assert sum(s.skippable for s in shapes) == 10  # every layer but each stage's first
    assert MetaGraphConfig(width=0.5).chs(24) == 16 and MetaGraphConfig(width=0.5).head_out == 1280
    assert CFG.final_res == 2 and MetaGraphConfig(width=0.5, stem_stride=2).final_res == 2


def test_width_half_has_mobilenetv2_x05_filters():
    from mnas.space import get_arch

    arch = get_arch("mobilenetv2_x0.5")
    outs = [s.out_chs for s in MetaGraphConfig(width=0.5).layers()]
    assert sorted(set(outs)) == sorted({b.out_chs for b in arch.blocks})


def test_every_route_network_equals_the_routed_meta_graph(meta):
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, 16, 16, generator=gen)
    policy = torch.rand(6, 17, 5, generator=gen) < 0.4
    policy[0] = False  # no module anywhere: skips and default modules only
    with torch.no_grad():
        batched = meta(x, policy)
        bits = policy_bits(policy.numpy(), meta.skippable)
        for i in range(6):
            single = meta.route_net(bits[i]).eval()(x[i:i + 1])
            torch.testing.assert_close(single, batched[i:i + 1], rtol=1e-4, atol=1e-5)


def test_all_on_policy_equals_no_policy(meta):
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(meta(x, torch.ones(3, 17, 5)), meta(x), rtol=1e-4, atol=1e-5)


def test_route_network_holds_only_its_modules(meta):
    routes = fixed_routes(meta.skippable)
    params = {name: sum(p.numel() for p in meta.route_net(r).parameters()) for name, r in routes.items()}
    assert params["k3e3"] < params["k3e6"] < params["k5e6"] < params["all"] and params["min"] < params["all"]
    assert params["all"] < sum(p.numel() for p in meta.parameters()) + 1


def test_training_reaches_only_the_modules_used(meta):
    meta.train()
    policy = torch.zeros(4, 17, 5)
    policy[:, :, 1] = 1  # k3e3 everywhere
    meta(torch.randn(4, 3, 16, 16), policy).sum().backward()
    layer = meta.layers[5]
    assert all(p.grad is not None for p in layer.ops["1"].parameters())
    assert all(p.grad is None for p in layer.ops["0"].parameters())


def test_canonical_policy_fills_defaults_only_where_shape_changes():
    skippable = [False, True]
    out = canonical_policy(torch.zeros(1, 2, 5), skippable)
    assert out[0, 0].tolist() == [False] * 4 + [True] and not out[0, 1].any()


def test_bad_policy_shape_is_refused(meta):
    with pytest.raises(ValueError, match="expected \\(2, 17, 5\\)"):
        meta(torch.randn(2, 3, 16, 16), torch.ones(2, 16, 5))


@pytest.mark.parametrize("kwargs, match", [({"width": 0}, "width"), ({"input_size": 0}, "input_size"),
                                           ({"stages": ((16, 0, 1),)}, "stages"), ({"act": "gelu"}, "activation")])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MetaGraphConfig(**kwargs)


def test_controller_outputs_one_probability_per_module(one_torch_thread):
    c = Controller(17, width=4)
    probs = c(torch.randn(2, 3, 16, 16))
    assert probs.shape == (2, 17, 5)
    torch.testing.assert_close(probs, torch.full_like(probs, 0.5))  # no preference before training
    with pytest.raises(ValueError, match="downsample"):
        Controller(17, downsample=0)


def test_zero_initialised_modules_still_learn(one_torch_thread):
    """Regression: the basic block ended in BN + ReLU6, so zero-gamma left its output at relu6(0) = 0 with
    zero gradient to the scale and the shift: every basic module of a shape-keeping layer was dead for good."""
    torch.manual_seed(0)
    meta = MetaGraph(CFG).train()
    x, y = torch.randn(8, 3, 16, 16), torch.arange(8) % 4
    torch.nn.functional.cross_entropy(meta(x), y).backward()
    for layer in meta.layers:
        if layer.skippable:
            for key, op in layer.ops.items():
                last = [m for m in op.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
                assert last.weight.grad.abs().sum() > 0, f"module {key} gets no gradient"
