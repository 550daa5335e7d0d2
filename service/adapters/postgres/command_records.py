"""The gateway's `CommandRecords` port (`service/gateway/ports.py`) over Postgres: idempotency keys
(`idempotency.bind`) and command outcomes (`views.command_outcome`). It passes
`tests/helpers/command_records_contract.py`."""

from __future__ import annotations

from service.adapters.postgres import idempotency
from service.adapters.postgres.views import command_outcome


class PostgresCommandRecords:
    """A connection per call from `pool`; `max_events` bounds the events one command may have (the entrypoint
    gives the worker's max_batch_items + 2; see `views.command_outcome`)."""

    def __init__(self, pool, max_events: int) -> None:
        self.pool = pool
        self.max_events = max_events

    async def bind_key(self, command_id: str, fingerprint: str) -> str:
        async with self.pool.acquire() as conn:
            return await idempotency.bind(conn, command_id, fingerprint)

    async def outcome(self, command_id: str) -> dict | None:
        async with self.pool.acquire() as conn:
            return await command_outcome(conn, command_id, self.max_events)
