"""The cell families through the shared family suite, and the built DARTS and NB201 networks
against the papers' parameter counts (see tests/space/test_cells.py for where they come from)."""

import pytest
import torch

from mnas.models import build_model, count_macs, count_params
from mnas.space import DARTS_V1, DARTS_V2, as_arch, get_family
from mnas.space.testing import FamilyTestSuite

SMALL_V2 = DARTS_V2.replace(channels=8, layers=5, auxiliary=True, drop_path=0.2)
NB201_TEXTS = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
               "|nor_conv_1x1~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
               "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    pass


class TestDartsFamily(FamilyTestSuite):
    fuzz_cases = 100

    @pytest.fixture
    def family(self):
        return get_family("darts")

    @pytest.fixture
    def archs(self):
        return [SMALL_V2, DARTS_V1.replace(channels=4, layers=3, auxiliary=False), DARTS_V2, DARTS_V1]


class TestNB201Family(FamilyTestSuite):
    build_count = 2

    @pytest.fixture
    def family(self):
        return get_family("nb201")

    @pytest.fixture
    def archs(self):
        small = [as_arch(f"{t} | c4_n1") for t in NB201_TEXTS]
        return small + [as_arch(t) for t in NB201_TEXTS]


@pytest.mark.parametrize(("genotype", "printed"), [(DARTS_V2, 3_349_342), (DARTS_V1, 3_169_414)])
def test_built_darts_counts_as_the_darts_code_prints(genotype, printed):
    model = build_model(genotype, num_classes=10)
    no_aux = sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name)
    assert no_aux == printed
    assert count_params(model) == get_family("darts").count(genotype, 10)[0]


def test_built_nb201_best_cell():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    model = build_model(text, num_classes=10)
    assert count_params(model) == 1_288_506
    assert count_macs(model, 32) == get_family("nb201").count(as_arch(text), 10)[1]


def test_darts_auxiliary_logits_and_drop_path():
    model = build_model(SMALL_V2, num_classes=7)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x)
    assert model.aux_logits is None and torch.equal(a, b)  # eval: no auxiliary head, no drop-path
    model.train()
    torch.manual_seed(0)
    out = model(x)
    assert model.aux_logits is not None and model.aux_logits.shape == (4, 7) and out.shape == (4, 7)
    model.drop_path_prob = 0.0
    for m in model.modules():  # freeze batch statistics so that only drop-path could differ
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.drop_path_prob = 0.5
        assert not torch.equal(model(x), model(x))


def test_darts_auxiliary_head_refuses_small_inputs():
    model = build_model(SMALL_V2, num_classes=3).train()
    with pytest.raises(ValueError, match="noaux"):
        model(torch.randn(2, 3, 16, 16))
    model.eval()
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 3)  # evaluation never runs the head


def test_build_model_takes_text_of_any_family_and_channels():
    model = build_model(str(SMALL_V2.replace(auxiliary=False)), num_classes=4, in_chans=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    model = build_model(NB201_TEXTS[0] + " | c4_n1", num_classes=4, in_chans=1)
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 4)
    with pytest.raises(ValueError, match="num_classes"):
        build_model(NB201_TEXTS[0], num_classes=0)
