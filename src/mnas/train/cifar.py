"""The official CIFAR-10 and CIFAR-100 "python version" batches, with download and checksum.

Layout (Krizhevsky 2009): ``cifar-10-batches-py/`` holds ``data_batch_1..5``, ``test_batch`` and
``batches.meta``; ``cifar-100-python/`` holds ``train``, ``test`` and ``meta``. Each batch is a
pickled dict with ``b"data"`` (N, 3072) uint8 in channel-major order and the labels. The batches
are pickles, so only load files you trust (the official archive is verified by MD5 on download).
"""

from __future__ import annotations

import hashlib
import pickle
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np

from mnas.train.datasets import Augment, Dataset, from_arrays

__all__ = ["CIFAR", "detect_cifar", "download_cifar", "load_cifar"]

CIFAR: dict[str, dict[str, Any]] = {
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "md5": "c58f30108f718f92721af3b95e74349a", "dir": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
        "meta": "batches.meta", "labels": b"labels", "names": b"label_names",
    },
    "cifar100": {
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "md5": "eb9058c3a382ffc7106e4002c42a8d85", "dir": "cifar-100-python",
        "train": ["train"], "test": ["test"], "meta": "meta", "labels": b"fine_labels", "names": b"fine_label_names",
    },
}


def _batches_dir(kind: str, root: Path) -> Path:
    spec = CIFAR[kind]
    return root if (root / spec["train"][0]).is_file() else root / spec["dir"]


def detect_cifar(path: Path) -> str | None:
    """'cifar10' or 'cifar100' if `path` is (or directly holds) a directory of the official batches."""
    for kind, spec in CIFAR.items():
        d = _batches_dir(kind, path)
        if (d / spec["train"][0]).is_file() and (d / spec["meta"]).is_file():
            return kind
    return None


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"CIFAR batch missing: {path} (re-download with --download into an empty folder)")
    try:
        with path.open("rb") as f:
            return pickle.load(f, encoding="bytes")
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise ValueError(f"{path}: not a CIFAR python batch ({type(exc).__name__}: {exc})") from None


def _read(kind: str, d: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    spec, xs, ys = CIFAR[kind], [], []
    for name in names:
        batch = _unpickle(d / name)
        if not isinstance(batch, dict) or b"data" not in batch or spec["labels"] not in batch:
            raise ValueError(f"{d / name}: not a {kind} batch (needs a dict with b'data' and {spec['labels']!r})")
        data = _as_array(batch[b"data"], d / name, "data")
        if data.ndim != 2 or data.shape[1] != 3072:
            raise ValueError(f"{d / name}: data has shape {data.shape}, expected (N, 3072)")
        if data.dtype != np.uint8:
            if not np.issubdtype(data.dtype, np.integer) or (data.size and (data.min() < 0 or data.max() > 255)):
                raise ValueError(f"{d / name}: data has dtype {data.dtype}, expected uint8 pixels (0..255)")
        labels = _as_array(batch[spec["labels"]], d / name, spec["labels"].decode())
        if labels.ndim != 1 or not (np.issubdtype(labels.dtype, np.integer) or not labels.size):
            raise ValueError(f"{d / name}: labels have shape {labels.shape} and dtype {labels.dtype}, expected a list"
                             " of integers")
        xs.append(data.astype(np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))  # (N, 32, 32, 3)
        ys.append(labels.astype(np.int64))
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _as_array(value: object, path: Path, what: str) -> np.ndarray:
    """`value` as a numeric array; ValueError naming the file when it is not one (None, text, objects)."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):  # ragged lists and the like
        array = None
    if array is None or not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ValueError(f"{path}: {what} is not an array of numbers ({type(value).__name__}): not a CIFAR python batch")
    return array


def _class_names(kind: str, d: Path) -> list[str]:
    spec = CIFAR[kind]
    meta = _unpickle(d / spec["meta"])
    names = meta.get(spec["names"]) if isinstance(meta, dict) else None
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str)) for n in names):
        raise ValueError(f"{d / spec['meta']}: not a {kind} meta file (needs a dict whose {spec['names']!r} lists the"
                         " class names)")
    return [n.decode(errors="replace") if isinstance(n, bytes) else n for n in names]


def load_cifar(kind: str, root: str | Path, val_fraction: float = 0.1, seed: int = 0, download: bool = False,
               augment: Augment | None = None) -> Dataset:
    """CIFAR-10 or CIFAR-100 from `root` (the batches folder or its parent); `download` fetches it there."""
    root = Path(root).expanduser()
    if detect_cifar(root) != kind:
        if not download:
            raise FileNotFoundError(f"no {kind} batches in {root}: pass download=True (--download) to fetch"
                                    f" {CIFAR[kind]['url']}, or point root at the {CIFAR[kind]['dir']} folder")
        download_cifar(kind, root)
    d = _batches_dir(kind, root)
    spec = CIFAR[kind]
    names = _class_names(kind, d)
    x_train, y_train = _read(kind, d, spec["train"])
    x_test, y_test = _read(kind, d, spec["test"])
    return from_arrays(kind, x_train, y_train, x_test, y_test, names, val_fraction, seed, augment,
                       source={"data": kind, "root": str(root)})


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def download_cifar(kind: str, root: str | Path, url: str | None = None, md5: str | None = None) -> Path:
    """Download the official archive into `root`, verify its MD5, and extract it. Returns the batches folder."""
    spec = CIFAR[kind]
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    url, md5 = url or spec["url"], md5 or spec["md5"]
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        archive = Path(tmp) / "archive.tar.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response, archive.open("wb") as f:
                shutil.copyfileobj(response, f)
        except OSError as exc:
            raise OSError(f"download of {url} failed ({exc}); fetch it by hand and extract it into {root}") from None
        got = md5sum(archive)
        if got != md5:
            raise ValueError(f"checksum mismatch for {url}: md5 {got}, expected {md5} (a corrupt or changed"
                             " download; try again)")
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            for m in members:
                if not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in Path(m.name).parts:
                    raise ValueError(f"{url}: unsafe member {m.name!r} in the archive")
            safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
            tar.extractall(tmp, members=members, **safe)
        extracted = Path(tmp) / spec["dir"]
        if not extracted.is_dir():
            raise ValueError(f"{url}: the archive has no {spec['dir']}/ folder")
        target = root / spec["dir"]
        if target.exists():
            shutil.rmtree(target)
        extracted.rename(target)
    return target
