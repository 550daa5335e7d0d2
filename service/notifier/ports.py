"""The port the notifier records its deliveries through: Postgres in production
(`adapters/postgres/notifications.PostgresNotificationStore`), an in-memory fake in the tests
(`tests/helpers/fake_notifications.py`); both pass one contract suite
(`tests/helpers/notification_store_contract.py`)."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class NotificationStore(Protocol):
    """The records of sent notifications: one per (event id, recipient, attempt), status `sending`, `sent`
    or `failed` (`sending` is the claim taken just before DATA; see `notifier/delivery.py`)."""

    async def recorded_recipients(self, event_id: UUID) -> dict[str, str]:
        """Recipients with any record for the event -> the status of their latest attempt."""

    async def claim_first(self, event_id: UUID, recipient: str, status: str = "sending",
                          reason: str | None = None) -> int | None:
        """Attempt 1 unless the pair has any record already; None when it does (never send twice)."""

    async def claim_next(self, event_id: UUID, recipient: str, status: str = "sending",
                         reason: str | None = None) -> int:
        """The next attempt number for a deliberate resend."""

    async def finish(self, event_id: UUID, recipient: str, attempt: int, status: str, reason: str | None) -> None:
        """Record the server's answer on a claim."""

    async def note_in_doubt(self, event_id: UUID, recipient: str, attempt: int, reason: str) -> None:
        """Keep the claim and say why its outcome is unknown."""

    async def release(self, event_id: UUID, recipient: str, attempt: int) -> None:
        """Drop a claim still `sending` whose message the server certainly did not take."""
