"""Layer 2: the study — every trial, the strategy's state and the search's metadata, stored as the
search runs (SQLite on disk, or in memory) so a killed search resumes. Does not import torch."""

from mnas.study.sqlite import SCHEMA_VERSION, SQLiteStorage, StudyNotReadyError
from mnas.study.storage import InMemoryStorage, Storage, StudyBusyError, get_storage
from mnas.study.study import Study, standalone_trials
from mnas.study.trial import Trial, TrialState

__all__ = [
    "SCHEMA_VERSION", "InMemoryStorage", "SQLiteStorage", "Storage", "Study", "StudyBusyError", "StudyNotReadyError",
    "Trial", "TrialState", "get_storage", "standalone_trials",
]
