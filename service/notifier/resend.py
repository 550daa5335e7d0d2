"""`orderstatus notifications resend EVENT_ID`: send an event's emails again, on purpose.

The event is read byte for byte from the worker's outbox; each recipient gets a new attempt row
(attempt = previous + 1), so the consumer's "at most once" records stay true and the history shows
every deliberate resend."""

from __future__ import annotations

import json
from collections.abc import Callable
from uuid import UUID

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from service.adapters.database import create_pool
from service.faults import is_outage
from service.messages import OrderStatusChanged
from service.notifier import store
from service.notifier.delivery import Delivery, deliver
from service.notifier.email_render import InvalidRecipient, render_email
from service.notifier.mailer import Mailer, SmtpUnavailable
from service.notifier.parse import Unparseable, parse_notifiable
from service.settings import Settings


class ResendError(Exception):
    """Why nothing (more) can be resent, in one line for the operator."""


async def _persist_briefly(write):
    # an operator is waiting: ride out a short Postgres blip, then report instead of hanging
    async for attempt in AsyncRetrying(retry=retry_if_exception(is_outage), stop=stop_after_attempt(5),
                                       wait=wait_exponential_jitter(initial=0.2, max=2), reraise=True):
        with attempt:
            return await write()


def _event_or_error(event_id: UUID, payload: bytes | None) -> OrderStatusChanged:
    if payload is None:
        raise ResendError(f"event {event_id} not found in the outbox")
    try:
        event = parse_notifiable(payload)
    except Unparseable as exc:
        raise ResendError(f"event {event_id} cannot be read: {exc}") from None
    if event is None:
        kind = json.loads(payload).get("type")
        raise ResendError(f"event {event_id} is an {kind}; only OrderStatusChanged events send emails")
    if not event.notify:
        raise ResendError(f"event {event_id} has notify: false, so it has no emails to send")
    return event


async def resend(settings: Settings, event_id: str,
                 report: Callable[[Delivery], None] = lambda _: None) -> list[Delivery]:
    """Send the event's emails once more to its current recipients; `report` sees each result as it happens."""
    try:
        eid = UUID(event_id)
    except ValueError:
        raise ResendError(f"{event_id!r} is not an event id (a UUID)") from None
    pool = await create_pool(settings.database_url, size=2)
    mailer = Mailer(settings)
    results: list[Delivery] = []
    try:
        event = _event_or_error(eid, await store.stored_event(pool, eid))
        recipients = await store.recipients(pool, event.order_id)
        for recipient in recipients:
            try:
                message = render_email(event, recipient, settings.mail_from)
            except InvalidRecipient as exc:
                attempt = await store.claim_next(pool, eid, recipient.email, store.FAILED, str(exc))
                result = Delivery(recipient.email, "failed", attempt, str(exc))
            else:
                try:
                    result = await deliver(pool, mailer, _persist_briefly, eid, recipient.email, message,
                                           on_purpose=True)
                except SmtpUnavailable as exc:
                    raise ResendError(f"SMTP unavailable after {len(results)} of {len(recipients)} emails: {exc}") from None
            results.append(result)
            report(result)
        return results
    finally:
        await mailer.close()
        await pool.close()
