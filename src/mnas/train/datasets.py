"""In-memory datasets: uint8 NHWC images, int64 labels, class names, and seeded stratified splits.

`Dataset` holds plain NumPy arrays, so it pickles cheaply to worker processes. The validation split
is held out from the training data (MnasNet held out 50K ImageNet training images); the test split
is only for the final figure of a fully trained model and is never read by a search.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_CLASSES", "MIN_IMAGE_SIZE", "Augment", "Dataset", "check_arrays", "from_arrays", "load_digits", "load_npz",
           "stratified_split"]

_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# Labels are class indices; above this many classes a label is far more likely a mistake (an id,
# a hash) than a real class (ImageNet-21k has 21,841), and the classifier would be absurd.
MAX_CLASSES = 100_000
# The smallest image side mnas trains on (the image-folder loader and the latency backends use the same
# floor): below it a random crop, a stride-2 stem and a 3x3 kernel see mostly padding.
MIN_IMAGE_SIZE = 4
# What reading a damaged .npz can raise: a truncated zip, a short member, a corrupt deflate stream.
_NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error)
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip's end record


@dataclass(frozen=True)
class Augment:
    """Training augmentation: random crop after zero padding by `crop_padding` pixels, and an
    optional horizontal flip (wrong for digits and text, right for natural images)."""

    crop_padding: int = 4
    flip: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.crop_padding, bool) or not isinstance(self.crop_padding, int) or self.crop_padding < 0:
            raise ValueError(f"crop_padding={self.crop_padding!r}: expected an integer >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {"crop_padding": self.crop_padding, "flip": self.flip}


NO_AUGMENT = Augment(0, False)


@dataclass
class Dataset:
    """Train / validation / test splits as (N, H, W, C) uint8 images and (N,) int64 labels.

    `mean` and `std` are per-channel statistics of the training split in [0, 1] units; the trainer
    normalises with them on the training device.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    augment: Augment = field(default_factory=Augment)
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)  # how it was loaded (for resuming a run)

    def __post_init__(self) -> None:
        self.class_names = tuple(str(c) for c in self.class_names)
        for split in ("train", "val", "test"):
            check_arrays(getattr(self, f"x_{split}"), getattr(self, f"y_{split}"), f"{self.name} {split}",
                         len(self.class_names), allow_empty=split != "train")
        shapes = {getattr(self, f"x_{s}").shape[1:] for s in ("train", "val", "test") if len(getattr(self, f"y_{s}"))}
        if len(shapes) > 1:
            raise ValueError(f"{self.name}: splits have different image shapes {sorted(shapes)}: expected one (H, W, C)")
        check_classes(self.y_train, f"{self.name} train")
        if not self.mean or not self.std:
            mean, std = channel_stats(self.x_train)
            self.mean, self.std = self.mean or mean, self.std or std

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.x_train.shape[3])

    @property
    def input_size(self) -> int:
        """Image side (every loader and `Dataset` itself refuse non-square images)."""
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.x_train.shape[1:])  # type: ignore[return-value]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"unknown split {name!r}: expected train, val or test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def with_augment(self, augment: Augment) -> Dataset:
        return replace(self, augment=augment)

    def to_dict(self) -> dict[str, Any]:
        """A summary (no arrays): sizes, shape, classes, normalisation."""
        return {
            "name": self.name, "num_classes": self.num_classes, "image_shape": list(self.image_shape),
            "train": len(self.y_train), "val": len(self.y_val), "test": len(self.y_test),
            "class_names": list(self.class_names), "mean": list(self.mean), "std": list(self.std),
            "augment": self.augment.to_dict(),
        }

    def __repr__(self) -> str:
        h, w, c = self.image_shape
        return (f"Dataset({self.name!r}, {self.num_classes} classes, {h}x{w}x{c}, train={len(self.y_train)},"
                f" val={len(self.y_val)}, test={len(self.y_test)})")


def check_arrays(x: Any, y: Any, what: str, num_classes: int | None = None, allow_empty: bool = False) -> None:
    """Raise ValueError naming what is wrong unless x is (N, H, W, C) uint8 and y is (N,) int in range."""
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        raise ValueError(f"{what}: images and labels must be NumPy arrays")
    if x.dtype != np.uint8:
        raise ValueError(f"{what}: images have dtype {x.dtype}, expected uint8 (0..255); convert with"
                         " (x * 255).round().astype(np.uint8) if they are floats in [0, 1]")
    if x.ndim != 4:
        raise ValueError(f"{what}: images have shape {x.shape}, expected (N, H, W, C) (NHWC)")
    if x.shape[3] not in (1, 3, 4) and x.shape[1] in (1, 3, 4):
        raise ValueError(f"{what}: images have shape {x.shape}, which looks like NCHW: expected NHWC;"
                         " transpose with x.transpose(0, 2, 3, 1)")
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{what}: labels have shape {y.shape} and dtype {y.dtype}, expected (N,) integers")
    if len(x) != len(y):
        raise ValueError(f"{what}: {len(x)} images but {len(y)} labels")
    if len(x):
        check_image_shape(x.shape[1:], what)
    if not len(y):
        if allow_empty:
            return
        raise ValueError(f"{what}: no images")
    if y.min() < 0:
        raise ValueError(f"{what}: label {y.min()} is negative: labels are class indices 0, 1, 2, ...")
    limit = MAX_CLASSES if num_classes is None else num_classes
    if y.max() >= limit:
        expected = (f"0..{num_classes - 1} ({num_classes} classes)" if num_classes is not None
                    else f"class indices below {MAX_CLASSES:,} (renumber the labels 0..K-1)")
        raise ValueError(f"{what}: label {y.max()} is out of range: expected {expected}")


def check_image_shape(shape: tuple[int, ...], what: str) -> None:
    """ValueError unless (H, W, C) is a square of at least `MIN_IMAGE_SIZE` pixels: the networks, their
    latency and their profile are all sized by one side, so a 8x16 image would be measured as 8x8."""
    h, w = int(shape[0]), int(shape[1])
    if h != w:
        raise ValueError(f"{what}: images are {h}x{w} (height x width): mnas trains on square images;"
                         " crop or resize them to a square (an image folder is centre-cropped for you)")
    if h < MIN_IMAGE_SIZE:
        raise ValueError(f"{what}: images are {h}x{w} pixels: expected at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE};"
                         " check the array's layout (N, H, W, C) or resize the images")


def check_classes(y: np.ndarray, what: str) -> None:
    """ValueError unless the labels hold at least two classes: with one, every network scores 100%."""
    present = np.unique(y)
    if len(present) < 2:
        only = f"only class {int(present[0])}" if len(present) else "no labels"
        raise ValueError(f"{what}: {only}: a classifier needs images of at least two classes"
                         " (check the labels, or the folder's class sub-folders)")


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NHWC images, in [0, 1] units (chunked: no float copy)."""
    c = x.shape[3]
    total, total_sq, n = np.zeros(c), np.zeros(c), 0
    for i in range(0, len(x), chunk):
        part = x[i:i + chunk].reshape(-1, c).astype(np.float64) / 255.0
        total += part.sum(0)
        total_sq += (part * part).sum(0)
        n += len(part)
    mean = total / max(n, 1)
    std = np.sqrt(np.maximum(total_sq / max(n, 1) - mean * mean, 1e-12))
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(max(v, 1e-3)), 6) for v in std)


def stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (keep, held_out): `fraction` of each class held out, at least one where a class has two
    or more examples and fraction > 0. Seeded: the same seed always holds out the same images."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"hold-out fraction {fraction!r}: expected a number in [0, 1)")
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        k = int(round(fraction * len(idx)))
        if fraction > 0 and len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        else:
            k = 0
        held.append(idx[:k])
        keep.append(idx[k:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def from_arrays(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                class_names: tuple[str, ...] | list[str] | None = None, val_fraction: float = 0.1, seed: int = 0,
                augment: Augment | None = None, source: dict[str, Any] | None = None) -> Dataset:
    """A `Dataset` from full train and test arrays, holding out a seeded stratified validation split."""
    if x_train.ndim == 3:  # (N, H, W) grayscale
        x_train = x_train[..., None]
    if x_test.ndim == 3:
        x_test = x_test[..., None]
    check_arrays(x_train, y_train, f"{name} train")
    if isinstance(x_test, np.ndarray) and x_test.ndim == 4 and len(x_test) and x_test.shape[1:] != x_train.shape[1:]:
        raise ValueError(f"{name}: test images are {x_test.shape[1:]} but train images are {x_train.shape[1:]}")
    check_arrays(x_test, y_test, f"{name} test", allow_empty=True)
    if len(y_test):
        check_arrays(x_test, y_test, f"{name} test")  # label range, before anything is sized by it
        unseen = np.setdiff1d(np.unique(y_test), np.unique(y_train))
        if len(unseen):
            raise ValueError(f"{name}: test label(s) {', '.join(map(str, unseen[:5].tolist()))} never occur in the"
                             " training split: every class needs training images (check the labels)")
    check_classes(y_train, f"{name} train")
    num_classes = int(y_train.max()) + 1
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    class_names = tuple(str(c) for c in class_names)
    if len(class_names) < num_classes:
        raise ValueError(f"{name}: {len(class_names)} class names but labels go up to {num_classes - 1}")
    keep, val = stratified_split(y_train, val_fraction, seed)
    if val_fraction > 0 and not len(val):
        raise ValueError(f"{name}: val_fraction={val_fraction:g} held out no validation images (every class has"
                         " fewer than 2 training images): add training data, since a search scores on them")
    return Dataset(
        name=name,
        x_train=np.ascontiguousarray(x_train[keep]), y_train=y_train[keep].astype(np.int64),
        x_val=np.ascontiguousarray(x_train[val]), y_val=y_train[val].astype(np.int64),
        x_test=np.ascontiguousarray(x_test), y_test=y_test.astype(np.int64),
        class_names=class_names, augment=augment or Augment(),
        source=dict(source or {}, val_fraction=val_fraction, seed=seed),
    )


def load_npz(path: str | Path, val_fraction: float = 0.1, seed: int = 0, augment: Augment | None = None) -> Dataset:
    """A `.npz` file with x_train, y_train, x_test, y_test (NHWC uint8) and optional class_names.

    Every member's .npy header is read first, so a file that is not a zip of arrays, a member that is
    not an array, holds Python objects, or claims more data than the file holds (a forged header
    would otherwise size a huge allocation) is a one-line ValueError before any array is read."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataset file not found: {path}")
    _check_npz(path)
    try:
        npz = np.load(path, allow_pickle=False)
    except _NPZ_ERRORS as exc:
        raise ValueError(f"{path}: not a readable .npz file ({_npz_reason(exc)})") from None
    with npz:
        missing = [k for k in _NPZ_KEYS if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; a dataset .npz needs"
                             f" {', '.join(_NPZ_KEYS)} (and optionally class_names)")
        try:
            arrays = {k: npz[k] for k in _NPZ_KEYS}
            names = [str(c) for c in npz["class_names"]] if "class_names" in npz.files else None
        except _NPZ_ERRORS as exc:  # truncated or corrupt member
            raise ValueError(f"{path}: damaged .npz file ({_npz_reason(exc)}): write it again") from None
    return from_arrays(path.stem, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       names, val_fraction, seed, augment, source={"data": str(path)})


def _npz_reason(exc: BaseException) -> str:
    """NumPy's reason, except its advice to load pickles (`allow_pickle=`), which we never follow."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if "pickle" in text:
        return "it holds Python objects, which mnas never loads"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def _check_npz(path: Path) -> None:
    """Read the zip directory and every dataset member's .npy header (no array data); ValueError naming
    what is wrong. Sizes are checked against the bytes each member really holds and against memory."""
    with path.open("rb") as f:
        head = f.read(6)
    if head == _NPY_MAGIC:
        raise ValueError(f"{path}: a single .npy array, not a .npz: save the four arrays together with"
                         f" np.savez(path, {'=..., '.join(_NPZ_KEYS)}=...)")
    if head[:4] not in _ZIP_MAGICS:
        raise ValueError(f"{path}: not a readable .npz file: its bytes are not a valid .npz (a zip of .npy arrays,"
                         " as np.savez writes)")
    total = 0
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({_npz_reason(exc)})") from None
    with z:
        members = {info.filename.removesuffix(".npy"): info for info in z.infolist()}
        for key in (*_NPZ_KEYS, "class_names"):
            info = members.get(key)
            if info is None:
                continue
            try:
                total += _check_npy_member(path, z, key, info)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
                raise ValueError(f"{path}: damaged .npz file ({_npz_reason(exc)}): write it again") from None
    memory = _physical_memory()
    if memory and total > memory // 2:
        raise ValueError(f"{path}: its arrays need {_bytes(total)} in memory, over half of this machine's"
                         f" {_bytes(memory)}: use a subset of the data or a machine with more memory")


def _check_npy_member(path: Path, z: zipfile.ZipFile, key: str, info: zipfile.ZipInfo) -> int:
    """The byte size of member `key`'s array, from its header; ValueError if it is not one NumPy can
    read without pickle or its header claims more than the member holds."""
    with z.open(info) as f:
        if f.read(6) != _NPY_MAGIC:
            raise ValueError(f"{path}: member {key!r} is not a NumPy array (.npy): write the file with np.savez")
        version = tuple(f.read(2))
        try:
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy format version {'.'.join(map(str, version)) or 'none'}")
        except (ValueError, TypeError, SyntaxError, EOFError) as exc:
            raise ValueError(f"{path}: damaged .npz file: member {key!r} has no valid .npy header"
                             f" ({_npz_reason(exc)}): write it again") from None
        offset = f.tell()
    if dtype.hasobject:
        raise ValueError(f"{path}: member {key!r} holds Python objects, which mnas never loads (they need pickle):"
                         " store labels and images as numbers and class_names as a string array (dtype str)")
    count = 1
    for n in shape:
        count *= int(n)
    size = count * dtype.itemsize
    if size > info.file_size - offset:
        raise ValueError(f"{path}: damaged .npz file: member {key!r} claims shape {tuple(shape)} of {dtype}"
                         f" ({_bytes(size)}) but holds {_bytes(max(info.file_size - offset, 0))}: write it again")
    return size


def _bytes(n: int) -> str:
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def load_digits(val_fraction: float = 0.1, seed: int = 0, augment: Augment | None = None,
                test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's built-in 8x8 handwritten digits (1,797 images, no download), scaled to 0..255.

    The test split is a fixed stratified 20% (seed 0, independent of `seed`), so every run and
    every search sees the same test images."""
    from mnas._util import require

    datasets = require("sklearn.datasets", "the built-in 'digits' dataset")
    bunch = datasets.load_digits()
    x = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # (N, 8, 8, 1)
    y = bunch.target.astype(np.int64)
    train, test = stratified_split(y, test_fraction, seed=0)
    # Flipping a digit changes its meaning; one pixel of shift is the safe augmentation at 8x8.
    return from_arrays("digits", x[train], y[train], x[test], y[test], [str(i) for i in range(10)],
                       val_fraction, seed, augment or Augment(crop_padding=1, flip=False),
                       source={"data": "digits"})
