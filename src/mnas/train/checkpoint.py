"""Atomic files: a checkpoint or model file is written to a temporary name, flushed to disk, then
renamed over the old one, so a kill mid-write never corrupts the last good file."""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["atomic_save", "atomic_write_bytes", "atomic_write_text", "file_digest", "get_rng_state", "load_file", "set_rng_state"]


def _atomic(path: Path, write: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600: give it the mode open() would (the umask's, or the replaced file's), so a
        # model.pt can be read by whoever may read its folder (a device, a teammate, a web server)
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with_suppressed(os.unlink, tmp)
        raise


def _umask() -> int:
    """The process's umask: from /proc (Linux) without changing it; elsewhere by setting it and setting it back
    (another thread creating a file in that instant would get 022)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_digest(path: str | Path) -> str:
    """A file's identity by content: the first 16 hex digits of its SHA-256 (a supernet checkpoint's, so
    that a study can tell later whether the file it was searched with has changed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def with_suppressed(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except OSError:
        pass


def atomic_save(obj: Any, path: str | Path) -> None:
    """`torch.save(obj, path)`, atomically."""
    _atomic(Path(path), lambda f: torch.save(obj, f))


def atomic_write_bytes(payload: bytes, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(payload))


def atomic_write_text(text: str, path: str | Path) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def atomic_write_json(data: Any, path: str | Path) -> None:
    atomic_write_text(json.dumps(data, indent=2) + "\n", path)


def load_file(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint or model file saved by mnas (plain tensors and Python values only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means "not our file"
        raise ValueError(f"{path}: not a readable mnas checkpoint or model file ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: not a mnas checkpoint or model file (holds a {type(obj).__name__})")
    return obj


def get_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch RNG states, as plain values that `torch.load(weights_only=True)` accepts."""
    kind, key, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": _to_lists(random.getstate()), "numpy": [kind, key.tolist(), pos, has_gauss, gauss],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, key, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(key, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value: Any) -> Any:
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value
