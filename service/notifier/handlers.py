"""The notifier's handler: one OrderStatusChanged event to its emails (DESIGN §1, R10, §7.2).

Every recipient without a record yet gets one email (claim-then-send, at most once, see
delivery.py); records are durable before the event's offset is committed, so a replayed topic
sends nothing twice. Anything that is not a notifiable event (rejections, batch summaries,
notify: false, garbage) is passed over without an email."""

from __future__ import annotations

import structlog

from service.adapters.smtp import RecipientDeferred
from service.contract.events import Unparseable, parse_status_changed
from service.domain.events import StatusChanged
from service.domain.notifications import FAILED, SENDING
from service.notifier.delivery import Delivery, deliver
from service.notifier.ports import MailTransport, NotificationStore
from service.notifier.rendering import InvalidRecipient, render_email
from service.runtime import tracing
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.runtime.tracing import traceparent_of

log = structlog.get_logger("orderstatus.notifier")

# how many times a recipient's 4xx at RCPT TO is retried before it is recorded failed (deferred) and skipped
RECIPIENT_DEFERRALS = 5


class EventHandler:
    def __init__(self, store: NotificationStore, mailer: MailTransport, mail_from: str, metrics: Metrics,
                 retry: OutageRetry, max_message_bytes: int = 1_048_576) -> None:
        self.store = store
        self.max_message_bytes = max_message_bytes
        self.mailer = mailer
        self.mail_from = mail_from
        self.metrics = metrics
        self.retry = retry
        self._deferrals: dict[tuple, int] = {}  # (event_id, recipient) -> 4xx answers to RCPT TO so far

    async def _persist(self, write):
        # a record after SMTP answered must not be lost to a Postgres blip: retry it, not the send
        async for attempt in self.retry("postgres"):
            with attempt:
                return await write()

    async def _deliver(self, event_id, recipient: str, message):
        """`deliver`, with a recipient's 4xx at RCPT TO retried (the event comes by again under the outage
        backoff) at most RECIPIENT_DEFERRALS times; then recorded failed ("deferred …") and counted, so one
        address whose server keeps saying "later" never stops the other emails."""
        key = (event_id, recipient)
        try:
            result = await deliver(self.store, self.mailer, self._persist, event_id, recipient, message)
        except RecipientDeferred as deferred:
            tries = self._deferrals.pop(key, 0) + 1
            if tries < RECIPIENT_DEFERRALS:
                if len(self._deferrals) >= 10_000:  # bounded memory whatever the mail servers answer
                    self._deferrals.pop(next(iter(self._deferrals)))
                self._deferrals[key] = tries
                raise
            reason = f"deferred: {deferred} (gave up after {tries} tries)"
            attempt = await self._persist(lambda: self.store.claim_first(event_id, recipient, FAILED, reason))
            log.warning("email deferred too often; recorded failed", recipient=recipient, reply=str(deferred),
                        tries=tries, resend=f"orderstatus notifications resend {event_id}")
            return Delivery(recipient, "deferred" if attempt else "duplicate", attempt, reason)
        self._deferrals.pop(key, None)
        return result

    async def notify(self, event: StatusChanged, traceparent: str | None = None) -> dict[str, int]:
        """Send the event's emails to every recipient without a record yet; outages propagate. Each email
        carries `traceparent`, so a trace runs from the command to the mailbox."""
        recipients = await self.store.recipients(event.order_id)
        recorded = await self.store.recorded_recipients(event.event_id)
        counts: dict[str, int] = {}
        for recipient in recipients:
            if recorded.get(recipient.email) == SENDING:
                # claimed by a notifier that never recorded the answer (killed inside DATA): in doubt, so
                # say so each time the event comes by, and never send it again by ourselves
                outcome = "in_doubt"
                log.error("email outcome unknown; not resent automatically", recipient=recipient.email,
                          reason="claimed earlier, the server's answer was never recorded",
                          resend=f"orderstatus notifications resend {event.event_id}")
            elif recipient.email in recorded:
                outcome = "duplicate"
            else:
                try:
                    message = render_email(event, recipient, self.mail_from, traceparent)
                except InvalidRecipient as exc:
                    # bad data, not an outage: record it like a 5xx so it blocks nobody
                    await self.store.claim_first(event.event_id, recipient.email, FAILED, str(exc))
                    outcome = "failed"
                    log.warning("email not sent", recipient=recipient.email, reason=str(exc))
                else:
                    with tracing.span("smtp send", recipient_kind=recipient.kind):
                        result = await self._deliver(event.event_id, recipient.email, message)
                    outcome = result.outcome
                    if outcome == "failed":
                        log.warning("email refused", recipient=recipient.email, reply=result.detail)
                    elif outcome == "in_doubt":
                        log.error("email outcome unknown; not resent automatically", recipient=recipient.email,
                                  reason=result.detail, resend=f"orderstatus notifications resend {event.event_id}")
            self.metrics.emails.labels("notifier", outcome).inc()
            counts[outcome] = counts.get(outcome, 0) + 1
        if not recipients:
            log.info("order has no contacts")
        return counts

    async def handle(self, value: bytes | None, headers=()) -> str:
        """One message to its outcome label; outages propagate so the same message is retried."""
        try:
            event = parse_status_changed(value, self.max_message_bytes)
        except Unparseable as exc:
            log.warning("unparseable event skipped", error=str(exc))
            return "unparseable"
        if event is None:
            return "ignored"
        if not event.notify:
            return "notify_false"
        with structlog.contextvars.bound_contextvars(event_id=str(event.event_id), order_id=event.order_id), \
                tracing.span("notify", traceparent_of(headers), event_id=str(event.event_id)) as traceparent:
            counts = await self.notify(event, traceparent)
            log.info("event notified", **counts)
        return "notified"
