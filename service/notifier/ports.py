"""The notifier's ports, each with a fake in the tests and one contract suite the fake and the real adapter both
pass (eventsourcing's per-backend test case):

* `NotificationStore`, the records of its deliveries: Postgres in production
  (`adapters/postgres/notifications.PostgresNotificationStore`), `tests/helpers/fake_notifications.py` in the
  tests; contract `tests/helpers/notification_store_contract.py`.
* `MailTransport`, the SMTP server in two stages: aiosmtplib in production (`adapters/smtp.Mailer`),
  `tests/helpers/fake_mailer.py` in the tests; contract `tests/helpers/mailer_contract.py`."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID

from service.domain.model import Recipient


class NotificationStore(Protocol):
    """What the notifier keeps and reads: the records of sent notifications, one per (event id, recipient,
    attempt), status `sending`, `sent` or `failed` (`service.domain.notifications`; `sending` is the claim taken
    just before DATA, see `notifier/delivery.py`); an order's recipients; a stored event to resend."""

    async def recipients(self, order_id: int) -> list[Recipient]:
        """The order's contacts as they are now, one per address, clients before stakeholders, then by address."""

    async def stored_event(self, event_id: UUID) -> bytes | None:
        """The exact JSON of the event as the worker published it (None: no such event); a resend reads it."""

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


class MailTransport(Protocol):
    """One recipient's message in the two stages delivery needs (`notifier/delivery.py`): `open_envelope`
    cannot deliver anything, `send_data` is where the server may accept the message.

    Failures are `adapters.smtp`'s: Refused (5xx, for good), SmtpUnavailable (certainly not accepted; its
    RecipientDeferred is a 4xx about one address), OutcomeUnknown (the message may or may not have arrived)."""

    async def open_envelope(self, recipient: str) -> None:
        """MAIL FROM and RCPT TO for one recipient."""

    async def send_data(self, content: bytes) -> str:
        """DATA for the open envelope; returns the server's acceptance reply."""

    async def reset(self) -> None:
        """Abandon the open envelope, keeping the connection when it still works."""

    async def close(self) -> None:
        """End the connection politely; the next envelope opens a new one."""
