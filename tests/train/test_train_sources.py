"""CIFAR python batches (including download and checksum) and image folders (cache, bad files)."""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import warnings

import numpy as np
import pytest

from mnas.data import load
from mnas.train.cifar import download_cifar


def _write_cifar10(folder, n=20, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))


def test_cifar10_batches_directory(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    _write_cifar10(root)
    d = load(root, val_fraction=0.1, seed=0)
    assert d.name == "cifar10" and d.class_names[0] == "airplane" and d.image_shape == (32, 32, 3)
    assert (len(d.y_train) + len(d.y_val), len(d.y_test)) == (100, 20)
    raw = pickle.loads((root / "test_batch").read_bytes())[b"data"][0].reshape(3, 32, 32).transpose(1, 2, 0)
    assert np.array_equal(d.x_test[0], raw)  # channel-major rows become NHWC images
    assert load("cifar10", root=tmp_path).class_names == d.class_names  # the parent folder works too
    (root / "data_batch_3").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="not a CIFAR python batch"):
        load(root)


def test_cifar100_batches_directory(tmp_path):
    root = tmp_path / "cifar-100-python"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 50), ("test", 10)):
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"fine_labels": [i % 5 for i in range(n)]}
        (root / name).write_bytes(pickle.dumps(batch))
    (root / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"c{i}".encode() for i in range(5)]}))
    d = load(root)
    assert d.name == "cifar100" and d.class_names == ("c0", "c1", "c2", "c3", "c4")


def test_download_verifies_the_checksum(tmp_path):
    src = tmp_path / "src"
    _write_cifar10(src / "cifar-10-batches-py", n=10)
    archive = tmp_path / "cifar.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    url = archive.as_uri()
    with pytest.raises(ValueError, match="checksum mismatch"):
        download_cifar("cifar10", tmp_path / "bad", url=url, md5="0" * 32)
    assert not (tmp_path / "bad" / "cifar-10-batches-py").exists()
    target = download_cifar("cifar10", tmp_path / "good", url=url, md5=md5)
    assert load(target).num_classes == 10
    with pytest.raises(FileNotFoundError, match="download=True"):
        load("cifar10", root=tmp_path / "nothing")


def _write_images(folder, classes, per_class, size=(10, 12)):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in classes:
        (folder / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(folder / c / f"{i}.png")


def test_image_folder_decodes_resizes_and_caches(tmp_path):
    pytest.importorskip("PIL")
    _write_images(tmp_path, ["cat", "dog"], 10)
    d = load(tmp_path, image_size=8, val_fraction=0.2, seed=0)
    assert d.class_names == ("cat", "dog") and d.image_shape == (8, 8, 3)
    assert len(d.y_train) + len(d.y_val) + len(d.y_test) == 20 and len(d.y_test) == 4
    cache = tmp_path / ".mnas-cache-8.npz"
    assert cache.is_file()
    again = load(tmp_path, image_size=8, val_fraction=0.2, seed=0)
    assert np.array_equal(again.x_train, d.x_train)
    _write_images(tmp_path, ["dog"], 12)  # two new dog images: the fingerprint changes, the folder is re-read
    assert sum(len(s) for s in (load(tmp_path, image_size=8).y_train, load(tmp_path, image_size=8).y_val)) > 16


def test_image_folder_skips_unreadable_images_with_a_warning(tmp_path):
    pytest.importorskip("PIL")
    _write_images(tmp_path, ["a", "b"], 5)
    (tmp_path / "a" / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.warns(UserWarning, match="skipped 1 unreadable image"):
        d = load(tmp_path, image_size=8, val_fraction=0.0)
    assert len(d.y_train) + len(d.y_test) == 10


def test_image_folder_with_train_and_test_splits(tmp_path):
    pytest.importorskip("PIL")
    _write_images(tmp_path / "train", ["x", "y", "z"], 4)
    _write_images(tmp_path / "test", ["x", "y", "z"], 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load(tmp_path, image_size=6, val_fraction=0.25)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (9, 3, 6)


def test_image_folder_errors(tmp_path):
    pytest.importorskip("PIL")
    (tmp_path / "empty_root").mkdir()
    with pytest.raises(ValueError, match="no class sub-folders"):
        load(tmp_path / "empty_root")
    _write_images(tmp_path / "data", ["a"], 2)
    (tmp_path / "data" / "b").mkdir()
    with pytest.raises(ValueError, match="class folder has no images"):
        load(tmp_path / "data")
    bad = tmp_path / "allbad" / "a"
    bad.mkdir(parents=True)
    (bad / "x.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="none of its 1 images could be read"):
        load(tmp_path / "allbad")
