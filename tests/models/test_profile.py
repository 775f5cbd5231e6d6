"""Analytic counting (`arch_profile`) equals measurement, and absurd sizes are refused before building."""

from __future__ import annotations

import numpy as np
import pytest

from mnas.models import build_model, count_macs, count_params
from mnas.models.profile import MAX_PARAMS, arch_profile, check_size, profile
from mnas.space import ZOO_LISTING, MnasNetSpace, as_arch, get_arch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _measured(arch, size, classes, chans):
    model = build_model(arch, num_classes=classes, in_chans=chans)
    return count_params(model), count_macs(model, size, chans)


@pytest.mark.parametrize("name", ZOO_LISTING)
def test_zoo_counts_equal_measurement(name):
    arch = get_arch(name)
    prof = arch_profile(arch, 224, 1000, 3)
    assert (prof.params, prof.macs) == _measured(arch, 224, 1000, 3)


@pytest.mark.parametrize("settings", [
    dict(num_classes=10, input_size=32, width_mult=0.5),
    dict(num_classes=10, input_size=8, width_mult=0.35, head_chs=256),
    dict(num_classes=100, input_size=56, width_mult=0.75, head_chs=0),
    dict(num_classes=7, input_size=13, width_mult=0.25, act="hswish"),
])
def test_space_samples_equal_measurement(settings):
    space = MnasNetSpace(**settings)
    rng = np.random.default_rng(sum(map(ord, repr(settings))))
    chans = 1 if settings["input_size"] == 8 else 3
    for _ in range(8):
        arch = space.sample(rng)
        prof = arch_profile(arch, space.input_size, space.num_classes, chans)
        assert (prof.params, prof.macs) == _measured(arch, space.input_size, space.num_classes, chans), str(arch)


@pytest.mark.parametrize("text", [
    "conv_r2_k5_s22_i8_o16_se0.5_poolskip, r3_k3_s11_e1_i16_o16_poolskip | s1_h0_d0.0_relu6",
    "r1_k7_s22_e6_i16_o24_se0.25_poolskip, r2_k3_s11_e3_i24_o24_noskip | s3_h64_d0.1_swish",
    "r1_k3_s11_e1_i4_o4_se1.0, conv_r1_k1_s11_i4_o12 | s4_h8_d0.0_relu",
])
def test_every_op_and_skip_equals_measurement(text):
    for size in (5, 17, (9, 14)):
        prof = arch_profile(text, size, 11, 2)
        assert (prof.params, prof.macs) == _measured(as_arch(text), size, 11, 2), (text, size)


def test_peak_memory_by_hand():
    """A 4x4x1 image, stem 8 filters at stride 1, one ds layer 8->8 with identity skip, no head, 3 classes.

    stem: 16 in + 128 out = 144; dw: x 128 + 128 out (x is the kept input) = 256;
    pw: dw 128 + out 128 + kept x 128 = 384; add: 128 + 128 + 128 = 384; pool 128 + 8; fc 8 + 3."""
    prof = arch_profile("r1_k3_s11_e1_i8_o8 | s1_h0_d0.0_relu", 4, 3, 1)
    assert prof.peak_memory == 384 * 4
    no_skip = arch_profile("r1_k3_s11_e1_i8_o8_noskip | s1_h0_d0.0_relu", 4, 3, 1)
    assert no_skip.peak_memory == 256 * 4  # nothing kept alive: the largest is one conv's input + output


def test_peak_memory_of_mobilenetv2_is_its_first_strided_depthwise():
    """MobileNetV2 at 224: block 2's first layer expands 16x112x112 to 96x112x112, whose stride-2
    depthwise conv then holds 96x112x112 in and 96x56x56 out (MCUNet's first-stage bottleneck)."""
    prof = arch_profile(get_arch("mobilenetv2"), 224)
    assert prof.peak_memory == (96 * 112 * 112 + 96 * 56 * 56) * 4
    assert arch_profile(get_arch("mobilenetv2"), 112).peak_memory == prof.peak_memory // 4


def test_profile_of_an_arch_is_analytic_and_of_a_model_measured():
    arch = get_arch("mnasnet_small")
    assert profile(arch, 64, 10).to_dict()["peak_memory"] > 0
    model = build_model(arch, 10)
    assert (profile(model, 64).params, profile(model, 64).macs) == (profile(arch, 64, 10).params, profile(arch, 64, 10).macs)


def test_absurd_architecture_is_refused_before_allocating():
    text = "r1_k3_s11_e64_i100000_o100000"
    assert arch_profile(text, 32).params > 10**12  # counted without a single tensor
    with pytest.raises(ValueError, match="parameters .* above the 2,000,000,000"):
        build_model(text)
    with pytest.raises(ValueError, match="above"):
        check_size(text)
    assert check_size(get_arch("mnasnet_a1")) == 3_887_038 < MAX_PARAMS


def test_cli_refuses_an_absurd_architecture_with_exit_2(capsys):
    from mnas.cli import main

    rc = main(["latency", "measure", "r1_k3_s11_e64_i100000_o100000", "--input-size", "32", "--backend", "torch"])
    err = capsys.readouterr().err
    assert rc == 2 and "above the" in err and "internal error" not in err


def test_bad_arguments():
    with pytest.raises(ValueError, match="input_size"):
        arch_profile(get_arch("mnasnet_small"), 0)
    with pytest.raises(ValueError, match="num_classes"):
        arch_profile(get_arch("mnasnet_small"), 32, num_classes=0)
