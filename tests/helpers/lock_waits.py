"""What Postgres shows while a session waits on a lock: the probe that replaces "sleep, then assert the task
is not done" (which also passes when the task has simply not run yet)."""

from __future__ import annotations

from tests.helpers.waiting import wait_until

_WAITING = """
SELECT count(*) FROM pg_stat_activity
WHERE datname = current_database() AND wait_event_type = 'Lock' AND query ILIKE $1
"""


async def lock_waits(pool, query_like: str = "%") -> int:
    """How many sessions of this database wait on a lock while running a statement like `query_like`."""
    return await pool.fetchval(_WAITING, query_like)


async def wait_for_lock_wait(pool, query_like: str = "%", what: str = "a session waiting on a lock",
                             timeout: float = 10.0) -> int:
    """Wait until a session of this database (each test has its own) waits on a lock in a statement like
    `query_like`; fail at the deadline."""
    return await wait_until(lambda: lock_waits(pool, query_like), timeout, what)
