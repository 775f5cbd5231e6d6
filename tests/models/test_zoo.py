"""The zoo reproduces REFERENCE.md: exact parameter counts and MACs within 1%."""

import pytest

from mnas.models import build_model, profile
from mnas.space import MnasNetSpace, adapt_strides, get_arch

REFERENCE = {  # name: (params, MACs in millions) at 1000 classes, 224x224
    "mnasnet_a1": (3_887_038, 311.6), "mnasnet_a1_x0.5": (2_082_006, 103.2),
    "mnasnet_a1_x0.75": (2_912_278, 223.4), "mnasnet_a1_x1.4": (6_105_992, 586.3),
    "mnasnet_b1": (4_383_312, 314.4), "mnasnet_b1_x0.5": (2_218_512, 104.5),
    "mnasnet_b1_x0.75": (3_170_208, 215.5), "mnasnet_b1_x1.3": (6_282_256, 526.4),
    "mnasnet_b1_x1.4": (7_115_728, 588.8), "mnasnet_small": (2_030_264, 68.3),
    "mobilenetv2": (3_504_872, 300.8),
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_params_and_macs_match_reference(name):
    params, macs = REFERENCE[name]
    prof = profile(get_arch(name), input_size=224, num_classes=1000)
    assert prof.params == params
    assert abs(prof.macs / 1e6 - macs) / macs < 0.01


def test_macs_scale_with_input_size():
    arch = get_arch("mnasnet_b1")
    assert profile(arch, 112).macs < profile(arch, 224).macs / 3.5


def test_adapt_strides_matches_the_space_schedule():
    arch = adapt_strides(get_arch("mnasnet_b1_x0.5"), 32)
    assert [arch.stem_stride] + [b.stride for b in arch.blocks] == list(MnasNetSpace(10, 32).strides)
    assert adapt_strides(get_arch("mnasnet_b1"), 224) == get_arch("mnasnet_b1")


def test_build_model_errors():
    with pytest.raises(ValueError, match="num_classes"):
        build_model(get_arch("mnasnet_small"), num_classes=0)
    with pytest.raises(ValueError, match="unknown model|bad token"):
        build_model("mnasnet_z9")


@pytest.mark.parametrize("typo, suggestion", [("mnasnet_a2", "mnasnet_a1"), ("mobilnetv2_x0.5", "mobilenetv2_x0.5"),
                                              ("mnasnetb1", "mnasnet_b1"), ("MNASNET_SMALL", "mnasnet_small")])
def test_zoo_typos_suggest_the_nearest_name(typo, suggestion, capsys):
    from mnas.cli import main

    with pytest.raises(ValueError, match=f"unknown model '{typo}', did you mean '{suggestion}'"):
        build_model(typo)
    assert main(["arch", "show", typo]) == 2
    assert f"did you mean '{suggestion}'" in capsys.readouterr().err


def test_block_string_errors_stay_block_string_errors():
    with pytest.raises(ValueError, match="ends early"):
        build_model("r1_k3_s11_e1_i32")
