"""`load(source)`: one entry point for every supported data set (also importable as `mnas.data`).

Sources:
- ``"digits"``: scikit-learn's built-in 8x8 handwritten digits (no download; extra ``data``);
- a ``.npz`` file with x_train, y_train, x_test, y_test (NHWC uint8) and optional class_names;
- ``"cifar10"`` / ``"cifar100"`` with ``root=`` (``download=True`` fetches and verifies the official
  archive), or a path to a ``cifar-10-batches-py`` / ``cifar-100-python`` directory;
- a directory of images, one sub-folder per class (optionally under ``train/`` and ``test/``),
  decoded with Pillow, resized to `image_size` and cached next to the data.

Every loader holds out a seeded, stratified validation split of `val_fraction` of the training
data; the test split stays untouched until a fully trained model is scored.
"""

from __future__ import annotations

from pathlib import Path

from mnas.train.datasets import Augment, Dataset, from_arrays, load_digits, load_npz

__all__ = ["Augment", "Dataset", "from_arrays", "load", "load_dataset"]

BUILTIN = ("digits", "cifar10", "cifar100")


def load(source: str | Path, *, root: str | Path | None = None, val_fraction: float = 0.1, seed: int = 0,
         download: bool = False, image_size: int = 32, test_fraction: float = 0.2,
         augment: Augment | None = None) -> Dataset:
    """Load `source` (see the module docstring) into memory, with a validation split held out.

    `augment` overrides the data set's default (crop padding 4 and flip for natural images; 1-pixel
    shifts and no flip for digits). `image_size` and `test_fraction` apply to image folders only.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r}: expected a number in [0, 1)")
    text = str(source)
    if text == "digits":
        return load_digits(val_fraction, seed, augment)
    if text in ("cifar10", "cifar100"):
        from mnas.train.cifar import load_cifar

        if root is None:
            raise ValueError(f"{text} needs root=DIR (the folder that holds or will hold the official batches);"
                             " add download=True to fetch them")
        return load_cifar(text, root, val_fraction, seed, download, augment)
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"data not found: {text} (expected 'digits', 'cifar10', 'cifar100', a .npz file"
                                " or an image folder)")
    if path.is_file():
        if path.suffix != ".npz":
            raise ValueError(f"{path}: unsupported data file (expected a .npz with x_train, y_train, x_test, y_test)")
        return load_npz(path, val_fraction, seed, augment)
    from mnas.train.cifar import detect_cifar, load_cifar

    kind = detect_cifar(path)
    if kind:
        return load_cifar(kind, path, val_fraction, seed, False, augment)
    from mnas.train.folder import load_image_folder

    return load_image_folder(path, image_size, val_fraction, seed, test_fraction, augment)


load_dataset = load
