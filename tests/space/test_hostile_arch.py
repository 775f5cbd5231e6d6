"""Issue 21 item 3: architecture input that crashed or was accepted as nonsense is a one-line ValueError."""

from __future__ import annotations

import pytest

from mnas.space import Arch, as_arch, decode_block
from mnas.space.blocks import BlockSpec


@pytest.mark.parametrize("value", [None, 3, 2.5, True, b"r1_k3_s11_e1_i32_o16"])
def test_as_arch_names_what_it_got_instead_of_iterating_it(value):
    with pytest.raises(ValueError, match=f"got {type(value).__name__}"):
        as_arch(value)


@pytest.mark.parametrize("token", ["s33", "s44"])
def test_a_block_stride_over_2_is_refused(token):
    with pytest.raises(ValueError, match=f"bad stride in token '{token}': a block's stride is 1 or 2"):
        decode_block(f"r1_k3_{token}_e1_i32_o16")
    with pytest.raises(ValueError, match="BlockSpec.stride=3"):
        BlockSpec("ds", 1, 3, 3, 1, 32, 16)


def test_strides_1_and_2_still_round_trip():
    for text in ("r1_k3_s11_e1_i32_o16", "r2_k5_s22_e6_i16_o24_se0.25"):
        assert str(decode_block(text)) == text
    assert isinstance(as_arch(["r1_k3_s22_e1_i32_o16"]), Arch)
