"""Hostile input through the real `mnas` command (issue 21 item 3): data files and folders, architecture
files, latency options, output paths.

    python benchmarks/probe_inputs.py                 # the checkout's mnas
    PYTHONPATH=/tmp/old/src python benchmarks/probe_inputs.py   # an older tree, for a before/after

Every input is written into a temporary folder (small files: a forged .npy header is a few bytes, a
decompression bomb is a PNG header). Each case runs `python -m mnas.cli ...` in a subprocess with a
time limit and an address-space cap (so an mnas without the checks cannot take the machine's memory,
and a hang is a result, not a stuck probe). Handled means: exit 2, one line on stderr, no "internal
error", no advice to load a pickle, within the time limit (or, where noted, exit 0 with the warning
that names what was skipped). Prints each case and tried / handled counts.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import resource
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np

TINY = "r1_k3_s11_e1_i8_o8 | s1_h16_d0.0_relu"
KEYS = ("x_train", "y_train", "x_test", "y_test")
MEMORY_CAP = 8 * 2**30  # address space per case: enough for torch and ONNX Runtime, not for a 60 GB tensor


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run(argv: list[str], timeout: float, cwd: Path) -> tuple[int | None, str, float]:
    t0 = time.monotonic()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MNAS_DEVICE_TOKEN": ""}
    try:
        proc = subprocess.run([sys.executable, "-m", "mnas.cli", *argv], capture_output=True, text=True,
                              timeout=timeout, cwd=cwd, env=env, preexec_fn=_cap)
    except subprocess.TimeoutExpired:
        return None, "", time.monotonic() - t0
    return proc.returncode, proc.stderr, time.monotonic() - t0


def _npy_header(shape: tuple[int, ...]) -> bytes:
    text = f"{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return str(path)


def _arrays(path: Path, classes: int = 2, size: int = 8, width: int | None = None) -> str:
    rng = np.random.default_rng(0)
    y = np.arange(60) % classes
    x = rng.integers(0, 256, (60, size, width or size, 1), dtype=np.uint8)
    np.savez(path, x_train=x, y_train=y, x_test=x[:10], y_test=y[:10])
    return str(path)


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def _folder(root: Path, classes: dict[str, int]) -> Path:
    from PIL import Image

    rng = np.random.default_rng(1)
    for name, n in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    return root


def build_cases(tmp: Path) -> list[tuple[str, list[str], str, float]]:
    """(name, argv, expectation, timeout): expectation 'refused' (exit 2, one line) or 'warned' (exit 0 and
    the skipped file named on stderr)."""
    train = ["train", TINY, "--proxy", "--steps", "1", "--quiet", "--data"]
    def instance(label: str) -> list[str]:
        return ["instance", "train", "--quiet", "--pretrain-epochs", "1", "--search-epochs", "1", "--finetune-epochs",
                "1", "--out", str(tmp / f"instance-{label.replace(' ', '_')}"), "--data"]
    cases: list[tuple[str, list[str], str, float]] = []

    # .npz files
    huge = _zip(tmp / "huge.npz", {f"{k}.npy": _npy_header((1_000_000, 3238, 3238, 3)) for k in KEYS})  # 28.6 TiB
    cases.append(("npz whose header claims 28.6 TiB", [*train, huge], "refused", 120))
    cases.append(("npz whose members are not arrays", [*train, _zip(tmp / "bytes.npz", {f"{k}.npy": b"junk" for k in KEYS})],
                  "refused", 120))
    (tmp / "random.npz").write_bytes(os.urandom(4096))
    cases.append(("random-bytes npz (no pickle advice)", [*train, str(tmp / "random.npz")], "refused", 120))
    for label, kwargs in (("a single class", {"classes": 1}), ("1-pixel images", {"size": 1}),
                          ("non-square images", {"width": 16})):
        path = _arrays(tmp / f"{label.replace(' ', '_')}.npz", **kwargs)
        cases.append((f"mnas train on {label}", [*train, path], "refused", 180))
        cases.append((f"mnas instance train on {label}", [*instance(label), path], "refused", 180))

    # image folders
    only_bomb = _folder(tmp / "only_bomb", {"a": 3})
    (only_bomb / "b").mkdir()
    (only_bomb / "b" / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    cases.append(("folder: a class holding only a decompression bomb", [*train, str(only_bomb)], "refused", 180))
    with_bomb = _folder(tmp / "with_bomb", {"a": 4, "b": 4})
    (with_bomb / "a" / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    cases.append(("folder: a decompression bomb among good images", [*train, str(with_bomb)], "warned:bomb.png", 180))
    corrupt = tmp / "corrupt_only" / "a"
    corrupt.mkdir(parents=True)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "BMP")
    raw = bytearray(buf.getvalue())
    for i in range(len(raw) // 2, len(raw) // 2 + 50):
        raw[i] ^= 0xFF
    (corrupt / "x.bmp").write_bytes(bytes(raw))
    cases.append(("folder whose only image is corrupt", [*train, str(corrupt.parent), "--val-fraction", "0"], "refused", 180))
    loop = _folder(tmp / "loop", {"a": 3, "b": 3})
    (loop / "c").symlink_to(loop)
    cases.append(("folder holding a symlink loop", [*train, str(loop)], "refused", 180))
    cif = tmp / "cifar" / "cifar-10-batches-py"
    cif.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cif / name).write_bytes(pickle.dumps({b"data": None, b"labels": [None] * 5}))
    (cif / "batches.meta").write_bytes(pickle.dumps([1, 2, 3]))
    cases.append(("folder of CIFAR python batches that hold the wrong things", [*train, str(cif)], "refused", 180))

    # architectures
    (tmp / "deep.json").write_text("[" * 10000 + "]" * 10000)
    (tmp / "null.json").write_text("null")
    cases += [("arch JSON nested 10,000 deep", ["arch", "show", str(tmp / "deep.json")], "refused", 120),
              ("arch JSON null", ["arch", "show", str(tmp / "null.json")], "refused", 120),
              ("arch show of a stride-3 block", ["arch", "show", "r1_k3_s33_e1_i32_o16"], "refused", 120),
              ("arch show of channels latency measure refuses", ["arch", "show", "r1_k3_s11_e64_i100000_o100000"],
               "refused", 120)]

    # latency
    fifo = tmp / "fifo.json"
    os.mkfifo(fifo)
    cases += [("latency measure --input-size 100000", ["latency", "measure", "mnasnet_a1", "--input-size", "100000"],
               "refused", 180),
              ("latency measure --batch-size 10^7", ["latency", "measure", "mnasnet_a1", "--input-size", "32",
                                                     "--batch-size", "10000000"], "refused", 180),
              ("latency measure --threads 100000", ["latency", "measure", TINY, "--input-size", "16", "--threads",
                                                    "100000"], "refused", 90),
              ("build-lut --out a FIFO", ["latency", "build-lut", "--out", str(fifo)], "refused", 60),
              ("build-lut --out /dev/zero", ["latency", "build-lut", "--out", "/dev/zero"], "refused", 60)]

    # search
    cases.append(("mnas search --target ''", ["search", "--target", "", "--trials", "1", "--epochs", "1",
                                              "--max-train-seconds", "2", "--quiet", "--storage",
                                              str(tmp / "empty_target.db")], "refused", 300))
    return cases


def judge(expect: str, rc: int | None, err: str) -> bool:
    lines = err.strip().splitlines()
    clean = "internal error" not in err and "allow_pickle" not in err and "Traceback" not in err
    if expect.startswith("warned:"):
        return rc == 0 and clean and expect.split(":", 1)[1] in err
    return rc == 2 and clean and len(lines) == 1


def main() -> int:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    import mnas

    print(f"mnas from {Path(mnas.__file__).parent}; load {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs", flush=True)
    tried = handled = 0
    with tempfile.TemporaryDirectory(prefix="mnas-probe-inputs-") as tmp:
        for name, argv, expect, timeout in build_cases(Path(tmp)):
            rc, err, took = run(argv, timeout, Path(tmp))
            ok = judge(expect, rc, err)
            tried, handled = tried + 1, handled + ok
            last = (err.strip().splitlines() or [""])[-1][:150]
            outcome = "timed out (killed)" if rc is None else f"exit {rc}"
            print(f"  {'ok ' if ok else 'BAD'}  {name}: {outcome} in {took:.1f} s: {last}", flush=True)
    print(f"tried {tried}, handled {handled}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
