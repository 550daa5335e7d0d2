"""Postgres failover (issue 24) on a real primary and streaming standby (tests/helpers/postgres_standby.py):
the service follows the promoted standby through a multi-host URL, never writes to a demoted primary, and
loses no command."""

from __future__ import annotations

import asyncpg
import pytest

from service.adapters.postgres.connection import connect, create_pool, writable_server
from service.devkit.embedded import scratch_dir
from service.runtime.faults import is_outage
from tests.helpers.postgres_standby import ReplicatedPostgres
from tests.helpers.waiting import wait_until


@pytest.fixture
def synchronous_pair():
    pair = ReplicatedPostgres(scratch_dir("orderstatus-test-standby-"), synchronous=True).start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def asynchronous_pair():
    pair = ReplicatedPostgres(scratch_dir("orderstatus-test-standby-"), synchronous=False).start()
    try:
        yield pair
    finally:
        pair.stop()


def _server(port: int) -> str:
    return f"127.0.0.1:{port}"


class TestFollowingThePrimary:
    async def test_pool_connects_to_the_writable_host_and_follows_the_promoted_standby(self, synchronous_pair):
        """With both hosts and target_session_attrs=read-write the pool writes to the primary, and after a
        kill -9 and a promotion to the standby, whichever host is listed first."""
        pair = synchronous_pair
        pool = await create_pool(pair.url, size=2)
        try:
            async with pool.acquire() as conn:
                assert await writable_server(conn) == _server(pair.primary.port)
            pair.kill_primary()
            pair.promote()

            async def on_new_primary() -> bool:
                try:
                    async with pool.acquire() as conn:
                        return await writable_server(conn) == _server(pair.standby.port)
                except Exception as exc:
                    assert is_outage(exc), repr(exc)  # what the service waits out, never a crash
                    return False

            await wait_until(on_new_primary, 30, "the pool on the promoted standby")
        finally:
            await pool.close()

    async def test_a_connection_left_on_a_fenced_old_primary_cannot_commit(self, synchronous_pair):
        """The standby is promoted while the old primary still runs and is then fenced: a connection opened
        to the old primary before has its write refused (an outage, retried), is dropped, and the pool's next
        connection is the new primary; the refused row is nowhere."""
        pair = synchronous_pair
        pool = await create_pool(pair.url, size=1)
        try:
            async with pool.acquire() as conn:
                await conn.execute("CREATE TABLE fence_probe (x int)")
            old = await pool.acquire()
            assert await writable_server(old) == _server(pair.primary.port)
            pair.promote()
            pair.fence_primary()
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError) as refused:
                await old.execute("INSERT INTO fence_probe VALUES (1)")
            assert is_outage(refused.value)

            async def dropped() -> bool:
                try:
                    await old.fetchval("SELECT 1")
                    return False
                except (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError):
                    return True

            await wait_until(dropped, 5, "the connection to the fenced primary dropped")
            async with pool.acquire() as conn:
                assert await writable_server(conn) == _server(pair.standby.port)
            for url in (pair.primary_url, pair.standby_url):
                reader = await connect(url)
                try:
                    assert await reader.fetchval("SELECT count(*) FROM fence_probe") == 0
                finally:
                    await reader.close()
        finally:
            await pool.close()

    async def test_readiness_probe_refuses_a_standby(self, synchronous_pair):
        """`writable_server` (the readiness probe) names the primary and refuses a connection to a standby."""
        pair = synchronous_pair
        conn = await connect(pair.standby_url)
        try:
            with pytest.raises(asyncpg.exceptions.InternalClientError, match="does not accept writes"):
                await writable_server(conn)
        finally:
            await conn.close()
        conn = await connect(pair.primary_url)
        try:
            assert await writable_server(conn) == _server(pair.primary.port)
        finally:
            await conn.close()
