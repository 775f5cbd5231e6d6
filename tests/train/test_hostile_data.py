"""Issue 21 item 3: hostile training data is a one-line ValueError (CLI exit 2) before any work.

Every input is written here, small: a forged .npy header is a few bytes, a decompression bomb is a
PNG header that claims 100,000 x 100,000 pixels, CIFAR "batches" are pickles of the wrong things.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from mnas.cli import main
from mnas.data import from_arrays, load

TINY = "r1_k3_s11_e1_i8_o8 | s1_h16_d0.0_relu"
KEYS = ("x_train", "y_train", "x_test", "y_test")


def _arrays(n: int = 40, size: int = 8, classes: int = 2, width: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % classes
    x = rng.integers(0, 256, (n, size, width or size, 1), dtype=np.uint8)
    return {"x_train": x, "y_train": y, "x_test": x[:8], "y_test": y[:8]}


def _npy_header(shape: tuple[int, ...], descr: str = "|u1") -> bytes:
    text = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode()


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _one_line_exit_2(argv: list[str], capsys) -> str:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "internal error" not in err and len(err.strip().splitlines()) == 1, (rc, err)
    return err


# -- .npz files --------------------------------------------------------------------------------------
def test_a_forged_header_claiming_tib_is_refused_before_any_allocation(tmp_path):
    # 27 TiB of uint8 claimed by a member that holds only its header (the probe's claimed 28.6 TiB)
    header = _npy_header((1_000_000, 5_000, 2_000, 3))
    path = _zip(tmp_path / "huge.npz", {f"{k}.npy": header for k in KEYS})
    assert path.stat().st_size < 2000
    with pytest.raises(ValueError, match=r"huge.npz: damaged .npz file: member 'x_train' claims shape .*\(27.3 TiB\)"):
        load(path)


def test_a_member_that_is_not_an_array_is_named(tmp_path):
    path = _zip(tmp_path / "bytes.npz", {f"{k}.npy": b"hello, not an array" for k in KEYS})
    with pytest.raises(ValueError, match="member 'x_train' is not a NumPy array"):
        load(path)


@pytest.mark.parametrize("content", [os.urandom(2000), b"", b"\x80\x04K\x01.", b"\x93NUMPY\x01\x00"])
def test_random_bytes_are_not_a_valid_npz_and_pickle_is_never_suggested(tmp_path, content):
    path = tmp_path / "random.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError) as info:
        load(path)
    text = str(info.value)
    assert "not a valid .npz" in text or ".npy array, not a .npz" in text, text
    assert "allow_pickle" not in text and "pickle.load" not in text and "trust" not in text


def test_object_class_names_are_refused_without_pickle_advice(tmp_path):
    path = tmp_path / "names.npz"
    np.savez(path, **_arrays(), class_names=np.array(["a", None], dtype=object))
    with pytest.raises(ValueError, match="class_names' holds Python objects, which mnas never loads") as info:
        load(path)
    assert "allow_pickle" not in str(info.value)


def test_a_forged_size_is_checked_against_memory(tmp_path, monkeypatch):
    """A header whose size the zip directory backs up is still refused when it cannot fit in memory."""
    import mnas.train.datasets as datasets

    path = tmp_path / "big.npz"
    np.savez(path, **_arrays(n=400))
    monkeypatch.setattr(datasets, "_physical_memory", lambda: 4096)
    with pytest.raises(ValueError, match="need .* in memory, over half of this machine's"):
        load(path)


# -- nonsense arrays -------------------------------------------------------------------------------
@pytest.mark.parametrize("arrays, message", [
    (_arrays(classes=1), "only class 0: a classifier needs images of at least two classes"),
    (_arrays(size=1), "images are 1x1 pixels: expected at least 4x4"),
    (_arrays(size=3), "images are 3x3 pixels"),
    (_arrays(size=8, width=16), "images are 8x16 \\(height x width\\): mnas trains on square images"),
])
def test_nonsense_arrays_are_refused(arrays, message):
    with pytest.raises(ValueError, match=message):
        from_arrays("syn", **arrays)


@pytest.mark.parametrize("case", ["one_class", "one_pixel", "non_square", "huge_header", "not_array", "random"])
@pytest.mark.parametrize("command", ["train", "instance"])
def test_train_and_instance_train_exit_2_before_training(tmp_path, capsys, case, command):
    path = tmp_path / f"{case}.npz"
    if case == "huge_header":
        _zip(path, {f"{k}.npy": _npy_header((1_000_000, 5_000, 2_000, 3)) for k in KEYS})
    elif case == "not_array":
        _zip(path, {f"{k}.npy": b"junk" for k in KEYS})
    elif case == "random":
        path.write_bytes(os.urandom(512))
    else:
        np.savez(path, **_arrays(**{"one_class": {"classes": 1}, "one_pixel": {"size": 1},
                                    "non_square": {"width": 16}}[case]))
    if command == "train":
        argv = ["train", TINY, "--data", str(path), "--proxy", "--steps", "1", "--quiet"]
    else:
        argv = ["instance", "train", "--data", str(path), "--out", str(tmp_path / "run"), "--quiet"]
    _one_line_exit_2(argv, capsys)
    assert not (tmp_path / "run").exists()


# -- image folders ---------------------------------------------------------------------------------
def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height 1-bit pixels and holds no pixel data (a few dozen bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


def _images(folder: Path, n: int, size: int = 10, seed: int = 0) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i}.png")


@pytest.fixture
def pil():
    return pytest.importorskip("PIL.Image")


def test_a_decompression_bomb_is_skipped_and_named(tmp_path, pil):
    _images(tmp_path / "a", 4)
    _images(tmp_path / "b", 4, seed=1)
    (tmp_path / "a" / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    with pytest.warns(UserWarning, match="skipped 1 unreadable image.*bomb.png.*decompression-bomb limit"):
        d = load(tmp_path, image_size=8, val_fraction=0.25)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 8


def test_a_class_holding_only_a_bomb_is_exit_2(tmp_path, pil, capsys):
    _images(tmp_path / "a", 4)
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
    err = _one_line_exit_2(["train", TINY, "--data", str(tmp_path), "--proxy", "--steps", "1", "--quiet"], capsys)
    assert "class 'b': none of its 1 images could be read" in err and "decompression-bomb" in err


def test_pillow_warning_level_size_is_refused_too(tmp_path, pil, monkeypatch):
    """Between Pillow's limit and twice it Pillow only warns and decodes; the loader skips it."""
    monkeypatch.setattr(pil, "MAX_IMAGE_PIXELS", 150)
    _images(tmp_path / "a", 3, size=10)
    _images(tmp_path / "b", 3, size=10, seed=1)
    _images(tmp_path / "b" / "big", 1, size=13, seed=2)  # 169 pixels: over 150, under 300
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = load(tmp_path, image_size=8, val_fraction=0.0, test_fraction=0.0)
    assert len(d.y_train) == 6
    messages = [str(w.message) for w in caught]
    assert any("skipped 1 unreadable" in m and "decompression-bomb" in m for m in messages), messages
    assert not any("DecompressionBomb" in type(w.message).__name__ for w in caught)


def test_a_folder_whose_only_image_is_corrupt_is_exit_2(tmp_path, pil, capsys):
    """Bit flips that Pillow still decodes: one class, one image: refused (a single class), not trained."""
    from PIL import Image

    (tmp_path / "a").mkdir()
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(buf, "BMP")
    raw = bytearray(buf.getvalue())
    for i in range(len(raw) // 2, len(raw) // 2 + 50):
        raw[i] ^= 0xFF
    (tmp_path / "a" / "x.bmp").write_bytes(bytes(raw))
    err = _one_line_exit_2(["train", TINY, "--data", str(tmp_path), "--proxy", "--steps", "1", "--quiet",
                            "--val-fraction", "0"], capsys)
    assert "at least two classes" in err


def test_an_undecodable_only_image_is_exit_2(tmp_path, pil, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    _images(tmp_path / "b", 3)
    err = _one_line_exit_2(["train", TINY, "--data", str(tmp_path), "--proxy", "--steps", "1", "--quiet"], capsys)
    assert "class 'a': none of its 1 images could be read" in err


@pytest.mark.parametrize("where", ["class_to_root", "class_to_other_class", "subfolder_to_root", "split_to_root"])
def test_symlink_loops_are_refused(tmp_path, pil, where):
    root = tmp_path / "data"
    if where == "split_to_root":
        _images(root / "train" / "a", 3)
        _images(root / "train" / "b", 3, seed=1)
        (root / "test").symlink_to(root)
    else:
        _images(root / "a", 3)
        _images(root / "b", 3, seed=1)
        if where == "class_to_root":
            (root / "c").symlink_to(root)
        elif where == "class_to_other_class":
            (root / "c").symlink_to(root / "a")
        else:
            (root / "a" / "up").symlink_to(Path("..") / "..")
    with pytest.raises(ValueError, match="symlink back|same folder or one holds the other|a loop"):
        load(root, image_size=8)


def test_the_same_image_in_two_classes_is_refused(tmp_path, pil):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b", 3, seed=1)
    (tmp_path / "b" / "dup.png").symlink_to(tmp_path / "a" / "0.png")
    with pytest.raises(ValueError, match="the same image .* is in class 'a' and class 'b'"):
        load(tmp_path, image_size=8)


def test_self_looping_and_dangling_links_are_reported_not_crashed(tmp_path, pil):
    _images(tmp_path / "a", 3)
    _images(tmp_path / "b", 3, seed=1)
    (tmp_path / "a" / "loop.png").symlink_to("loop.png")  # ELOOP
    (tmp_path / "b" / "gone.png").symlink_to("missing.png")
    with pytest.warns(UserWarning, match="skipped 2 unreadable image"):
        d = load(tmp_path, image_size=8, val_fraction=0.0, test_fraction=0.0)
    assert len(d.y_train) == 6
    (tmp_path / "c").symlink_to("c")  # a class folder that loops onto itself
    with pytest.raises(ValueError, match="c: a symlink that loops or points nowhere"):
        load(tmp_path, image_size=8)


# -- CIFAR python batches ----------------------------------------------------------------------------
def _cifar_dir(root: Path, batch: object = None, meta: object = None) -> Path:
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def good(n: int) -> dict:
        return {b"labels": [int(v) for v in np.arange(n) % 10],
                b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(good(20) if batch is None else batch))
    (d / "test_batch").write_bytes(pickle.dumps(good(10)))
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}
                                                   if meta is None else meta))
    return d


@pytest.mark.parametrize("batch, meta, message", [
    (None, [1, 2, 3], "batches.meta: not a cifar10 meta file"),
    (None, {"label_names": ["a"] * 10}, "batches.meta: not a cifar10 meta file"),
    (None, {b"label_names": None}, "batches.meta: not a cifar10 meta file"),
    (5, None, "data_batch_1: not a cifar10 batch"),
    ({b"data": None, b"labels": [0] * 5}, None, "data_batch_1: data is not an array of numbers"),
    ({b"data": np.zeros((5, 3072), np.uint8), b"labels": [None] * 5}, None, "labels is not an array of numbers"),
    ({b"data": np.full((5, 3072), 1e9), b"labels": [0] * 5}, None, "data has dtype float64, expected uint8"),
])
def test_malformed_cifar_batches_are_named(tmp_path, batch, meta, message):
    d = _cifar_dir(tmp_path, batch, meta)
    with pytest.raises(ValueError, match=message):
        load(d)
