"""An in-memory notification store (the notifier's `NotificationStore` port, `service/notifier/ports.py`).

It passes the same contract suite as the Postgres adapter (`tests/helpers/notification_store_contract.py`,
run by `tests/unit/test_fake_notification_store.py`), in the manner of eventsourcing's per-backend test case."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from service.domain.model import Recipient
from service.domain.notifications import SENDING


@dataclass
class Record:
    """One row of `sent_notifications`."""

    status: str
    reason: str | None


class FakeNotificationStore:
    """Records keyed by (event id, recipient, attempt), as the table's primary key is; the orders' contacts and
    the stored events it reads are set by the test (`add_contacts`, `events`)."""

    def __init__(self) -> None:
        self.records: dict[tuple[UUID, str, int], Record] = {}
        self.contacts: dict[int, dict[str, Recipient]] = {}  # order id -> address -> contact, as order_contacts
        self.events: dict[UUID, bytes] = {}  # event id -> the JSON the worker published, as the outbox keeps it

    def add_contacts(self, order_id: int, contacts: list[dict]) -> None:
        """An order's contacts in the orders-file shape (DESIGN §5.2), replacing its earlier ones as an import does:
        one per address, the last one winning."""
        self.contacts[order_id] = {c["email"]: Recipient(email=c["email"], name=c.get("name"),
                                                         kind=c.get("kind", "client")) for c in contacts}

    async def recipients(self, order_id: int) -> list[Recipient]:
        return sorted(self.contacts.get(order_id, {}).values(), key=lambda r: (r.kind, r.email))

    async def stored_event(self, event_id: UUID) -> bytes | None:
        return self.events.get(event_id)

    def _attempts(self, event_id: UUID, recipient: str) -> list[int]:
        return sorted(a for (e, r, a) in self.records if e == event_id and r == recipient)

    async def recorded_recipients(self, event_id: UUID) -> dict[str, str]:
        latest: dict[str, int] = {}
        for (e, recipient, attempt) in self.records:
            if e == event_id:
                latest[recipient] = max(attempt, latest.get(recipient, 0))
        return {recipient: self.records[event_id, recipient, attempt].status for recipient, attempt in latest.items()}

    async def claim_first(self, event_id: UUID, recipient: str, status: str = SENDING,
                          reason: str | None = None) -> int | None:
        if self._attempts(event_id, recipient):
            return None
        self.records[event_id, recipient, 1] = Record(status, reason)
        return 1

    async def claim_next(self, event_id: UUID, recipient: str, status: str = SENDING,
                         reason: str | None = None) -> int:
        attempt = max(self._attempts(event_id, recipient), default=0) + 1
        self.records[event_id, recipient, attempt] = Record(status, reason)
        return attempt

    async def finish(self, event_id: UUID, recipient: str, attempt: int, status: str, reason: str | None) -> None:
        record = self.records.get((event_id, recipient, attempt))
        if record is not None:
            record.status, record.reason = status, reason

    async def note_in_doubt(self, event_id: UUID, recipient: str, attempt: int, reason: str) -> None:
        record = self.records.get((event_id, recipient, attempt))
        if record is not None:
            record.reason = reason

    async def release(self, event_id: UUID, recipient: str, attempt: int) -> None:
        record = self.records.get((event_id, recipient, attempt))
        if record is not None and record.status == SENDING:
            del self.records[event_id, recipient, attempt]
