"""The shared storage suite, run against every Storage implementation."""

from __future__ import annotations

import pytest

from mnas.study import InMemoryStorage, SQLiteStorage
from mnas.study.testing import StorageTestSuite


class TestInMemoryStorage(StorageTestSuite):
    @pytest.fixture
    def storage(self):
        yield InMemoryStorage()


class TestSQLiteStorage(StorageTestSuite):
    @pytest.fixture
    def storage(self, tmp_path):
        storage = SQLiteStorage(tmp_path / "study.db")
        yield storage
        storage.close()


class TestSQLiteStorageReopened(StorageTestSuite):
    """Every read goes through a second connection: what one writes, another reads back."""

    @pytest.fixture
    def storage(self, tmp_path):
        writer = SQLiteStorage(tmp_path / "study.db")
        reader = SQLiteStorage(tmp_path / "study.db", read_only=True)
        for name in ("get_trial", "_get_trials", "find_complete", "load_strategy_state", "get_meta", "get_all_meta"):
            setattr(writer, name, getattr(reader, name))
        yield writer
        reader.close()
        writer.close()
