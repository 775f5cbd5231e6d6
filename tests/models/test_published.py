"""timm's published weights in the zoo builds: mapped by position, shapes checked, timm's BN eps.

The fixture holds the names and shapes of timm 1.0.31's state dicts (no weights), so the mapping is
tested without timm; the bit-exact comparison with timm's own forward runs only where timm imports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mnas.models import build_model
from mnas.models.published import TIMM_BN_EPS, download_published, load_timm_weights, read_state_dict, timm_name

SHAPES = json.loads((Path(__file__).with_name("timm_state_shapes.json")).read_text())


def _fake_timm(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: (torch.randn(shape, generator=g) if shape else torch.tensor(7)) for k, shape in SHAPES[name]}


@pytest.mark.parametrize(("zoo", "timm"), [("mnasnet_b1", "mnasnet_100"), ("mobilenetv2_x0.5", "mobilenetv2_050"),
                                           ("mnasnet_a1", "semnasnet_100")])
def test_every_timm_tensor_lands_at_its_counterpart(zoo: str, timm: str) -> None:
    assert timm_name(zoo) == timm
    state = _fake_timm(timm)
    model = load_timm_weights(zoo, state)
    ours = model.state_dict()
    assert len(ours) == len(state)
    for (theirs, tensor), mine in zip(state.items(), ours, strict=True):
        assert torch.equal(ours[mine], tensor), (theirs, mine)
    # names line up structurally, not only by shape: timm's stem BN is our stem's second module
    assert list(ours)[:2] == ["conv_stem.0.weight", "conv_stem.1.weight"]
    assert all(m.eps == TIMM_BN_EPS for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert not model.training


def test_other_class_counts_keep_the_model_classifier() -> None:
    model = build_model("mobilenetv2_x0.5", num_classes=10)
    before = model.classifier.weight.clone()
    load_timm_weights(model, _fake_timm("mobilenetv2_050"))
    assert torch.equal(model.classifier.weight, before)
    with pytest.raises(ValueError, match="classifier: the weights have"):
        load_timm_weights(build_model("mobilenetv2_x0.5", num_classes=10), _fake_timm("mobilenetv2_050"), classifier=True)


def test_the_wrong_network_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="tensors, the model"):
        load_timm_weights("mnasnet_small", _fake_timm("mnasnet_100"))
    with pytest.raises(ValueError, match="does not fit"):
        load_timm_weights("mnasnet_b1_x1.4", _fake_timm("mnasnet_100"))
    with pytest.raises(ValueError, match="not a zoo network timm builds"):
        timm_name("resnet50")
    with pytest.raises(ValueError, match="publishes no ImageNet weights"):
        download_published("mnasnet_b1_x0.5", "/nonexistent")


def test_files_are_read_from_a_torch_save_or_a_checkpoint(tmp_path: Path) -> None:
    state = _fake_timm("mobilenetv2_050", seed=1)
    torch.save(state, tmp_path / "pytorch_model.bin")
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "ckpt.pth")
    for f in ("pytorch_model.bin", "ckpt.pth"):
        model = load_timm_weights("mobilenetv2_x0.5", tmp_path / f)
        assert torch.equal(model.conv_stem[0].weight, state["conv_stem.weight"])
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        read_state_dict(tmp_path / "junk.bin")
    with pytest.raises(ValueError, match="no such file"):
        read_state_dict(tmp_path / "missing.bin")


def test_download_skips_a_file_already_there(tmp_path: Path) -> None:
    (tmp_path / "mobilenetv2_050.lamb_in1k.bin").write_bytes(b"x")  # no network call is made
    assert download_published("mobilenetv2_x0.5", tmp_path) == tmp_path / "mobilenetv2_050.lamb_in1k.bin"


def test_logits_equal_timm_bit_for_bit_where_timm_imports() -> None:
    timm = pytest.importorskip("timm")
    torch.manual_seed(0)
    theirs = timm.create_model("mobilenetv2_050", pretrained=False).eval()
    for m in theirs.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    ours = load_timm_weights("mobilenetv2_x0.5", theirs.state_dict())
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))
