"""The read-views contract against the in-memory views over the fake database (no services)."""

from __future__ import annotations

import pytest

from tests.helpers.fake_read_views import FakeReadViews
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork
from tests.helpers.read_views_contract import ReadViewsContract


class FakeBackend:
    """One fake database: the views read what its unit of work commits."""

    def __init__(self) -> None:
        self.db = FakeDatabase()
        self.views = FakeReadViews(self.db)

    async def seed(self, orders: list[dict]) -> None:
        self.db.seed(orders)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)


class TestFakeReadViews(ReadViewsContract):
    """FakeReadViews keeps the read-views contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
