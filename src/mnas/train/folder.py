"""Image folders: one sub-folder per class, decoded with Pillow, resized, cached as arrays.

``root/<class>/*.png|jpg|...``, or ``root/train/<class>/...`` with ``root/test/<class>/...`` for a
given test split (otherwise a seeded stratified `test_fraction` is held out). Images are converted
to RGB, resized so the shorter side is `image_size`, and centre-cropped to a square.

The decoded arrays are cached next to the data as ``root/.mnas-cache-<size>.npz`` with a
fingerprint of every file's path, size and modification time, so a changed folder is read again.
Unreadable images (damaged files, broken symlinks, images over Pillow's decompression-bomb limit) are
skipped and counted in one warning; an empty class, a class none of whose images can be read, a
symlink that loops back into the data (the same images in two classes) or that points nowhere is an
error. Class folders, sub-folders and image files may be symlinks.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from mnas._util import get_logger, require
from mnas.train.datasets import Augment, Dataset, from_arrays, stratified_split

__all__ = ["IMAGE_SUFFIXES", "load_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
_CACHE_VERSION = 1
log = get_logger("mnas.train.folder")


def _class_dirs(folder: Path) -> list[Path]:
    """The visible sub-folders of `folder`; ValueError for a symlink that loops or points nowhere."""
    dirs = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_symlink() and not p.exists():  # exists() follows the link: False for a loop or a dangling link
            raise ValueError(f"{p}: a symlink that loops or points nowhere ({os.readlink(p)!r}): remove it or point it"
                             " at a folder of images")
        if p.is_dir():
            dirs.append(p)
    return dirs


def _check_no_overlap(folder: Path, dirs: list[Path]) -> None:
    """ValueError when a class (or split) folder is, holds or lies inside the data folder or another
    class folder once symlinks are resolved: its images would be read twice, under two labels."""
    real = {d: Path(os.path.realpath(d)) for d in dirs}
    top = Path(os.path.realpath(folder))
    for d, r in real.items():
        if r == top or r in top.parents:
            raise ValueError(f"{d}: a symlink back to {r}, which holds the data folder itself (a loop): remove it")
    for d, r in real.items():
        for other, r2 in real.items():
            if other != d and (r == r2 or r2 in r.parents):
                raise ValueError(f"{d} and {other} are the same folder or one holds the other once symlinks are"
                                 f" resolved ({r}, {r2}): each class needs its own folder of images")


def _files(class_dir: Path) -> list[Path]:
    """Image files under `class_dir`, sub-folders and symlinks included; ValueError for a symlinked
    sub-folder that loops back to a folder above it (a broken file link is reported when it is read)."""
    found: list[Path] = []
    seen = {os.path.realpath(class_dir)}
    for top, dirs, names in os.walk(class_dir, followlinks=True):
        here = os.path.realpath(top)
        for d in sorted(dirs):
            link = Path(top) / d
            real = os.path.realpath(link)
            if real == here or here.startswith(real + os.sep):
                raise ValueError(f"{link}: a symlink back to {real}, a folder above it (a loop): remove it")
            if real in seen:  # a second link to a folder already read
                dirs.remove(d)
            seen.add(real)
        dirs.sort()
        found += [Path(top) / n for n in sorted(names) if Path(n).suffix.lower() in IMAGE_SUFFIXES]
    return found


def _listing(root: Path) -> dict[str, dict[str, list[Path]]]:
    """{split: {class name: files}}; split 'all' when the folder has no train/test sub-folders."""
    top = _class_dirs(root)
    subdirs = {p.name for p in top}
    splits = {"train": root / "train", "test": root / "test"} if {"train", "test"} <= subdirs else {"all": root}
    if "all" not in splits:
        _check_no_overlap(root, list(splits.values()))
    listing: dict[str, dict[str, list[Path]]] = {}
    for split, folder in splits.items():
        classes = top if split == "all" else _class_dirs(folder)
        if not classes:
            raise ValueError(f"{folder}: no class sub-folders: expected one folder of images per class")
        _check_no_overlap(folder, classes)
        listing[split] = {c.name: _files(c) for c in classes}
        empty = [name for name, files in listing[split].items() if not files]
        if empty:
            raise ValueError(f"{folder / empty[0]}: class folder has no images ({', '.join(IMAGE_SUFFIXES)});"
                             " add images or remove the folder")
        _check_unique_files(folder, listing[split])
    if "test" in listing and set(listing["test"]) - set(listing["train"]):
        extra = sorted(set(listing["test"]) - set(listing["train"]))[0]
        raise ValueError(f"{root / 'test' / extra}: class has no training folder {root / 'train' / extra}")
    return listing


def _check_unique_files(folder: Path, classes: dict[str, list[Path]]) -> None:
    """ValueError when one image file (after symlinks) is listed under two classes."""
    owner: dict[str, str] = {}
    for name, files in classes.items():
        for f in files:
            real = os.path.realpath(f)
            if owner.setdefault(real, name) != name:
                raise ValueError(f"{f}: the same image ({real}) is in class {owner[real]!r} and class {name!r}"
                                 f" of {folder} (a symlink?): each image belongs to one class")


def _fingerprint(root: Path, listing: dict[str, dict[str, list[Path]]], image_size: int) -> str:
    h = hashlib.sha256(f"v{_CACHE_VERSION} size={image_size}".encode())
    for split, classes in listing.items():
        for name, files in classes.items():
            for f in files:
                try:
                    st = f.stat()
                except OSError:  # a broken symlink: read (and reported) as unreadable
                    st = f.lstat()
                h.update(f"{split}/{name}/{f.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _decode(path: Path, size: int, Image: object) -> np.ndarray:
    with warnings.catch_warnings():
        # Over MAX_IMAGE_PIXELS Pillow warns, over twice that it refuses: both are refused here, before decoding.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # type: ignore[attr-defined]
        im_file = Image.open(path)  # type: ignore[attr-defined]
    with im_file as im:
        w, h = im.size
        limit = Image.MAX_IMAGE_PIXELS  # type: ignore[attr-defined]
        if limit and w * h > limit:
            raise Image.DecompressionBombError(f"{w}x{h}")  # type: ignore[attr-defined]
        im = im.convert("RGB")
        scale = size / min(w, h)
        nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR)  # type: ignore[attr-defined]
        left, top = (nw - size) // 2, (nh - size) // 2
        return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _reason(exc: BaseException, Image: object) -> str:
    if isinstance(exc, Image.DecompressionBombError):  # type: ignore[attr-defined]
        limit = Image.MAX_IMAGE_PIXELS  # type: ignore[attr-defined]
        return f"too large to decode safely: over Pillow's decompression-bomb limit of {limit:,} pixels"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


def _read_split(classes: dict[str, list[Path]], class_index: dict[str, int], size: int, Image: object,
                bad: list[tuple[Path, str]]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for name, files in classes.items():
        n_before, n_bad = len(xs), len(bad)
        for f in files:
            try:
                xs.append(_decode(f, size, Image))
            except Exception as exc:  # noqa: BLE001 - Pillow's decoders raise many types for damaged or foreign files
                bad.append((f, _reason(exc, Image)))
                continue
            ys.append(class_index[name])
        if len(xs) == n_before:
            example, why = bad[n_bad]
            raise ValueError(f"class {name!r}: none of its {len(files)} images could be read (e.g. {example}:"
                             f" {why}): replace or remove them")
    return np.stack(xs), np.asarray(ys, dtype=np.int64)


def load_image_folder(root: str | Path, image_size: int = 32, val_fraction: float = 0.1, seed: int = 0,
                      test_fraction: float = 0.2, augment: Augment | None = None) -> Dataset:
    """An image-folder data set (see the module docstring), resized to `image_size` squares."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"image folder not found: {root}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 4 <= image_size <= 1024:
        raise ValueError(f"image_size={image_size!r}: expected an integer in [4, 1024]")
    listing = _listing(root)
    class_names = sorted(listing.get("train", listing.get("all", {})))
    fingerprint = _fingerprint(root, listing, image_size)
    cache = root / f".mnas-cache-{image_size}.npz"
    arrays = _read_cache(cache, fingerprint)
    if arrays is None:
        Image = require("PIL.Image", "loading an image folder")
        index = {name: i for i, name in enumerate(class_names)}
        bad: list[tuple[Path, str]] = []
        if "all" in listing:
            x, y = _read_split(listing["all"], index, image_size, Image, bad)
            keep, test = stratified_split(y, test_fraction, seed=0)  # fixed: the same test images every run
            arrays = {"x_train": x[keep], "y_train": y[keep], "x_test": x[test], "y_test": y[test]}
        else:
            x_train, y_train = _read_split(listing["train"], index, image_size, Image, bad)
            x_test, y_test = _read_split(listing["test"], index, image_size, Image, bad)
            arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
        if bad:
            warnings.warn(f"{root}: skipped {len(bad)} unreadable image(s), e.g. {bad[0][0]} ({bad[0][1]})",
                          stacklevel=2)
        arrays["bad"] = np.asarray(len(bad))
        _write_cache(cache, fingerprint, arrays)
    return from_arrays(root.name, arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                       class_names, val_fraction, seed, augment,
                       source={"data": str(root), "image_size": image_size})


def _read_cache(cache: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    if not cache.is_file():
        return None
    try:
        with np.load(cache, allow_pickle=False) as npz:
            if str(npz["fingerprint"]) != fingerprint:
                return None
            arrays = {k: npz[k] for k in ("x_train", "y_train", "x_test", "y_test", "bad")}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error):  # a damaged cache is rebuilt
        return None
    if int(arrays["bad"]):
        warnings.warn(f"{cache.parent}: skipped {int(arrays['bad'])} unreadable image(s) (cached)", stacklevel=3)
    return arrays


def _write_cache(cache: Path, fingerprint: str, arrays: dict[str, np.ndarray]) -> None:
    """Atomically; a read-only data folder only costs the cache (logged), never the load."""
    tmp = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
    try:
        buf = io.BytesIO()
        np.savez(buf, fingerprint=np.asarray(fingerprint), meta=np.asarray(json.dumps({"v": _CACHE_VERSION})),
                 **arrays)
        tmp.write_bytes(buf.getvalue())
        os.replace(tmp, cache)
    except OSError as exc:
        log.warning("could not write the image cache %s: %s", cache, exc)
        tmp.unlink(missing_ok=True)
