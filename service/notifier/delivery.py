"""Deliver one email to one recipient at most once: claim the record, then send.

The crash window is between the server accepting a message and our record of it. We close it on
the "at most once" side (DESIGN §7.2), and keep it as narrow as SMTP allows:

1. open the envelope (connect, MAIL FROM, RCPT TO): nothing can be delivered yet, so any failure
   here is retried freely; a 5xx RCPT reply is recorded as `failed` straight away;
2. claim the (event_id, recipient) record as `sending` in the `NotificationStore` (Postgres in production),
   committed;
3. DATA; then mark the row `sent` (or `failed` with a 5xx reply), or delete the claim when the
   server certainly refused to take it (4xx), so the retry can claim it again.

A crash, or a connection lost during DATA, leaves a `sending` row: the email may or may not have
gone out, and it is never sent again by itself. Such rows are few (the window is one DATA round
trip), visible (`status = 'sending'`, indexed) and an operator resends them on purpose with
`orderstatus notifications resend EVENT_ID`. Sending first and recording after would instead
turn every crash in the window into a duplicate email, which the contract forbids."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, TypeVar
from uuid import UUID

from service.adapters.smtp import OutcomeUnknown, Refused, SmtpUnavailable
from service.domain.notifications import FAILED, SENT
from service.notifier.ports import MailTransport, NotificationStore

T = TypeVar("T")
# runs one database write under the caller's outage policy (retry forever in the daemon, briefly in the CLI)
Persist = Callable[[Callable[[], Awaitable[T]]], Awaitable[T]]

DeliveryOutcome = Literal["sent", "failed", "in_doubt", "duplicate"]


@dataclass(frozen=True)
class Delivery:
    recipient: str
    outcome: DeliveryOutcome
    attempt: int | None = None
    detail: str | None = None


async def deliver(
    store: NotificationStore,
    mailer: MailTransport,
    persist: Persist,
    event_id: UUID,
    recipient: str,
    message: EmailMessage,
    *,
    on_purpose: bool = False,
) -> Delivery:
    """Send `message` to `recipient` unless the pair is recorded already (or always, `on_purpose`).

    Raises SmtpUnavailable or a database outage when nothing was sent, so the caller may retry."""
    claim = store.claim_next if on_purpose else store.claim_first
    content = message.as_bytes()  # the message's SMTP policy gives CRLF line ends

    try:
        await mailer.open_envelope(recipient)
    except Refused as refused:
        refusal = refused.reply  # bound outside the except name, which Python unbinds at the block's end
        attempt = await persist(lambda: claim(event_id, recipient, FAILED, refusal))
        return Delivery(recipient, "failed" if attempt else "duplicate", attempt, refusal)

    try:
        attempt = await claim(event_id, recipient)
    except BaseException:
        await mailer.reset()  # nothing sent; the caller retries the whole delivery
        raise
    if attempt is None:
        await mailer.reset()
        return Delivery(recipient, "duplicate")

    try:
        reply = await mailer.send_data(content)
    except Refused as refused:
        refusal = refused.reply
        await persist(lambda: store.finish(event_id, recipient, attempt, FAILED, refusal))
        return Delivery(recipient, "failed", attempt, refusal)
    except SmtpUnavailable:
        await persist(lambda: store.release(event_id, recipient, attempt))
        raise
    except OutcomeUnknown as unknown:
        reason = f"outcome unknown: {unknown}"
        await persist(lambda: store.note_in_doubt(event_id, recipient, attempt, reason))
        return Delivery(recipient, "in_doubt", attempt, reason)
    await persist(lambda: store.finish(event_id, recipient, attempt, SENT, reply))
    return Delivery(recipient, "sent", attempt, reply)
