"""The layer-wise space: decode/encode, the canonical merge rule, skips, settings and errors."""

import json

import numpy as np
import pytest

from mnas.space import Arch, LayerwiseSpace, SearchSpace, parse_layer_op


def test_defaults_follow_mobilenetv2_with_one_decision_per_layer():
    space = LayerwiseSpace(10, 224)
    assert isinstance(space, SearchSpace)
    assert len(space.decisions) == 17 and space.size == 5**17
    assert space.decisions[0].name == "stage1_layer1" and space.decisions[-1].name == "stage7_layer1"
    assert space.strides == (2, 1, 2, 2, 2, 1, 2, 1)


def test_round_trip_many_spaces():
    spaces = [LayerwiseSpace(10, 32), LayerwiseSpace(5, 16, width_mult=0.35, ops=("k3e1", "conv_k5", "skip")),
              LayerwiseSpace(3, 8, stem_chs=8, stages=((8, 3, 1), (8, 2, 1), (16, 2, 2)), head_chs=0,
                             ops=("k3e3", "k5e6_se0.25", "skip"))]
    rng = np.random.default_rng(0)
    for space in spaces:
        for _ in range(150):
            tokens = space.sample_tokens(rng)
            arch = space.decode(tokens)
            canonical = space.encode(arch)
            assert space.decode(canonical) == arch
            assert space.encode(space.decode(canonical)) == canonical


def test_merge_rule_and_disappearing_identity_skips():
    space = LayerwiseSpace(10, 32, stem_chs=16, stages=((16, 3, 1), (24, 2, 2)), head_chs=0,
                           ops=("k3e3", "k5e6", "skip"))
    a, b, skip = 0, 1, 2
    arch = space.decode([a, skip, a, b, a])
    # stage 1: a, (identity), a -> one block of 2; stage 2: b with stride 2, then a
    assert [str(x) for x in arch.blocks] == ["r2_k3_s11_e3_i16_o16", "r1_k5_s22_e6_i16_o24", "r1_k3_s11_e3_i24_o24"]
    assert space.encode(arch) == [a, a, skip, b, a]  # kept layers first, skips after
    # a skip that changes the shape is a 1x1 projection, never dropped
    arch = space.decode([skip, skip, skip, skip, skip])
    assert [str(x) for x in arch.blocks] == ["proj_r1_k1_s22_i16_o24"]
    # the same op across a stage boundary merges only where the stride is 1 and filters are kept
    arch = space.decode([a, a, a, a, a])
    assert [x.repeats for x in arch.blocks] == [3, 2]


def test_settings_rebuild_the_space():
    space = LayerwiseSpace(7, 24, width_mult=0.5, stem_chs=16, stem_stride=1, head_chs=640, act="swish",
                           ops=("k3e3", "conv_k3_se0.25", "skip"), stages=((16, 2, 1), (32, 2, 2), (64, 1, 2)))
    again = LayerwiseSpace(**json.loads(json.dumps(space.settings())))
    assert again.decisions == space.decisions
    tokens = space.sample_tokens(1)
    assert again.decode(tokens) == space.decode(tokens)


@pytest.mark.parametrize("name, parsed", [
    ("skip", None), ("k3e1", ("ds", 3, 1, 0.0)), ("k5e6", ("mbconv", 5, 6, 0.0)), ("conv_k3", ("conv", 3, 1, 0.0)),
    ("k7e3_se0.25", ("mbconv", 7, 3, 0.25)),
])
def test_op_names(name, parsed):
    assert parse_layer_op(name) == parsed


@pytest.mark.parametrize("kwargs, match", [
    (dict(ops=("k3e9x",)), "unknown layer op 'k3e9x'"),
    (dict(ops=("k4e3",)), "kernel_size"),
    (dict(ops=("k3e3_se0.250",)), "canonically"),
    (dict(ops=("k3e3", "k3e3")), "distinct"),
    (dict(ops=()), "non-empty"),
    (dict(stages=((16, 0, 1),)), "depth"),
    (dict(stages=((16, 1, 3),)), "stride"),
    (dict(stages="abc"), "stages"),
    (dict(stem_stride=3), "stem_stride"),
    (dict(strides=(1, 1)), "strides"),
    (dict(act="gelu"), "activation"),
    (dict(stem_chs=16, stages=((16, 2, 1),), strides=(1, 1)), "identity skip"),
])
def test_bad_settings_fail_in_one_line(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        LayerwiseSpace(10, 32, **kwargs)
    assert "\n" not in str(info.value)


def test_given_strides_are_checked_as_the_mnasnet_space_checks_them():
    from mnas.space import MnasNetSpace

    assert LayerwiseSpace(10, 32, strides=(1, 1, 1, 2, 2, 1, 2, 1)).strides == (1, 1, 1, 2, 2, 1, 2, 1)
    assert LayerwiseSpace(10, 32).strides == MnasNetSpace(10, 32).strides
    with pytest.raises(ValueError, match=r"strides=\(1, 3\): expected 8 values \(stem, then each stage\), each 1 or 2"):
        LayerwiseSpace(10, 32, strides=(1, 3))
    with pytest.raises(ValueError, match=r"expected 8 values \(stem, then each block\), each 1 or 2"):
        MnasNetSpace(10, 32, strides=(1, 1, 1, 2, 2, 1, 2, 3))


def test_archs_outside_the_space_are_refused():
    space = LayerwiseSpace(10, 32)
    other = LayerwiseSpace(10, 32, ops=("k3e1", "skip")).sample(0)
    with pytest.raises(ValueError, match="not in this space"):
        space.encode(other)
    too_deep = space.decode([0] * len(space.decisions))
    blocks = list(too_deep.blocks)
    blocks[1] = blocks[1].__class__(**{**blocks[1].__dict__, "repeats": blocks[1].repeats + 1})
    with pytest.raises(ValueError, match="not in this space"):
        space.encode(Arch(tuple(blocks), too_deep.stem_stride, too_deep.head_chs, too_deep.dropout, too_deep.act))


def test_skeleton_space_holds_the_zoo_networks_channel_plan():
    from mnas.models import build_model, count_params
    from mnas.space import get_arch
    from mnas.space.presets import skeleton_space
    from mnas.space.zoo import for_space

    space = skeleton_space("mnasnet_b1", 10, 32, width_mult=0.5, ops=("k3e1", "k3e3", "k3e6", "k5e3", "k5e6", "skip"))
    ref = for_space(get_arch("mnasnet_b1_x0.5"), 32, space.strides)
    assert space.strides == (1, 1, 1, 2, 2, 1, 2, 1) and space.act == "relu" and space.head_chs == 1280
    assert space.widths == tuple(b.out_chs for b in ref.blocks) and space.stem_chs == ref.blocks[0].in_chs
    plan = ["k3e1"] + ["k3e3"] * 3 + ["k5e3"] * 3 + ["k5e6"] * 3 + ["k3e6"] * 2 + ["k5e6"] * 4 + ["k3e6"]
    arch = space.decode([space.ops.index(op) for op in plan])
    assert [(b.repeats, b.kernel_size, b.exp_ratio, b.stride) for b in arch.blocks] == \
        [(b.repeats, b.kernel_size, b.exp_ratio, b.stride) for b in ref.blocks]
    assert count_params(build_model(arch, num_classes=10)) == count_params(build_model(ref, num_classes=10))
    # settings alone rebuild it (a supernet checkpoint stores only those)
    assert LayerwiseSpace(**space.settings()).settings() == space.settings()
    mbv2 = skeleton_space("mobilenetv2", 10, 32)
    assert mbv2.stages == LayerwiseSpace(10, 32).stages and mbv2.act == "relu6"
    with pytest.raises(ValueError, match="unknown model|expected a zoo name"):
        skeleton_space("resnet50", 10, 32)
