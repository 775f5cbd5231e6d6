"""Data sets: arrays, .npz, digits, splits, validation of bad input."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mnas.data import Augment, Dataset, from_arrays, load
from mnas.train.datasets import check_arrays, stratified_split


def test_stratified_split_is_seeded_disjoint_and_stratified():
    y = np.repeat(np.arange(4), [10, 20, 30, 40])
    keep, held = stratified_split(y, 0.1, seed=3)
    assert len(np.intersect1d(keep, held)) == 0 and len(keep) + len(held) == len(y)
    assert np.bincount(y[held]).tolist() == [1, 2, 3, 4]
    again, _ = stratified_split(y, 0.1, seed=3)
    other, _ = stratified_split(y, 0.1, seed=4)
    assert np.array_equal(keep, again) and not np.array_equal(keep, other)


def test_stratified_split_keeps_one_of_each_small_class():
    y = np.array([0, 0, 1, 1, 1, 2])
    keep, held = stratified_split(y, 0.01, seed=0)
    assert sorted(y[held].tolist()) == [0, 1]  # class 2 has one example: it stays in training
    assert set(y[keep].tolist()) == {0, 1, 2}
    with pytest.raises(ValueError, match="fraction"):
        stratified_split(y, 1.0, seed=0)


def test_from_arrays_holds_out_validation_and_computes_stats(synthetic):
    a = synthetic(n_train=90, classes=3)
    d = from_arrays("syn", **a, val_fraction=0.2, seed=1)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (72, 18, 20)
    assert np.bincount(d.y_val).tolist() == [6, 6, 6]
    assert (d.num_classes, d.channels, d.input_size, d.class_names) == (3, 3, 8, ("0", "1", "2"))
    expected = d.x_train.reshape(-1, 3).mean(0) / 255
    assert np.allclose(d.mean, expected, atol=1e-5)
    assert np.allclose(d.std, (d.x_train.reshape(-1, 3) / 255).std(0), atol=1e-5)


def test_dataset_pickles_to_equal_arrays(digits):
    copy = pickle.loads(pickle.dumps(digits))
    assert isinstance(copy, Dataset) and copy.class_names == digits.class_names
    assert np.array_equal(copy.x_train, digits.x_train) and copy.mean == digits.mean


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(x_train=a["x_train"].astype(np.float32)), "dtype float32, expected uint8"),
    (lambda a: a.update(x_train=a["x_train"].transpose(0, 3, 1, 2).copy()), "looks like NCHW"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "60 images but 59 labels"),
    (lambda a: a.update(y_train=a["y_train"].astype(np.float64)), "expected \\(N,\\) integers"),
    (lambda a: a.update(y_train=a["y_train"] - 1), "label -1 is negative"),
    (lambda a: a.update(x_test=a["x_test"][:, :4]), "test images are"),
])
def test_bad_arrays_are_named(change, message, synthetic):
    a = synthetic()
    change(a)
    with pytest.raises(ValueError, match=message):
        from_arrays("syn", **a)


def test_check_arrays_rejects_too_few_class_names(synthetic):
    a = synthetic(classes=3)
    with pytest.raises(ValueError, match="2 class names"):
        from_arrays("syn", **a, class_names=["a", "b"])
    with pytest.raises(ValueError, match="no images"):
        check_arrays(np.zeros((0, 8, 8, 3), np.uint8), np.zeros(0, np.int64), "x")


def test_npz_round_trip_and_errors(tmp_path, synthetic):
    a = synthetic()
    good = tmp_path / "good.npz"
    np.savez(good, **a, class_names=np.array(["cat", "dog", "eel"]))
    d = load(good, val_fraction=0.1, seed=0)
    assert d.class_names == ("cat", "dog", "eel") and d.name == "good"
    assert d.augment == Augment()  # natural images: crop and flip
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=a["x_train"], y_train=a["y_train"])
    with pytest.raises(ValueError, match="missing array\\(s\\) x_test, y_test"):
        load(bad)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load(junk)
    with pytest.raises(FileNotFoundError, match="data not found"):
        load(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="unsupported data file"):
        load(tmp_path.joinpath("x.txt").write_text("x") and tmp_path / "x.txt")


def test_digits_is_grayscale_without_flip_and_has_a_fixed_test_split():
    pytest.importorskip("sklearn")
    a, b = load("digits", seed=0), load("digits", seed=1)
    assert a.image_shape == (8, 8, 1) and a.num_classes == 10 and a.x_train.dtype == np.uint8
    assert a.x_train.max() == 255 and a.augment.flip is False
    assert len(a.y_train) + len(a.y_val) + len(a.y_test) == 1797
    assert np.array_equal(a.x_test, b.x_test)  # the test split does not move with the search seed
    assert not np.array_equal(a.y_val, b.y_val) or not np.array_equal(a.x_val, b.x_val)


def test_load_rejects_bad_arguments():
    with pytest.raises(ValueError, match="val_fraction"):
        load("digits", val_fraction=1.5)
    with pytest.raises(ValueError, match="needs root"):
        load("cifar10")


def test_cifar10_subset_npz_if_present(cifar_npz):
    d = load(cifar_npz, val_fraction=0.1, seed=0)
    assert d.image_shape == (32, 32, 3) and d.num_classes == 10 and "airplane" in d.class_names
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (9000, 1000, 2000)
    assert 0.4 < d.mean[0] < 0.6 and 0.2 < d.std[0] < 0.3
