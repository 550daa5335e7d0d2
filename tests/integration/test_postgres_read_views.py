"""The read-views contract against PostgresReadViews on the real (embedded) Postgres."""

from __future__ import annotations

import pytest

from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.adapters.postgres.views import PostgresReadViews
from tests.helpers.database import seed_database
from tests.helpers.read_views_contract import ReadViewsContract


class PostgresBackend:
    """A pool on the test's database; the views (with a rules cache, as the read API has) and the worker's unit
    of work (with its own cache) share it."""

    def __init__(self, pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.views = PostgresReadViews(pool, RulesCache())
        self.worker_rules = RulesCache()

    async def seed(self, orders: list[dict]) -> None:
        await seed_database(self.database_url, orders)

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.worker_rules)


class TestPostgresReadViews(ReadViewsContract):
    """PostgresReadViews keeps the read-views contract."""

    @pytest.fixture
    def backend(self, database_pool, database_url):
        return PostgresBackend(database_pool, database_url)
