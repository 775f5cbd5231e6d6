"""Warm start: a trained standalone model's weights land in the supernet's slices, exactly."""

import pytest
import torch

from mnas.models import build_model
from mnas.oneshot import build_supernet
from mnas.oneshot.warmstart import warm_start
from mnas.space import LayerwiseSpace, MnasNetSpace, adapt_strides, get_arch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _trained(arch, classes=10, seed=0):
    """A stand-in for a trained model: every parameter and BN statistic perturbed at random."""
    torch.manual_seed(seed)
    model = build_model(arch, classes)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if t.is_floating_point():
                t.copy_(t + 0.3 * torch.randn(t.shape, generator=g) if "running_var" not in name
                        else torch.rand(t.shape, generator=g) + 0.5)
    return model.eval()


def _same_function(net, arch, model, size):
    x = torch.randn(2, 3, size, size)
    sub = net.subnet(arch).eval()
    for k, v in model.state_dict().items():
        torch.testing.assert_close(sub.state_dict()[k], v, msg=k)
    net.eval().set_active(arch)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-5)


def test_model_weights_land_in_the_slices_and_nothing_else_moves():
    space = MnasNetSpace(10, 16, width_mult=0.25)
    net = build_supernet(space)
    arch = space.sample(3)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    report = warm_start(net, _trained(arch))
    assert report["arch"] == str(arch) and report["classifier"] and report["tensors"] > 0
    _same_function(net, arch, _trained(arch), 16)
    changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
    assert changed and len(changed) < len(before)  # only the positions arch uses
    assert not any(".ops.conv." in k for k in changed if all(b.op != "conv" for b in arch.blocks))


def test_from_a_model_file_and_from_a_state_dict(tmp_path):
    space = MnasNetSpace(10, 16, width_mult=0.25, kernel_sizes=(3, 5, 7))
    arch = space.sample(5)
    model = _trained(arch, seed=1)
    path = tmp_path / "model.pt"
    torch.save({"format": "mnas.model/1", "arch": str(arch), "num_classes": 10, "in_chans": 3,
                "state_dict": model.state_dict()}, path)
    net = build_supernet(space)
    warm_start(net, path)
    _same_function(net, arch, model, 16)
    net2 = build_supernet(space)
    warm_start(net2, model.state_dict(), arch)
    _same_function(net2, arch, model, 16)


def test_other_classes_keep_the_supernets_classifier():
    space = MnasNetSpace(10, 16, width_mult=0.25)
    net = build_supernet(space)
    head = net.classifier.weight.detach().clone()
    arch = space.sample(0)
    assert warm_start(net, _trained(arch, classes=1000))["classifier"] is False
    assert torch.equal(net.classifier.weight, head)
    with pytest.raises(ValueError, match="classifier=False"):
        warm_start(net, _trained(arch, classes=1000), classifier=True)


def test_zoo_model_at_the_space_width_fits_the_mnasnet_supernet():
    space = MnasNetSpace(10, 32, width_mult=0.5, act="relu6")
    arch = adapt_strides(get_arch("mobilenetv2_x0.5"), 32)
    net = build_supernet(space)
    model = _trained(arch, seed=2)
    warm_start(net, model)
    _same_function(net, arch, model, 32)


def test_layerwise_supernet_warm_start():
    space = LayerwiseSpace(10, 16, width_mult=0.5)
    arch = space.sample(4)
    net = build_supernet(space)
    model = _trained(arch, seed=3)
    warm_start(net, model)
    _same_function(net, arch, model, 16)


def test_bad_sources_fail_in_one_line(tmp_path):
    net = build_supernet(MnasNetSpace(10, 16, width_mult=0.25))
    wide = MnasNetSpace(10, 16, width_mult=1.0).sample(0)
    with pytest.raises(ValueError, match="does not fit the supernet"):
        warm_start(net, _trained(wide))
    with pytest.raises(ValueError, match="not a model of"):
        warm_start(net, _trained(net.space.sample(1)).state_dict(), net.space.sample(2))
    with pytest.raises(ValueError, match="not a file"):
        warm_start(net, tmp_path / "nope.pt")
    (tmp_path / "x.pt").write_bytes(b"")
    torch.save({"format": "other"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a mnas model"):
        warm_start(net, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="needs its architecture"):
        net.load_subnet_weights({})


def test_published_weights_reach_the_supernet_through_the_zoo_build():
    import json
    from pathlib import Path

    from mnas.models.published import load_timm_weights

    shapes = json.loads((Path(__file__).parents[1] / "models" / "timm_state_shapes.json").read_text())["mobilenetv2_050"]
    g = torch.Generator().manual_seed(3)
    state = {k: (torch.randn(s, generator=g) if s else torch.tensor(1)) for k, s in shapes}
    arch = adapt_strides(get_arch("mobilenetv2_x0.5"), 32)  # same tensors as ImageNet's build; CIFAR strides
    model = load_timm_weights(build_model(arch, 10), state)  # 1000 ImageNet classes: the model keeps its own head
    net = build_supernet(MnasNetSpace(10, 32, width_mult=0.5, act="relu6"))
    warm_start(net, model)
    sub = net.subnet(arch).state_dict()
    assert torch.equal(sub["conv_stem.0.weight"], state["conv_stem.weight"])
    assert torch.equal(sub["conv_head.0.weight"], state["conv_head.weight"])
