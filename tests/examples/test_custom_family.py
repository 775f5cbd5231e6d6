"""examples/custom_family.py end to end: a user's family searched (proxy training on digits, ONNX
Runtime latency), measured, trained and exported; then the study reopened in a fresh process."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_family.py"


@pytest.fixture
def example():
    spec = importlib.util.spec_from_file_location("custom_family_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        from mnas.space import family

        sys.modules.pop(spec.name, None)
        family._FAMILIES.pop("convnet", None)  # leave the registry as other tests expect it


@pytest.mark.slow  # ~30 s on a busy 2-core machine: 3 proxy-trained trials, 3 epochs, 2 exports, a subprocess
def test_custom_family_search_latency_train_export(example, tmp_path, one_torch_thread):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("sklearn")
    out = example.main(trials=3, out=tmp_path)
    study, arch = out["study"], out["arch"]
    assert isinstance(arch, example.ConvNet)
    trials = study.trials
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    assert all(str(example.CONVNET.parse(t.arch)) == t.arch for t in trials)  # stored as the family's text
    assert out["latency_ms"] > 0 and 0.0 <= out["accuracy"] <= 1.0
    assert out["onnx"].max_abs_diff is not None and out["onnx"].max_abs_diff < 1e-3
    doc = json.loads((tmp_path / "model.json").read_text())
    assert doc["arch"] == str(arch) and doc["model"]["params"] == example.CONVNET.count(arch, 10, 1, 8)[0]
    # The stored study reopens elsewhere once the family is registered there (import the module).
    code = (f"import importlib.util, sys, mnas\n"
            f"spec = importlib.util.spec_from_file_location('ex', {str(EXAMPLE)!r})\n"
            f"m = importlib.util.module_from_spec(spec); sys.modules['ex'] = m; spec.loader.exec_module(m)\n"
            f"study = mnas.load_study({str(tmp_path / 'study.db')!r})\n"
            f"print(type(mnas.space.as_arch(study.best().arch)).__name__)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ConvNet"
