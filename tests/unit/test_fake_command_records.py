"""The gateway's command-records contract against the in-memory records over the fake database (no services)."""

from __future__ import annotations

import pytest

from tests.helpers.command_records_contract import MAX_EVENTS, CommandRecordsContract
from tests.helpers.fake_command_records import FakeCommandRecords
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork


class FakeBackend:
    """One fake database: the records read what its unit of work commits."""

    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.records = FakeCommandRecords(self.db, MAX_EVENTS)

    async def seed(self, orders: list[dict]) -> None:
        self.db.seed(orders)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)


class TestFakeCommandRecords(CommandRecordsContract):
    """FakeCommandRecords keeps the command-records contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
