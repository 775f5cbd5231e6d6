"""Issue 20 item 4 for LiteRT (.tflite) and ExecuTorch (.pte): what `mnas search --backend R --precision int8
--score int8` recorded for a trial is what `mnas export --format tflite|pte --precision int8` gives, run in
the same runtime: the same accuracy and the same latency, within the measurement's noise.

As `test_search_deploy_export.py` does for ONNX Runtime: a one-trial search on the built-in digits records
`accuracy_fp32`, `accuracy_int8` (the trial's weights quantized with the runtime's own quantizer, calibrated
on 100 training images, run in the runtime on the validation split) and `latency_ms` (the backend's int8
figure). The trial's weights are trained again exactly as the search's worker did (deterministic on CPU:
the float accuracy must come out identical) and exported.

- Accuracy: the fp32 file gives `accuracy_fp32` to one image; the int8 file gives `accuracy_int8` within
  three binomial standard errors of the validation split plus one image (the ONNX test's bound). The
  export calibrates on the very images the search's score did (`calibration_inputs`, on the split the
  study recorded), so with a deterministic converter the two agree to the image; the bound leaves room
  for a converter that is not.
- Latency: the backend timed a network of the trial's architecture (random weights, 8 random calibration
  inputs); the exported file has the trained weights and data calibration but the same graph, so it runs in
  the same time. Absolute times drift with the machine's load, so the test compares ratios measured in the
  same run: the exported file and the backend's figure for the trial's architecture are timed alternately,
  several rounds each, and their median ratio must lie within the spread that timing the SAME backend figure
  again shows in this run (the largest ratio between two of its rounds), widened by a floor that the
  backend's own coefficient of variation justifies. The search's recorded figure is printed beside them and
  checked against a looser factor (it was timed minutes earlier, under another load).
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from test_search_deploy_export import _trial_weights, export_fp32_and_int8, int8_noise, search_one_int8_trial

pytest.importorskip("sklearn")
pytestmark = pytest.mark.usefixtures("one_torch_thread")

RUNTIMES = {"litert": ("tflite", ("ai_edge_litert", "litert_torch")), "executorch": ("pte", ("executorch",))}
ROUNDS = 5  # alternating timings of the exported file and of the backend's figure


def _runner(runtime, raw):
    """A callable: float32 NCHW batch -> logits, for the file `raw` in its runtime (one thread)."""
    if runtime == "litert":
        from mnas.latency.litert import run_tflite, tflite_interpreter

        interpreter = tflite_interpreter(raw)
        return lambda x: run_tflite(interpreter, x)
    from mnas.latency.executorch_backend import pte_method, run_pte

    method = pte_method(raw)
    return lambda x: run_pte(method, x)


def _file_accuracy(runtime, path, data):
    """Top-1 accuracy of an exported file in its runtime on the search's validation split, preprocessed as
    the search's int8 scoring does."""
    from mnas.evaluate.quantized import _preprocess

    run = _runner(runtime, path.read_bytes())
    x, y = data.split("val")
    logits = run(_preprocess(data, x, data.input_size))
    return float((np.asarray(logits).argmax(1) == np.asarray(y)).mean()), len(y)


def _time_file(runtime, raw, shape, protocol):
    from mnas.latency.executorch_backend import measure_pte
    from mnas.latency.litert import measure_tflite

    measure = measure_tflite if runtime == "litert" else measure_pte
    return measure(raw, shape, 1, protocol)


@pytest.mark.slow  # two conversions in the search, three here, 10-100 s each on a busy 2-core machine
@pytest.mark.timeout(3600)  # at nice 19 beside two trainings one LiteRT int8 conversion alone took over 20 min
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_the_exported_runtime_file_gives_the_accuracy_and_latency_the_search_recorded(tmp_path, capsys, runtime):
    fmt, modules = RUNTIMES[runtime]
    for module in modules:
        pytest.importorskip(module)
    from mnas.latency import Protocol, get_backend
    from mnas.train import load

    db = tmp_path / "s.db"
    trial = search_one_int8_trial(db, capsys, runtime, "--backend", runtime, "--precision", "int8")
    recorded_fp32, recorded_int8 = trial.extra["accuracy_fp32"], trial.extra["accuracy_int8"]

    data = load("digits", val_fraction=0.2, seed=0)  # the search's data and validation split
    weights = tmp_path / "model.pt"
    assert _trial_weights(trial, data, weights) == recorded_fp32  # the trial's own weights, bit for bit

    export_fp32_and_int8(db, trial, weights, fmt, tmp_path, capsys)

    # (a) accuracy, in the runtime, on the validation split the search scored
    fp32, n = _file_accuracy(runtime, tmp_path / f"fp32.{fmt}", data)
    int8, _ = _file_accuracy(runtime, tmp_path / f"int8.{fmt}", data)
    noise = int8_noise(recorded_int8, n)
    print(f"\n{runtime}: recorded fp32 {recorded_fp32:.4f} int8 {recorded_int8:.4f}; exported fp32 {fp32:.4f}"
          f" int8 {int8:.4f}; n={n}, allowed {noise:.4f}")
    assert abs(fp32 - recorded_fp32) <= 1 / n + 1e-12, (fp32, recorded_fp32)
    assert abs(int8 - recorded_int8) <= noise, (int8, recorded_int8, noise)
    assert recorded_fp32 > 0.2  # it learned something (chance is 0.1), so the comparison means something

    # (b) latency: the exported int8 file against the backend's figure for the trial's architecture, alternately
    protocol = Protocol()  # the search's (the backend's default)
    backend = get_backend(runtime, precision="int8", protocol=protocol)
    assert backend.key() == get_backend(runtime, precision="int8").key()
    shape = (1, data.channels, data.input_size, data.input_size)
    # The backend's own file (random weights, random calibration), converted once and timed as `measure` times it.
    from mnas.latency.export import timing_model
    from mnas.space import as_arch

    net = timing_model(as_arch(trial.arch), data.input_size, data.num_classes, 1, data.channels)
    backend_file = backend.convert(net, shape)
    exported = (tmp_path / f"int8.{fmt}").read_bytes()
    file_ms, backend_ms, cvs = [], [], []
    for _ in range(ROUNDS):
        f = _time_file(runtime, exported, shape, protocol)
        b = _time_file(runtime, backend_file, shape, protocol)
        file_ms.append(f["median_ms"])
        backend_ms.append(b["median_ms"])
        cvs += [f["cv"], b["cv"]]
    ratio = statistics.median(f / b for f, b in zip(file_ms, backend_ms, strict=True))
    # What timing the same file again varies by in this run (the largest ratio between two of its rounds),
    # and at least what the backend's CV allows for the ratio of two medians of n >= 10 samples (3 standard
    # errors of each median, ~1.25 cv / sqrt(n)), and at least 10%.
    spread = max(backend_ms) / min(backend_ms)
    cv = statistics.median(cvs)
    allowed = max(spread, 1 + 3 * math.sqrt(2) * 1.25 * cv / math.sqrt(protocol.min_repeats), 1.10)
    recorded_ms = trial.latency_ms
    print(f"{runtime} int8 latency: recorded {recorded_ms:.4f} ms (cv {trial.extra.get('latency_cv')}); backend"
          f" again {[round(b, 4) for b in backend_ms]} ms; exported file {[round(f, 4) for f in file_ms]} ms;"
          f" median ratio file/backend {ratio:.3f}, allowed 1/{allowed:.3f}..{allowed:.3f} (same-file spread"
          f" {spread:.3f}, median cv {cv:.3f}); recorded/backend {recorded_ms / statistics.median(backend_ms):.3f}")
    assert 1 / allowed <= ratio <= allowed, (ratio, allowed, file_ms, backend_ms)
    # The search's own figure was timed minutes ago under another load: the same figure, within a factor 1.5.
    assert 1 / 1.5 <= recorded_ms / statistics.median(backend_ms) <= 1.5, (recorded_ms, backend_ms)
