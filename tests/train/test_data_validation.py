"""Issue 13 item 15: damaged or implausible data is a one-line ValueError (CLI exit 2) before any work."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest

from mnas.cli import main
from mnas.data import from_arrays, load

TINY = "r1_k3_s11_e1_i8_o8 | s1_h16_d0.0_relu"


def _arrays(synthetic, **changes):
    a = synthetic(n_train=60, classes=3)
    a.update(changes)
    return a


@pytest.fixture
def good_npz(tmp_path, synthetic):
    path = tmp_path / "good.npz"
    np.savez(path, **_arrays(synthetic))
    return path


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9, -1])
def test_truncated_npz_is_a_value_error(tmp_path, good_npz, keep):
    data = good_npz.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * keep)] if keep > 0 else data[:-1])
    with pytest.raises(ValueError, match="cut.npz: (not a readable|damaged) .npz"):
        load(cut)


def test_corrupt_compressed_member_is_a_value_error(tmp_path, synthetic):
    path = tmp_path / "z.npz"
    np.savez_compressed(path, **_arrays(synthetic))
    raw = bytearray(path.read_bytes())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).getinfo("x_train.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 20, start + info.compress_size - 20, 7):
        raw[i] ^= 0x5A  # scramble the deflate stream of x_train
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="damaged .npz"):
        load(path)


def test_short_member_is_a_value_error(tmp_path, synthetic):
    """A member whose .npy header promises more data than it holds (EOFError/ValueError inside NumPy)."""
    a = _arrays(synthetic)
    buf = io.BytesIO()
    np.save(buf, a["x_train"])
    path = tmp_path / "short.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x_train.npy", buf.getvalue()[:200])
        for k in ("y_train", "x_test", "y_test"):
            b = io.BytesIO()
            np.save(b, a[k])
            z.writestr(f"{k}.npy", b.getvalue())
    with pytest.raises(ValueError, match="damaged .npz"):
        load(path)


def test_a_huge_label_is_refused_without_sizing_anything(synthetic):
    a = _arrays(synthetic)
    a["y_train"] = a["y_train"].copy()
    a["y_train"][0] = 10**9
    with pytest.raises(ValueError, match="label 1000000000 is out of range"):
        from_arrays("syn", **a)


def test_a_label_only_in_the_test_split_is_refused(synthetic):
    a = _arrays(synthetic)
    a["y_test"] = a["y_test"].copy()
    a["y_test"][0] = 7
    with pytest.raises(ValueError, match="test label\\(s\\) 7 never occur in the training split"):
        from_arrays("syn", **a)


def test_negative_labels_say_so(synthetic):
    a = _arrays(synthetic)
    a["y_train"] = a["y_train"] - 1
    with pytest.raises(ValueError, match="label -1 is negative"):
        from_arrays("syn", **a)
    a = _arrays(synthetic)
    a["y_test"] = a["y_test"] - 1
    with pytest.raises(ValueError, match="label -1 is negative"):
        from_arrays("syn", **a)


def test_no_validation_images_is_refused_at_load(synthetic):
    a = _arrays(synthetic)
    one_each = {"x_train": a["x_train"][:3], "y_train": np.array([0, 1, 2]),
                "x_test": a["x_test"][:3], "y_test": np.array([0, 1, 2])}
    with pytest.raises(ValueError, match="held out no validation images"):
        from_arrays("syn", **one_each, val_fraction=0.2)
    assert len(from_arrays("syn", **one_each, val_fraction=0.0).y_val) == 0  # asked for none: fine


@pytest.mark.parametrize("case", ["truncated", "huge", "test_only", "no_val"])
def test_cli_exits_2_with_one_line(tmp_path, synthetic, good_npz, capsys, case):
    a = _arrays(synthetic)
    path = tmp_path / f"{case}.npz"
    if case == "truncated":
        path.write_bytes(good_npz.read_bytes()[:300])
    else:
        if case == "huge":
            a["y_train"] = a["y_train"].copy()
            a["y_train"][0] = 10**9
        elif case == "test_only":
            a["y_test"] = a["y_test"] + 5
        else:
            a = {"x_train": a["x_train"][:3], "y_train": np.array([0, 1, 2]),
                 "x_test": a["x_test"][:3], "y_test": np.array([0, 1, 2])}
        np.savez(path, **a)
    rc = main(["train", TINY, "--data", str(path), "--proxy", "--steps", "1", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "internal error" not in err and len(err.strip().splitlines()) == 1, err
