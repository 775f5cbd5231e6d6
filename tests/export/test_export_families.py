"""Export of a built cell model: the architecture travels with it, channels and classes are read from it."""

import json

import pytest
import torch

from mnas.deploy import export
from mnas.models import build_model
from mnas.space import as_arch

NB201 = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|avg_pool_3x3~1|nor_conv_3x3~2| | c4_n1"


def test_a_built_cell_model_exports_to_json_with_its_architecture(tmp_path):
    # regression: only an MnasNetModel kept its architecture; a cell model was "not an mnas model"
    torch.manual_seed(0)
    model = build_model(as_arch(NB201), num_classes=7, in_chans=1)
    result = export(model, tmp_path / "cell.json", input_size=8)
    doc = json.loads((tmp_path / "cell.json").read_text())
    assert result.arch == NB201 and doc["arch"] == NB201 and as_arch(doc["arch"]) == as_arch(NB201)
    assert (doc["model"]["num_classes"], doc["model"]["in_chans"]) == (7, 1)


def test_a_built_cell_model_exports_to_onnx_with_its_input_channels(tmp_path):
    pytest.importorskip("onnxruntime")
    # regression: input channels were read from `conv_stem`, which only the block chain has (3 was assumed)
    torch.manual_seed(0)
    model = build_model(as_arch(NB201), num_classes=5, in_chans=1)
    result = export(model, tmp_path / "cell.onnx", input_size=8, check=True)
    assert (result.in_chans, result.num_classes) == (1, 5)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
