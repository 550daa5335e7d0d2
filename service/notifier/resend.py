"""`orderstatus notifications resend EVENT_ID`: send an event's emails again, on purpose.

The event is read byte for byte from the worker's outbox; each recipient gets a new attempt row
(attempt = previous + 1), so the consumer's "at most once" records stay true and the history shows
every deliberate resend. It lives beside the notifier because it is the same delivery protocol
(the operator tools in `service.ops` may not import the notifier)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from service.adapters.smtp import SmtpUnavailable
from service.contract.events import Unparseable, event_type_of, parse_status_changed
from service.domain.events import StatusChanged
from service.domain.notifications import FAILED
from service.notifier.delivery import Delivery, deliver
from service.notifier.ports import MailTransport, NotificationStore
from service.notifier.rendering import InvalidRecipient, render_email
from service.runtime.retry import outage_retrying


class ResendError(Exception):
    """Why nothing (more) can be resent, in one line for the operator."""


async def _persist_briefly(write):
    # an operator is waiting: ride out a short Postgres blip, then report instead of hanging
    async for attempt in outage_retrying(0.2, 2.0, attempts=5):
        with attempt:
            return await write()


def _event_or_error(event_id: UUID, payload: bytes | None) -> StatusChanged:
    if payload is None:
        raise ResendError(f"event {event_id} not found in the outbox")
    try:
        event = parse_status_changed(payload)
    except Unparseable as exc:
        raise ResendError(f"event {event_id} cannot be read: {exc}") from None
    if event is None:
        raise ResendError(f"event {event_id} is an {event_type_of(payload)}; only OrderStatusChanged events send emails")
    if not event.notify:
        raise ResendError(f"event {event_id} has notify: false, so it has no emails to send")
    return event


def parse_event_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise ResendError(f"{text!r} is not an event id (a UUID)") from None


async def resend(store: NotificationStore, mailer: MailTransport, mail_from: str, event_id: UUID,
                 report: Callable[[Delivery], None] = lambda _: None) -> list[Delivery]:
    """Send the event's emails once more to its current recipients; `report` sees each result as it happens."""
    results: list[Delivery] = []
    event = _event_or_error(event_id, await store.stored_event(event_id))
    recipients = await store.recipients(event.order_id)
    for recipient in recipients:
        try:
            message = render_email(event, recipient, mail_from)
        except InvalidRecipient as exc:
            attempt = await store.claim_next(event_id, recipient.email, FAILED, str(exc))
            result = Delivery(recipient.email, "failed", attempt, str(exc))
        else:
            try:
                result = await deliver(store, mailer, _persist_briefly, event_id, recipient.email, message,
                                       on_purpose=True)
            except SmtpUnavailable as exc:
                raise ResendError(f"SMTP unavailable after {len(results)} of {len(recipients)} emails: {exc}") from None
        results.append(result)
        report(result)
    return results
