"""`mnas.export` (`mnas.deploy.export`): ONNX and TorchScript files reproduce PyTorch's logits; JSON; trained weights."""

import json
import zipfile

import pytest
import torch

from mnas.deploy import ExportResult, export, format_from_path
from mnas.latency.export import calibrate_bn
from mnas.models import build_model
from mnas.space import as_arch, get_arch
from mnas.study import InMemoryStorage

ARCH = "r1_k3_s11_e1_i8_o8, r1_k3_s22_e3_i8_o16_se0.25 | s2_h32_d0.0_relu"
OTHER = "r1_k3_s11_e1_i8_o8, r1_k5_s22_e3_i8_o16 | s2_h32_d0.0_relu"


def trained_file(path, arch=ARCH, num_classes=5, in_chans=1, input_size=16, seed=0):
    """A model.pt as `mnas train` writes it, with weights that give non-trivial logits."""
    torch.manual_seed(seed)
    model = calibrate_bn(build_model(arch, num_classes=num_classes, in_chans=in_chans), (4, in_chans, input_size, input_size))
    torch.save({"format": "mnas.model/1", "arch": str(as_arch(arch)), "num_classes": num_classes, "in_chans": in_chans,
                "input_size": input_size, "state_dict": model.state_dict(),
                "normalization": {"mean": [0.5] * in_chans, "std": [0.25] * in_chans},
                "class_names": [f"c{i}" for i in range(num_classes)],
                "metrics": {"test_accuracy": 0.8, "test_loss": float("nan")}, "config": {}}, path)
    return model


def logits(model, x):
    with torch.no_grad():
        return model.eval()(x)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return calibrate_bn(build_model(ARCH, num_classes=7), (4, 3, 24, 24))  # calibrated: logits of unit scale


def test_onnx_matches_pytorch_in_onnxruntime(model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    result = export(model, tmp_path / "m.onnx", input_size=24, check=True)
    assert isinstance(result, ExportResult) and result.format == "onnx" and result.max_abs_diff < 1e-4
    assert (result.num_classes, result.in_chans, result.input_size) == (7, 3, 24)
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    for batch in (1, 3):  # dynamic batch
        x = torch.randn(batch, 3, 24, 24, generator=torch.Generator().manual_seed(batch))
        expected = logits(model, x)
        got = torch.from_numpy(session.run(None, {"input": x.numpy()})[0])
        assert got.shape == (batch, 7) and expected.abs().max() > 0.1
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-3)
    meta = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert meta["mnas.arch"] == str(as_arch(ARCH)) and meta["mnas.num_classes"] == "7"
    model.train()
    export(model, tmp_path / "m2.onnx", input_size=24)
    assert model.training  # the caller's module is left as it was


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_torchscript_matches_pytorch(model, tmp_path):
    result = export(model, tmp_path / "m.pt", input_size=24, check=True)
    assert result.format == "torchscript" and result.max_abs_diff < 1e-5
    extra = {"mnas.json": ""}
    loaded = torch.jit.load(str(tmp_path / "m.pt"), _extra_files=extra)
    x = torch.randn(2, 3, 24, 24)
    torch.testing.assert_close(loaded(x), logits(model, x))
    assert json.loads(extra["mnas.json"])["arch"] == str(as_arch(ARCH))
    assert zipfile.is_zipfile(tmp_path / "m.pt")


def test_json_has_the_arch_and_the_trial_figures(tmp_path):
    storage = InMemoryStorage()
    number = storage.create_trial([1, 2], ARCH)
    storage.complete_trial(number, 0.75, 3.5, 0.8, params=123, macs=456, train_seconds=9.0)
    trial = storage.get_trial(number)
    result = export(trial, tmp_path / "a.json", input_size=32, num_classes=10)
    doc = json.loads((tmp_path / "a.json").read_text())
    assert result.trial == number and doc["arch"] == str(as_arch(ARCH))
    arch_fields = {k: doc[k] for k in ("blocks", "stem_stride", "head_chs", "dropout", "act")}
    assert as_arch(arch_fields) == as_arch(ARCH)  # the Arch JSON round-trips
    assert doc["trial"]["accuracy"] == 0.75 and doc["trial"]["latency_ms"] == 3.5 and doc["trial"]["number"] == 0
    assert doc["model"]["num_classes"] == 10 and doc["model"]["input_size"] == 32
    assert doc["model"]["params"] == sum(p.numel() for p in build_model(ARCH, num_classes=10).parameters())


def test_zoo_name_and_string_and_format_from_suffix(tmp_path):
    assert [format_from_path(n) for n in ("a.onnx", "b.PT", "c.pth", "d.json")] == ["onnx", "torchscript",
                                                                                    "torchscript", "json"]
    with pytest.raises(ValueError, match="cannot tell the export format"):
        format_from_path("model.bin")
    with pytest.raises(ValueError, match="unknown export format"):
        export(ARCH, tmp_path / "x.onnx", "coreml")
    doc = json.loads(export(ARCH, tmp_path / "a.json").path and (tmp_path / "a.json").read_text())
    assert doc["model"]["num_classes"] == 1000 and doc["model"]["input_size"] == 224 and doc["model"]["in_chans"] == 3
    doc = json.loads(export("mnasnet_small", tmp_path / "z.json", input_size=32).path and (tmp_path / "z.json").read_text())
    assert doc["head_chs"] == 1280 and doc["arch"] == str(get_arch("mnasnet_small"))


def test_weights_are_loaded_and_settings_come_from_the_file(tmp_path):
    pytest.importorskip("onnxruntime")
    trained = trained_file(tmp_path / "model.pt")
    result = export(None, tmp_path / "w.onnx", weights=tmp_path / "model.pt", check=True)
    assert (result.num_classes, result.in_chans, result.input_size) == (5, 1, 16)
    assert result.weights == str(tmp_path / "model.pt") and result.arch == str(as_arch(ARCH))
    # The file holds the trained weights, not a fresh initialisation.
    import onnxruntime as ort

    x = torch.randn(2, 1, 16, 16)
    session = ort.InferenceSession(result.path, providers=["CPUExecutionProvider"])
    torch.testing.assert_close(torch.from_numpy(session.run(None, {"input": x.numpy()})[0]), logits(trained, x),
                               atol=1e-4, rtol=1e-3)
    doc = json.loads(export(ARCH, tmp_path / "w.json", weights=tmp_path / "model.pt").path and
                     (tmp_path / "w.json").read_text())
    assert doc["weights"]["metrics"]["test_loss"] is None and doc["weights"]["class_names"][0] == "c0"
    assert export(None, tmp_path / "w32.pt", weights=tmp_path / "model.pt", input_size=32).input_size == 32


def test_weights_of_another_arch_or_shape_are_refused(tmp_path):
    trained_file(tmp_path / "model.pt")
    with pytest.raises(ValueError, match="different architecture") as err:
        export(OTHER, tmp_path / "x.onnx", weights=tmp_path / "model.pt")
    assert str(as_arch(ARCH)) in str(err.value) and str(as_arch(OTHER)) in str(err.value)
    with pytest.raises(ValueError, match="num_classes=10 but"):
        export(ARCH, tmp_path / "x.onnx", weights=tmp_path / "model.pt", num_classes=10)
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt"):
        export(None, tmp_path / "x.onnx", weights=tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="nothing to export"):
        export(None, tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
