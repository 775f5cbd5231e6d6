"""Block strings: reference strings decode as written, round trips, and strict errors."""

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mnas.space import Arch, BlockSpec, decode_arch, decode_block, encode_arch, encode_block

REFERENCE = {
    "mnasnet_a1": "r1_k3_s11_e1_i32_o16_noskip, r2_k3_s22_e6_i16_o24, r3_k5_s22_e3_i24_o40_se0.25, "
    "r4_k3_s22_e6_i40_o80, r2_k3_s11_e6_i80_o112_se0.25, r3_k5_s22_e6_i112_o160_se0.25, r1_k3_s11_e6_i160_o320",
    "mnasnet_b1": "r1_k3_s11_e1_i32_o16_noskip, r3_k3_s22_e3_i16_o24, r3_k5_s22_e3_i24_o40, r3_k5_s22_e6_i40_o80, "
    "r2_k3_s11_e6_i80_o96, r4_k5_s22_e6_i96_o192, r1_k3_s11_e6_i192_o320_noskip",
    "mnasnet_small": "r1_k3_s11_e1_i16_o8, r1_k3_s22_e3_i8_o16, r2_k3_s22_e6_i16_o16, r4_k5_s22_e6_i16_o32_se0.25, "
    "r3_k3_s11_e6_i32_o32_se0.25, r3_k5_s22_e6_i32_o88_se0.25, r1_k3_s11_e6_i88_o144",
}


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_reference_strings_decode_as_written(name):
    strings = [s.strip() for s in REFERENCE[name].split(",")]
    for s in strings:
        assert encode_block(decode_block(s)) == s
    arch = decode_arch(REFERENCE[name])
    assert [str(b) for b in arch.blocks] == strings


def test_block_fields_decoded():
    b = decode_block("r3_k5_s22_e3_i24_o40_se0.25")
    assert b == BlockSpec("mbconv", 3, 5, 2, 3, 24, 40, 0.25, "identity")
    assert decode_block("r1_k3_s11_e1_i32_o16_noskip").op == "ds"
    assert decode_block("r1_k3_s11_e1_i32_o16_noskip").skip == "none"
    assert decode_block("conv_r2_k5_s22_i8_o16_poolskip") == BlockSpec("conv", 2, 5, 2, 1, 8, 16, 0.0, "pool")


blocks = st.builds(
    lambda op, r, k, s, e, i, o, se, skip: BlockSpec(op, r, k, s, 1 if op != "mbconv" else e, i, o, se, skip),
    st.sampled_from(["conv", "ds", "mbconv"]), st.integers(1, 64), st.sampled_from([1, 3, 5, 7, 9, 15]),
    st.integers(1, 2), st.integers(2, 64), st.integers(1, 100_000), st.integers(1, 100_000),
    st.one_of(st.just(0.0), st.floats(min_value=1e-6, max_value=1.0)),
    st.sampled_from(["identity", "pool", "none"]),
)


@given(blocks)
@settings(max_examples=300, deadline=None)
def test_block_round_trip(spec):
    text = encode_block(spec)
    assert decode_block(text) == spec
    assert encode_block(decode_block(text)) == text


@st.composite
def archs(draw):
    specs = draw(st.lists(blocks, min_size=1, max_size=8))
    chained, prev = [], None
    for b in specs:
        if prev is not None:
            b = BlockSpec(b.op, b.repeats, b.kernel_size, b.stride, b.exp_ratio, prev, b.out_chs, b.se_ratio, b.skip)
        chained.append(b)
        prev = b.out_chs
    return Arch(tuple(chained), draw(st.integers(1, 4)), draw(st.integers(0, 4096)),
                draw(st.floats(min_value=0.0, max_value=0.99)), draw(st.sampled_from(["relu", "relu6", "swish", "hswish"])))


@given(archs())
@settings(max_examples=200, deadline=None)
def test_arch_round_trips(arch):
    text = encode_arch(arch)
    assert decode_arch(text) == arch
    assert encode_arch(decode_arch(text)) == text
    assert Arch.from_json(arch.to_json()) == arch
    assert Arch.from_dict(json.loads(json.dumps(arch.to_dict()))) == arch


@pytest.mark.parametrize("bad, token", [
    ("r1_k4_s11_e1_i32_o16", "k4"),            # even kernel
    ("r1_k3_s12_e1_i32_o16", "s12"),           # stride not written twice
    ("r1_k3_s11_e1_i32_o016", "o016"),         # leading zero
    ("r0_k3_s11_e1_i32_o16", "r0"),
    ("r1_k3_s11_e1_i32_o16_se.25", "se.25"),   # non-canonical float
    ("r1_k3_s11_e1_i32_o16_se0.0", "se0.0"),
    ("r1_k3_s11_e1_i32_o16_se1.5", "se1.5"),
    ("r1_k3_s11_e1_i32_o16_skip", "skip"),
    ("r1_k3_s11_e1_i32_o16_noskip_se0.25", "se0.25"),  # wrong order
    ("k3_r1_s11_e1_i32_o16", "k3"),
    ("conv_r1_k3_s11_e6_i32_o16", "e6"),        # conv has no expansion
    ("r1_k3_s11_i32_o16", "i32"),              # missing expansion
    ("proj_r1_k3_s22_i16_o24", "k3"),          # a proj layer is 1x1
    ("proj_r1_k1_s22_e1_i16_o24", "e1"),       # proj has no expansion
    ("proj_r1_k1_s22_i16_o24_se0.25", "se0.25"),  # nor squeeze-excite
])
def test_bad_block_names_the_token(bad, token):
    with pytest.raises(ValueError, match=token.replace(".", r"\.")):
        decode_block(bad)


def test_bad_arch_inputs():
    with pytest.raises(ValueError, match="takes i24 but block 0 gives o16"):
        decode_arch("r1_k3_s11_e1_i32_o16, r1_k3_s11_e6_i24_o24")
    with pytest.raises(ValueError, match="no blocks"):
        decode_arch(" , ")
    with pytest.raises(ValueError, match="global settings"):
        decode_arch("r1_k3_s11_e1_i32_o16 | s2_h1280")
    with pytest.raises(ValueError, match="activation"):
        decode_arch("r1_k3_s11_e1_i32_o16 | s2_h1280_d0.2_gelu")
    with pytest.raises(ValueError, match="unknown key 'width'"):
        Arch.from_dict({"blocks": ["r1_k3_s11_e1_i32_o16"], "width": 2})
    with pytest.raises(ValueError, match="does not parse"):
        Arch.from_json("{not json")
    with pytest.raises(ValueError, match="use op='ds'"):
        BlockSpec("mbconv", exp_ratio=1)


def test_lenient_separators_and_default_globals():
    a = decode_arch("r1_k3_s11_e1_i32_o16_noskip r2_k3_s22_e6_i16_o24,r1_k3_s11_e6_i24_o24")
    assert (a.stem_stride, a.head_chs, a.dropout, a.act) == (2, 1280, 0.2, "relu")
    assert decode_arch(str(a)) == a


_ALPHABET = "rkseiocnvpoldx_0123456789.,| -+e"


def test_fuzz_only_value_error():
    rng = random.Random(0)
    seeds = [encode_arch(decode_arch(REFERENCE["mnasnet_a1"])), REFERENCE["mnasnet_b1"], "conv_r1_k3_s11_i8_o8_poolskip"]
    accepted = 0
    for i in range(5000):
        if i % 2:
            s = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))
        else:  # mutate a valid string: nearly valid input finds the subtle paths
            s = list(rng.choice(seeds))
            for _ in range(rng.randint(1, 3)):
                s[rng.randrange(len(s))] = rng.choice(_ALPHABET)
            s = "".join(s)
        for fn in (decode_block, decode_arch):
            try:
                out = fn(s)
            except ValueError as exc:
                assert str(exc) and "\n" not in str(exc)
            else:
                accepted += 1
                assert fn(str(out)) == out
    assert accepted > 0


@pytest.mark.parametrize("text", ["proj_r1_k1_s22_i16_o24", "proj_r1_k1_s11_i8_o16_noskip", "proj_r2_k1_s11_i8_o8_poolskip"])
def test_proj_blocks_round_trip(text):
    spec = decode_block(text)
    assert spec.op == "proj" and spec.kernel_size == 1 and spec.exp_ratio == 1
    assert encode_block(spec) == text


def test_proj_blockspec_refuses_kernel_and_se():
    with pytest.raises(ValueError, match="kernel_size must be 1"):
        BlockSpec("proj", 1, 3, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="no squeeze-excite"):
        BlockSpec("proj", 1, 1, 1, 1, 8, 8, 0.25)


def test_proj_layer_builds_a_1x1_conv_and_bn_without_activation():
    import torch

    from mnas.models import build_model, count_params
    from mnas.models.blocks import ProjLayer, make_layer

    arch = decode_arch("r1_k3_s11_e1_i8_o8, proj_r1_k1_s22_i8_o16 | s1_h0_d0.0_relu")
    model = build_model(arch, 4)
    layer = model.blocks[1][0]
    assert isinstance(layer, ProjLayer) and len(layer.conv) == 2  # conv, BN: no activation
    assert layer.conv[0].kernel_size == (1, 1) and layer.conv[0].stride == (2, 2)
    assert count_params(layer) == 8 * 16 + 2 * 16
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 4)
    layer.eval()
    x = torch.randn(1, 8, 4, 4)
    assert (layer(x) < 0).any()  # no ReLU after the BN
    with pytest.raises(ValueError, match="1x1 conv without SE"):
        make_layer("proj", 8, 8, 3, 1, 1, 0.0, "identity", torch.nn.ReLU)
