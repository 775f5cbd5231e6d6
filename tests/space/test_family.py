"""The family registry: dispatch of text and JSON, registration rules, and the block chain run
through the shared family suite (its text and errors are unchanged)."""

from dataclasses import dataclass

import pytest

from mnas.space import Arch, as_arch, families, family_of, get_arch, get_family, parse_arch, register_family
from mnas.space.family import ArchFamily, arch_from_dict, is_architecture
from mnas.space.testing import FamilyTestSuite

BLOCKS = ("r1_k3_s11_e1_i32_o16_noskip, r2_k3_s22_e6_i16_o24 | s2_h1280_d0.2_relu",
          "r1_k3_s11_e1_i16_o16, r1_k5_s22_e3_i16_o24_se0.25, r2_k3_s11_e6_i24_o24 | s1_h0_d0.0_swish")
NB201 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


class TestBlockChainFamily(FamilyTestSuite):
    input_size, num_classes, in_chans = 16, 5, 3

    @pytest.fixture
    def family(self):
        return get_family("blocks")

    @pytest.fixture
    def archs(self):
        return [as_arch(t) for t in BLOCKS] + [get_arch("mnasnet_a1")]


def test_builtin_families_and_dispatch():
    assert families()[:1] == ("blocks",) and {"darts", "nb201"} <= set(families())
    assert type(parse_arch(BLOCKS[0])) is Arch
    assert family_of(parse_arch(NB201)).name == "nb201"
    assert family_of(parse_arch("Genotype(normal=[('skip_connect', 0), ('skip_connect', 1)], normal_concat=[2],"
                                " reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1)], reduce_concat=[2])")).name == "darts"


def test_block_chain_errors_are_unchanged():
    # The block chain is the fallback: text no other family claims gets the block parser's message.
    with pytest.raises(ValueError, match="r9_k3"):
        as_arch("r9_k3_bogus")
    with pytest.raises(ValueError, match="at most one"):
        parse_arch("r1_k3_s11_e1_i32_o16 | s2_h1280_d0.2_relu | x")


def test_json_dispatch_by_family_key():
    a = as_arch(BLOCKS[0])
    assert arch_from_dict(a.to_dict()) == a  # a block chain's dict has no 'family' key, as before
    assert arch_from_dict({**a.to_dict(), "family": "blocks"}) == a
    cell = as_arch(NB201)
    assert as_arch(cell.to_dict()) == cell
    with pytest.raises(ValueError, match="unknown architecture family 'nope'"):
        as_arch({"family": "nope", "arch": "x"})
    with pytest.raises(ValueError, match="'family'"):
        as_arch({"family": 3})


def test_non_architectures_are_refused():
    assert not is_architecture("text") and not is_architecture(3)
    with pytest.raises(ValueError, match="not an architecture of any registered family"):
        family_of(object())
    with pytest.raises(ValueError, match="must be text"):
        parse_arch(12)


@dataclass(frozen=True)
class _Toy:
    width: int

    def __str__(self):
        return f"toy{self.width}"

    def to_dict(self):
        return {"family": "toy_registry", "arch": str(self)}


class _ToyFamily(ArchFamily):
    name = "toy_registry"
    arch_type = _Toy

    def matches(self, text):
        return text.strip().startswith("toy")

    def parse(self, text):
        digits = text.strip()[3:]
        if not digits.isdigit():
            raise ValueError(f"bad token '{text.strip()}': expected toy<width>")
        return _Toy(int(digits))


def test_register_a_family():
    fam = _ToyFamily()
    assert register_family(fam) is fam and register_family(fam) is fam  # the same object again: no-op
    try:
        assert parse_arch("toy7") == _Toy(7) and as_arch("toy7") == _Toy(7)
        assert as_arch({"family": "toy_registry", "arch": "toy3"}) == _Toy(3)
        assert family_of(_Toy(1)) is fam and "toy_registry" in families()
        with pytest.raises(ValueError, match="already registered"):
            register_family(_ToyFamily())
        assert register_family(_ToyFamily(), replace=True) is not fam
        with pytest.raises(ValueError, match="toyx"):
            parse_arch("toyx")
        assert type(parse_arch(BLOCKS[0])) is Arch  # block strings still read as block strings
    finally:
        from mnas.space import family as registry
        registry._FAMILIES.pop("toy_registry", None)


@pytest.mark.parametrize(("attrs", "message"), [
    ({"name": "blocks"}, "block chain's"), ({"name": "two words"}, "identifier"), ({"arch_type": None}, "arch_type"),
])
def test_register_family_validates(attrs, message):
    fam = _ToyFamily()
    for k, v in attrs.items():
        setattr(fam, k, v)
    with pytest.raises(ValueError, match=message):
        register_family(fam)
    with pytest.raises(ValueError, match="expects an ArchFamily"):
        register_family("toy")
