"""The read-views contract against PostgresReadViews on the real (embedded) Postgres."""

from __future__ import annotations

import pytest

from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.adapters.postgres.views import PostgresReadViews
from service.domain.access import OPERATOR
from tests.helpers.database import seed_database
from tests.helpers.read_views_contract import NAMED_HOLD, ReadViewsContract, commit
from tests.helpers.unit_of_work_contract import FREE, ORDERS


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


async def test_the_actors_name_is_stored_in_the_history_row_and_old_rows_still_read(database_pool, database_url):
    """The history row's actor JSON holds the verified name when there is one (no column: `actor` is jsonb); a row
    written before names were kept (no `name` key, as a nameless change still writes) reads as it always did."""
    backend = PostgresBackend(database_pool, database_url)
    await backend.seed(ORDERS)
    await commit(backend, NAMED_HOLD)
    stored = await database_pool.fetchval("SELECT actor FROM order_history WHERE command_id = 'named-hold'")
    assert stored == {"id": "m-1", "role": "manager", "client_id": None, "name": "Mia"}
    old_row = {"id": "u-7", "role": "staff", "client_id": None}  # the shape every row had before
    await database_pool.execute("UPDATE order_history SET actor = $1 WHERE command_id = 'named-hold'",
                                old_row)
    [entry] = (await backend.views.history(FREE, OPERATOR))["history"]
    assert entry["actor"] == old_row and entry["command_id"] == "named-hold"
