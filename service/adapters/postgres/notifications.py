"""The notifier's Postgres side: recipients, the `sent_notifications` records, stored events.

A row per (event_id, recipient, attempt). Status `sending` is the claim taken just before DATA
(migration 0002); it becomes `sent` or `failed` once the server answered, or is deleted when the
server certainly did not take the message. A `sending` row that outlives its process marks an
email whose fate is unknown: it is never sent again automatically (at most once), and
`orderstatus notifications resend` sends it on purpose."""

from __future__ import annotations

from uuid import UUID

import asyncpg

from service.adapters.postgres.orders import fetch_contacts
from service.adapters.postgres.outbox_events import stored_event
from service.domain.model import Recipient
from service.domain.notifications import FAILED, SENDING, SENT  # noqa: F401 (callers of the functions name them here)


async def recipients(pool: asyncpg.Pool, order_id: int) -> list[Recipient]:
    """The order's client contacts and stakeholders, as they are now."""
    async with pool.acquire() as conn:
        rows = await fetch_contacts(conn, order_id)
    return [Recipient(email=r["email"], name=r["name"], kind=r["kind"]) for r in rows]


async def recorded_recipients(pool: asyncpg.Pool, event_id: UUID) -> dict[str, str]:
    """Recipients that already have any record for the event, with the status of their latest attempt
    (`sending` means in doubt: claimed, and the server's answer never recorded)."""
    rows = await pool.fetch(
        "SELECT DISTINCT ON (recipient) recipient, status FROM sent_notifications WHERE event_id = $1 "
        "ORDER BY recipient, attempt DESC",
        event_id,
    )
    return {r["recipient"]: r["status"] for r in rows}


async def claim_first(pool: asyncpg.Pool, event_id: UUID, recipient: str, status: str = SENDING,
                      reason: str | None = None) -> int | None:
    """Take attempt 1 unless the pair has any record already; None when it does (never send twice).

    The primary key makes this race-free between notifiers that both think they own the event."""
    return await pool.fetchval(
        """
        INSERT INTO sent_notifications (event_id, recipient, attempt, status, reason)
        SELECT $1, $2, 1, $3, $4
         WHERE NOT EXISTS (SELECT 1 FROM sent_notifications WHERE event_id = $1 AND recipient = $2)
        ON CONFLICT DO NOTHING
        RETURNING attempt
        """,
        event_id, recipient, status, reason,
    )


async def claim_next(pool: asyncpg.Pool, event_id: UUID, recipient: str, status: str = SENDING,
                     reason: str | None = None) -> int:
    """Take the next attempt number for a deliberate resend."""
    for _ in range(20):  # only a concurrent resend of the same pair can take our number
        attempt = await pool.fetchval(
            """
            INSERT INTO sent_notifications (event_id, recipient, attempt, status, reason)
            SELECT $1, $2, COALESCE(MAX(attempt), 0) + 1, $3, $4
              FROM sent_notifications WHERE event_id = $1 AND recipient = $2
            ON CONFLICT DO NOTHING
            RETURNING attempt
            """,
            event_id, recipient, status, reason,
        )
        if attempt is not None:
            return attempt
    raise RuntimeError(f"could not take a new attempt number for {event_id} / {recipient}")


async def finish(pool: asyncpg.Pool, event_id: UUID, recipient: str, attempt: int, status: str,
                 reason: str | None) -> None:
    """Record the server's answer on a claim."""
    await pool.execute(
        """
        UPDATE sent_notifications SET status = $4, reason = $5, sent_at = now()
         WHERE event_id = $1 AND recipient = $2 AND attempt = $3
        """,
        event_id, recipient, attempt, status, reason,
    )


async def note_in_doubt(pool: asyncpg.Pool, event_id: UUID, recipient: str, attempt: int, reason: str) -> None:
    """Keep the claim (so nothing resends it by itself) and say why its outcome is unknown."""
    await pool.execute(
        "UPDATE sent_notifications SET reason = $4 WHERE event_id = $1 AND recipient = $2 AND attempt = $3",
        event_id, recipient, attempt, reason,
    )


async def release(pool: asyncpg.Pool, event_id: UUID, recipient: str, attempt: int) -> None:
    """Drop a claim whose message the server certainly did not take, so a retry may claim it again."""
    await pool.execute(
        "DELETE FROM sent_notifications WHERE event_id = $1 AND recipient = $2 AND attempt = $3 AND status = $4",
        event_id, recipient, attempt, SENDING,
    )


class PostgresNotificationStore:
    """The functions above over one pool, as the notifier's `NotificationStore` port
    (`service/notifier/ports.py`); it passes `tests/helpers/notification_store_contract.py`."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def recipients(self, order_id: int) -> list[Recipient]:
        return await recipients(self.pool, order_id)

    async def stored_event(self, event_id: UUID) -> bytes | None:
        payload = await stored_event(self.pool, event_id)
        return None if payload is None else bytes(payload)

    async def recorded_recipients(self, event_id: UUID) -> dict[str, str]:
        return await recorded_recipients(self.pool, event_id)

    async def claim_first(self, event_id: UUID, recipient: str, status: str = SENDING,
                          reason: str | None = None) -> int | None:
        return await claim_first(self.pool, event_id, recipient, status, reason)

    async def claim_next(self, event_id: UUID, recipient: str, status: str = SENDING,
                         reason: str | None = None) -> int:
        return await claim_next(self.pool, event_id, recipient, status, reason)

    async def finish(self, event_id: UUID, recipient: str, attempt: int, status: str, reason: str | None) -> None:
        await finish(self.pool, event_id, recipient, attempt, status, reason)

    async def note_in_doubt(self, event_id: UUID, recipient: str, attempt: int, reason: str) -> None:
        await note_in_doubt(self.pool, event_id, recipient, attempt, reason)

    async def release(self, event_id: UUID, recipient: str, attempt: int) -> None:
        await release(self.pool, event_id, recipient, attempt)
