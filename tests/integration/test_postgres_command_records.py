"""The gateway's command-records contract against PostgresCommandRecords on the real (embedded) Postgres."""

from __future__ import annotations

import pytest

from service.adapters.postgres.command_records import PostgresCommandRecords
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from tests.helpers.command_records_contract import MAX_EVENTS, CommandRecordsContract
from tests.helpers.database import seed_database


class PostgresBackend:
    """A pool on the test's database; the records and the worker's unit of work share it."""

    def __init__(self, pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.records = PostgresCommandRecords(pool, MAX_EVENTS)
        self.worker_rules = RulesCache()

    async def seed(self, orders: list[dict]) -> None:
        await seed_database(self.database_url, orders)

    def unit_of_work(self) -> PostgresUnitOfWork:
        return PostgresUnitOfWork(self.pool, self.worker_rules)


class TestPostgresCommandRecords(CommandRecordsContract):
    """PostgresCommandRecords keeps the command-records contract."""

    @pytest.fixture
    def backend(self, database_pool, database_url):
        return PostgresBackend(database_pool, database_url)
