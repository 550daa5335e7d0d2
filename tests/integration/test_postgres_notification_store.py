"""The notification-store contract against PostgresNotificationStore on the real (embedded) Postgres."""

from __future__ import annotations

import uuid

import pytest

from service.adapters.postgres.notifications import PostgresNotificationStore
from tests.helpers.database import seed_database
from tests.helpers.notification_store_contract import NotificationStoreContract, Records


class PostgresBackend:
    """The adapter over a pool on the test's database, and plain SQL on `sent_notifications` as the reader; orders
    are imported as `orders import` does, events written to the outbox as the worker writes them."""

    def __init__(self, pool, database_url: str) -> None:
        self.pool = pool
        self.database_url = database_url
        self.store = PostgresNotificationStore(pool)

    async def import_order(self, order_id: int, contacts: list[dict]) -> None:
        await seed_database(self.database_url, [{"order_id": order_id, "order_type": "SO", "contacts": contacts}])

    async def publish(self, event_id, payload: bytes) -> None:
        await self.pool.execute("INSERT INTO outbox (event_id, event_type, topic, payload) "
                                "VALUES ($1, 'OrderStatusChanged', 'events', $2)", event_id, payload)

    async def records(self) -> Records:
        rows = await self.pool.fetch("SELECT event_id, recipient, attempt, status, reason FROM sent_notifications")
        return {(uuid.UUID(str(r["event_id"])), r["recipient"], r["attempt"]): (r["status"], r["reason"])
                for r in rows}


class TestPostgresNotificationStore(NotificationStoreContract):
    """PostgresNotificationStore keeps the notification-store contract."""

    @pytest.fixture
    def backend(self, database_pool, database_url):
        return PostgresBackend(database_pool, database_url)
