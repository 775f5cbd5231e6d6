"""Layer 6: the search loop and the public entry points.

    study = mnas.create_study("runs/s.db", space=space, reward=mnas.Reward.soft(target_ms=20), seed=0)
    result = study.optimize(evaluator, strategy="ppo", budget=mnas.Budget(trials=100))
    study = mnas.load_study("runs/s.db")          # read it, or resume with study.optimize(...)

`search(...)` does both in one call. (This package was `mnas.search` before 0.2; it was renamed so
that `mnas.search` is only ever the function, whatever was imported first.)
"""

from mnas.loop.api import SearchStudy, create_study, load_study, search
from mnas.loop.budget import Budget
from mnas.loop.progress import ProgressPrinter
from mnas.loop.runner import RunResult, SearchEvent
from mnas.study.storage import StudyBusyError

__all__ = ["Budget", "ProgressPrinter", "RunResult", "SearchEvent", "SearchStudy", "StudyBusyError", "create_study",
           "load_study", "search"]
