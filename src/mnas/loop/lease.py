"""`WriterLease`: one writer per study, held for the length of a run and renewed by a heartbeat thread
(training in the driver can block the loop for minutes, so the loop itself cannot renew it)."""

from __future__ import annotations

import threading

from mnas.study import Storage
from mnas.study.storage import WRITER_TTL, StudyBusyError

__all__ = ["WriterLease"]


class WriterLease:
    """Takes `storage`'s writer lease on enter (StudyBusyError if a live process holds it), renews it
    every `ttl / 4` seconds, and gives it up on exit. `check()` raises if another process took the
    study over meanwhile (only possible after this process stalled for `ttl` seconds)."""

    def __init__(self, storage: Storage, ttl: float = WRITER_TTL, name: str = "mnas search") -> None:
        self.storage, self.ttl, self.name = storage, float(ttl), name
        self.lease: str | None = None
        self.lost = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WriterLease:
        self.lease = self.storage.acquire_writer(self.ttl, name=self.name)
        self._thread = threading.Thread(target=self._beat, name="mnas-study-heartbeat", daemon=True)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(self.ttl / 4):
            try:
                if not self.storage.heartbeat(self.lease):
                    self.lost = True
                    return
            except Exception:  # noqa: BLE001 - a busy or closed database: try again next beat
                continue

    def check(self) -> None:
        if self.lost:
            raise StudyBusyError(f"study {self.storage!r}: another process took over the writer lease while this "
                                 "search was stalled; this search stops (its finished trials are stored)")

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.lease is not None and not self.lost:
            try:
                self.storage.release_writer(self.lease)
            except Exception:  # noqa: BLE001 - a closed storage: the lease expires with this process
                pass
