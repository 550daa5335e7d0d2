"""The notification-store contract against the in-memory fake (no services)."""

from __future__ import annotations

import pytest

from tests.helpers.fake_notifications import FakeNotificationStore
from tests.helpers.notification_store_contract import NotificationStoreContract, Records


class FakeBackend:
    """The fake's records seen through the contract's reader."""

    def __init__(self) -> None:
        self.store = FakeNotificationStore()

    async def records(self) -> Records:
        return {key: (record.status, record.reason) for key, record in self.store.records.items()}

    async def import_order(self, order_id: int, contacts: list[dict]) -> None:
        self.store.add_contacts(order_id, contacts)

    async def publish(self, event_id, payload: bytes) -> None:
        self.store.events[event_id] = payload


class TestFakeNotificationStore(NotificationStoreContract):
    """FakeNotificationStore keeps the notification-store contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
