"""The notification-store contract against PostgresNotificationStore on the real (embedded) Postgres."""

from __future__ import annotations

import uuid

import pytest

from service.adapters.postgres.notifications import PostgresNotificationStore
from tests.helpers.notification_store_contract import NotificationStoreContract, Records


class PostgresBackend:
    """The adapter over a pool on the test's database, and plain SQL on `sent_notifications` as the reader."""

    def __init__(self, pool) -> None:
        self.pool = pool
        self.store = PostgresNotificationStore(pool)

    async def records(self) -> Records:
        rows = await self.pool.fetch("SELECT event_id, recipient, attempt, status, reason FROM sent_notifications")
        return {(uuid.UUID(str(r["event_id"])), r["recipient"], r["attempt"]): (r["status"], r["reason"])
                for r in rows}


class TestPostgresNotificationStore(NotificationStoreContract):
    """PostgresNotificationStore keeps the notification-store contract."""

    @pytest.fixture
    def backend(self, database_pool):
        return PostgresBackend(database_pool)
