"""The one rules cache (adapters/postgres/rules.RulesCache) on a real Postgres: read again only when the version
moved, for units of work (share-locked) and readers (no lock) alike."""

from __future__ import annotations

import asyncpg
import pytest

from service.adapters.postgres.connection import connect
from service.adapters.postgres.rules import RulesCache, replace_rules
from service.domain.model import RuleSet, Status, Transition

DRAFT = Status(1, "Draft", "Draft", frozenset({"SO"}), initial=True)
CONFIRMED = Status(2, "Confirmed", "Confirmed", frozenset({"SO"}))
ON_HOLD = Status(3, "OnHold", "On hold", frozenset({"SO"}))
FIRST = RuleSet(statuses=(DRAFT, CONFIRMED), transitions=(Transition("SO", 1, 2, frozenset({"staff"})),),
                override_roles=frozenset({"manager"}))
SECOND = RuleSet(statuses=(DRAFT, CONFIRMED, ON_HOLD), transitions=(Transition("SO", 2, 3, frozenset({"staff"})),),
                 override_roles=frozenset({"manager"}))


@pytest.fixture
async def conn(database_url):
    connection = await connect(database_url)
    yield connection
    await connection.close()


class TestReadAgainOnlyWhenTheVersionMoved:
    async def test_no_rules_is_none(self, conn):
        """Before any `rules load` both a reader and a unit of work get None."""
        cache = RulesCache()
        assert await cache.read(conn) is None
        async with conn.transaction():
            assert await cache.get(conn) is None

    async def test_a_reader_keeps_the_set_while_the_version_stays(self, conn):
        """Two reads under one version return the very same rule set (not read again)."""
        await replace_rules(conn, FIRST)
        cache = RulesCache()
        first = await cache.read(conn)
        assert first is not None and {s.code for s in first.statuses} == {"Draft", "Confirmed"}
        assert await cache.read(conn) is first

    async def test_a_new_version_is_read_at_once(self, conn):
        """After another `rules load` the next read has the new statuses and transitions."""
        cache = RulesCache()
        await replace_rules(conn, FIRST)
        before = await cache.read(conn)
        version = await replace_rules(conn, SECOND)
        after = await cache.read(conn)
        assert after.version == version == before.version + 1
        assert {s.code for s in after.statuses} == {"Draft", "Confirmed", "OnHold"}
        assert [(t.from_id, t.to_id) for t in after.transitions] == [(2, 3)]

    async def test_units_of_work_and_readers_share_one_set(self, conn):
        """The worker's `get` and a reader's `read` on one cache give one rule set for one version."""
        await replace_rules(conn, FIRST)
        cache = RulesCache()
        async with conn.transaction():
            worker = await cache.get(conn)
        assert await cache.read(conn) is worker


class TestLocks:
    async def _swap_waits(self, database_url, hold) -> bool:
        """Whether a `rules load` waits for a transaction that has called `hold(cache, conn)`."""
        holder, loader = await connect(database_url), await connect(database_url)
        try:
            await replace_rules(holder, FIRST)
            cache = RulesCache()
            async with holder.transaction():
                await hold(cache, holder)
                await loader.execute("SET lock_timeout = '300ms'")
                try:
                    await replace_rules(loader, SECOND)
                except asyncpg.exceptions.LockNotAvailableError:
                    return True
                return False
        finally:
            await holder.close()
            await loader.close()

    async def test_a_unit_of_work_holds_a_swap_back(self, database_url):
        """`get` share-locks the version: a concurrent `rules load` waits (the control of the next test)."""
        assert await self._swap_waits(database_url, lambda cache, conn: cache.get(conn))

    async def test_a_reader_never_holds_a_swap_back(self, database_url):
        """`read` takes no lock (the gateway's role may only SELECT): a `rules load` goes through."""
        assert not await self._swap_waits(database_url, lambda cache, conn: cache.read(conn))
