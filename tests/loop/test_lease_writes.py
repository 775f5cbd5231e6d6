"""Issue 21 item 3 (one writer): once a search has taken a study's writer lease, it writes the study only
while it holds it; a second search that takes the lease as the first gives it up finds nothing written after."""

from __future__ import annotations

import os

from mnas.loop import Budget, search
from mnas.space import MnasNetSpace
from mnas.study import InMemoryStorage


class WatchedStorage(InMemoryStorage):
    """Records every metadata or trial write made after the lease was first taken while no lease of this
    process is held."""

    def __init__(self) -> None:
        super().__init__()
        self.leased_once = False
        self.outside: list[str] = []

    def acquire_writer(self, *args, **kwargs) -> str:
        self.leased_once = True
        return super().acquire_writer(*args, **kwargs)

    def _check(self, what: str) -> None:
        holder = self.get_writer()
        if self.leased_once and (holder is None or holder.get("pid") != os.getpid()):
            self.outside.append(what)

    def _set_meta(self, key: str, text: str) -> None:
        self._check(f"meta {key}")
        super()._set_meta(key, text)

    def _update_running(self, number, state, values, strategy=None) -> None:
        self._check(f"trial {number}")
        super()._update_running(number, state, values, strategy)


def _figures(arch) -> dict:
    h = sum(ord(c) for c in str(arch))
    return {"accuracy": 0.5 + (h % 400) / 1000.0, "latency_ms": 5.0 + (h % 300) / 10.0}


def test_a_search_writes_its_study_only_under_the_lease():
    storage = WatchedStorage()
    study = search(MnasNetSpace(10, 224), evaluate=_figures, target=20, strategy="random", budget=Budget(trials=3),
                   storage=storage, seed=0)
    assert study.last_run is not None and len(study.get_trials("complete")) == 3
    assert storage.get_meta("last_run") == study.last_run.to_dict()
    assert storage.outside == [], f"written without the lease: {storage.outside}"
