"""The redrive take-over of `PostgresUnitOfWork` on the real Postgres: only a record whose outcome is
`invalid:*` is taken over, it stays invisible until commit, and two transactions racing for the same record
never both get it."""

from __future__ import annotations

import asyncio

import pytest

from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from tests.helpers.lock_waits import wait_for_lock_wait


@pytest.fixture
async def pool(database_url):
    pool = await create_pool(database_url)
    await pool.execute(
        "INSERT INTO processed_commands (command_id, command_type, outcome, source) VALUES "
        "('was-invalid', 'invalid', 'invalid:validation_failed', 'cmd:0:1'), "
        "('was-applied', 'ChangeOrderStatus', 'applied', 'cmd:0:2'), "
        "('was-rejected', 'ChangeOrderStatus', 'rejected:no_change', 'cmd:0:3')")
    yield pool
    await pool.close()


def uow(pool) -> PostgresUnitOfWork:
    return PostgresUnitOfWork(pool, RulesCache())


async def outcome(pool, command_id: str) -> tuple[str, str, str]:
    row = await pool.fetchrow("SELECT command_type, outcome, source FROM processed_commands WHERE command_id = $1",
                              command_id)
    return tuple(row) if row else None


async def test_only_an_invalid_record_is_taken_over_and_only_on_commit(pool):
    """applied, rejected and unknown ids are left alone; the invalid one becomes the command's, visibly only
    after the commit, with the new outcome."""
    async with uow(pool) as work:
        taken = await work.take_over_invalid([(i, "OverrideOrderStatuses", "cmd:1:9")
                                              for i in ("was-invalid", "was-applied", "was-rejected", "never-seen")])
        assert taken == {"was-invalid"}
        assert await outcome(pool, "was-invalid") == ("invalid", "invalid:validation_failed", "cmd:0:1")
        work.add("was-invalid", "applied", [], [])
        await work.commit()
    assert await outcome(pool, "was-invalid") == ("OverrideOrderStatuses", "applied", "cmd:1:9")
    assert await outcome(pool, "never-seen") is None
    async with uow(pool) as work:  # decided now: no second take-over
        assert await work.take_over_invalid([("was-invalid", "OverrideOrderStatuses", "cmd:1:10")]) == set()


async def test_a_rolled_back_take_over_leaves_the_record_invalid(pool):
    """A redrive whose transaction fails takes nothing over."""
    with pytest.raises(RuntimeError):
        async with uow(pool) as work:
            assert await work.take_over_invalid([("was-invalid", "ChangeOrderStatus", "cmd:1:9")]) == {"was-invalid"}
            raise RuntimeError("the batch failed")
    assert await outcome(pool, "was-invalid") == ("invalid", "invalid:validation_failed", "cmd:0:1")


@pytest.mark.parametrize("first_commits, second_gets", [(True, set()), (False, {"was-invalid"})])
async def test_two_racing_take_overs_never_both_win(pool, first_commits, second_gets):
    """The second waits for the first: after its commit the record is decided (nothing to take), after its
    rollback the record is still invalid (the second takes it)."""
    first = await uow(pool).__aenter__()
    try:
        assert await first.take_over_invalid([("was-invalid", "ChangeOrderStatus", "cmd:1:9")]) == {"was-invalid"}
        second = uow(pool)
        async with second:
            racing = asyncio.create_task(second.take_over_invalid([("was-invalid", "ChangeOrderStatus", "cmd:2:4")]))
            await wait_for_lock_wait(pool, what="the second take-over waiting on the first one's row lock")
            assert not racing.done()
            if first_commits:
                first.add("was-invalid", "applied", [], [])
                await first.commit()
                await first.__aexit__(None, None, None)
            else:
                await first.__aexit__(RuntimeError, RuntimeError("failed"), None)
            first = None
            assert await asyncio.wait_for(racing, 10) == second_gets
    finally:
        if first is not None:
            await first.__aexit__(RuntimeError, RuntimeError("test failed"), None)
