"""The gateway's port to what is recorded about its commands: the idempotency keys it binds and the outcomes the
worker recorded. Postgres in production (`adapters/postgres/command_records.PostgresCommandRecords`), an in-memory
fake over the fake database in the tests (`tests/helpers/fake_command_records.py`); both pass one contract suite
(`tests/helpers/command_records_contract.py`), eventsourcing's per-backend test case.

Why not on `ReadViews` (`service.domain.read_views`): these are the gateway's own request-reply records — the
processed-command record, its outbox events found by their deterministic ids, a key's first fingerprint — not
an order view; only the gateway asks for them, and how many events a command may have is the worker's batch
limit, which the adapter is built with."""

from __future__ import annotations

from typing import Protocol


class CommandRecords(Protocol):
    async def bind_key(self, command_id: str, fingerprint: str) -> str:
        """The fingerprint the key (as its derived command id) is bound to, once and for good: `fingerprint` when
        this request is the first, else the first request's (a concurrent first binding wins for both)."""

    async def outcome(self, command_id: str) -> dict | None:
        """What became of a command: {command_id, command_type, outcome, processed_at (ISO-8601), events (its
        outcome events as published, in the order written)}; None while no worker has recorded it."""
