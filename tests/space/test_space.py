"""The factorized MnasNet space and the SearchSpace contract."""

import numpy as np
import pytest

from mnas.space import Arch, BlockSpec, Decision, MnasNetSpace, SearchSpace, auto_strides, get_arch


def test_size_is_432_per_block():
    space = MnasNetSpace(10, 224)
    assert len(space.decisions) == 42
    assert space.size == 432**7


@pytest.mark.parametrize("size, expected", [
    (224, (2, 1, 2, 2, 2, 1, 2, 1)), (32, (1, 1, 1, 2, 2, 1, 2, 1)), (8, (1, 1, 1, 1, 1, 1, 2, 1)),
])
def test_auto_strides(size, expected):
    assert auto_strides(size) == expected
    assert MnasNetSpace(10, size).strides == expected


def test_strides_setting_and_errors():
    space = MnasNetSpace(10, 32, strides=(1, 1, 2, 2, 1, 1, 1, 1))
    arch = space.sample(0)
    assert [arch.stem_stride] + [b.stride for b in arch.blocks] == [1, 1, 2, 2, 1, 1, 1, 1]
    with pytest.raises(ValueError, match="strides"):
        MnasNetSpace(10, 32, strides=(2, 2))
    with pytest.raises(ValueError, match="num_classes"):
        MnasNetSpace(1, 32)
    with pytest.raises(ValueError, match="unknown op 'mb9'"):
        MnasNetSpace(10, 32, ops=("mb9",))


@pytest.mark.parametrize(("options", "needle"), [
    # Only the first and the last choice of each list used to be probed: a bad middle one, a negative
    # filter multiplier or a repeated choice built a space that failed (or wasted draws) mid-search.
    ({"kernel_sizes": (3, 4, 5)}, "kernel_sizes: choice 4 does not build"),
    ({"se_ratios": (0.0, 1.5, 0.25)}, "se_ratios: choice 1.5 does not build"),
    ({"filter_mults": (0.5, -1.0, 1.0)}, "not a positive number"),
    ({"skips": ("identity", "identity")}, "each once"),
    ({"layer_deltas": ()}, "at least one choice"),
])
def test_every_choice_of_every_option_list_is_checked(options, needle):
    with pytest.raises(ValueError, match=needle):
        MnasNetSpace(10, 32, **options)


def test_encode_decode_round_trip_and_mutate():
    space = MnasNetSpace(10, 32)
    rng = np.random.default_rng(1)
    for _ in range(200):
        tokens = space.sample_tokens(rng)
        arch = space.decode(tokens)
        assert space.decode(space.encode(arch)) == arch
        mutated = space.mutate_tokens(tokens, rng)
        assert sum(a != b for a, b in zip(tokens, mutated, strict=True)) == 1
        assert space.check_tokens(mutated) == mutated


def test_decoded_blocks_follow_the_rules():
    space = MnasNetSpace(10, 224)
    rng = np.random.default_rng(2)
    for _ in range(100):
        arch = space.sample(rng)
        assert arch.stem_chs == 32 and len(arch.blocks) == 7
        for b, (filters, layers, stride) in zip(arch.blocks, space.stages, strict=True):
            assert b.repeats in {max(1, layers + d) for d in (-1, 0, 1)}
            assert b.stride == stride
            assert b.out_chs % 8 == 0 and 0.75 * filters * 0.9 <= b.out_chs <= 1.25 * filters + 8


def test_zoo_models_outside_the_space_are_refused():
    with pytest.raises(ValueError, match="not in this space"):
        MnasNetSpace(10, 224).encode(get_arch("mnasnet_a1"))


def test_bad_tokens():
    space = MnasNetSpace(10, 32)
    with pytest.raises(ValueError, match="expected 42 tokens"):
        space.decode([0] * 3)
    with pytest.raises(ValueError, match=r"token 5 \(block1_layers\) = 7"):
        space.decode([0] * 5 + [7] + [0] * 36)


class TinySpace(SearchSpace):
    """A user-defined space: depth and width of a plain MBConv stack."""

    decisions = (Decision("depth", (1, 2, 3)), Decision("width", (8, 16)))

    def decode(self, tokens):
        depth, width = (d.choices[t] for d, t in zip(self.decisions, self.check_tokens(tokens), strict=True))
        return Arch((BlockSpec("mbconv", depth, 3, 2, 3, 8, width),), stem_stride=1, head_chs=0, dropout=0.0)


def test_user_defined_space():
    space = TinySpace()
    assert space.size == 6
    arch = space.sample(0)
    assert isinstance(arch, Arch)
    assert space.describe([2, 1]) == {"depth": 3, "width": 16}
    with pytest.raises(NotImplementedError):
        space.encode(arch)
