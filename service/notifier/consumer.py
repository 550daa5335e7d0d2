"""The notifier's Kafka loop: OrderStatusChanged events in, emails out (DESIGN §1, R10, §7).

poll a batch → for each event in partition order, send its emails until every recipient has a
record (retrying SMTP and Postgres outages, never skipping) → commit `offset + 1` per partition.
Records are durable before their offset is committed, so a replayed topic sends nothing twice.
Anything that is not a notifiable event (rejections, batch summaries, notify: false, garbage) is
committed past without an email."""

from __future__ import annotations

import asyncio
import random
import time
from uuid import UUID

import structlog

from service.adapters.kafka import make_consumer
from service.consuming import CommitOnRevoke, OffsetCommitter, stop_consumer
from service.faults import is_outage
from service.messages import OrderStatusChanged
from service.notifier import store
from service.notifier.delivery import deliver
from service.notifier.email_render import InvalidRecipient, render_email
from service.notifier.mailer import Mailer, SmtpUnavailable
from service.notifier.parse import Unparseable, parse_notifiable
from service.observability import Metrics, Progress
from service.runtime import Retrying
from service.settings import Settings

log = structlog.get_logger("orderstatus.notifier")

# an event may mean several SMTP round trips: keep a batch well inside max_poll_interval
MAX_EVENTS_PER_POLL = 100


class Notifier:
    def __init__(self, settings: Settings, pool, mailer: Mailer, metrics: Metrics, progress: Progress,
                 retrying: Retrying) -> None:
        self.settings = settings
        self.pool = pool
        self.mailer = mailer
        self.metrics = metrics
        self.progress = progress
        self.retrying = retrying
        self.consumer = make_consumer(settings, settings.notifier_group)
        self.offsets = OffsetCommitter(self.consumer, progress)

    async def _persist(self, write):
        # a record after SMTP answered must not be lost to a Postgres blip: retry it, not the send
        async for attempt in self.retrying("postgres"):
            with attempt:
                return await write()

    async def notify(self, event: OrderStatusChanged) -> dict[str, int]:
        """Send the event's emails to every recipient without a record yet; outages propagate."""
        event_id = UUID(event.event_id)
        recipients = await store.recipients(self.pool, event.order_id)
        recorded = await store.recorded_recipients(self.pool, event_id)
        counts: dict[str, int] = {}
        for recipient in recipients:
            if recorded.get(recipient.email) == store.SENDING:
                # claimed by a notifier that never recorded the answer (killed inside DATA): in doubt, so
                # say so each time the event comes by, and never send it again by ourselves
                outcome = "in_doubt"
                log.error("email outcome unknown; not resent automatically", recipient=recipient.email,
                          reason="claimed earlier, the server's answer was never recorded",
                          resend=f"orderstatus notifications resend {event_id}")
            elif recipient.email in recorded:
                outcome = "duplicate"
            else:
                try:
                    message = render_email(event, recipient, self.settings.mail_from)
                except InvalidRecipient as exc:
                    # bad data, not an outage: record it like a 5xx so it blocks nobody
                    await store.claim_first(self.pool, event_id, recipient.email, store.FAILED, str(exc))
                    outcome = "failed"
                    log.warning("email not sent", recipient=recipient.email, reason=str(exc))
                else:
                    result = await deliver(self.pool, self.mailer, self._persist, event_id, recipient.email, message)
                    outcome = result.outcome
                    if outcome == "failed":
                        log.warning("email refused", recipient=recipient.email, reply=result.detail)
                    elif outcome == "in_doubt":
                        log.error("email outcome unknown; not resent automatically", recipient=recipient.email,
                                  reason=result.detail, resend=f"orderstatus notifications resend {event_id}")
            self.metrics.emails.labels("notifier", outcome).inc()
            counts[outcome] = counts.get(outcome, 0) + 1
        if not recipients:
            log.info("order has no contacts")
        return counts

    async def handle(self, value: bytes | None) -> str:
        """One message to its outcome label; outages propagate so the same message is retried."""
        try:
            event = parse_notifiable(value)
        except Unparseable as exc:
            log.warning("unparseable event skipped", error=str(exc))
            return "unparseable"
        if event is None:
            return "ignored"
        if not event.notify:
            return "notify_false"
        with structlog.contextvars.bound_contextvars(event_id=event.event_id, order_id=event.order_id):
            counts = await self.notify(event)
            log.info("event notified", **counts)
        return "notified"

    async def _handle_until_done(self, value: bytes | None, stop: asyncio.Event) -> str | None:
        """Retry one message through outages with backoff; None if asked to stop meanwhile."""
        failures = 0
        while True:
            try:
                outcome = await self.handle(value)
                self.retrying.resumed()
                return outcome
            except Exception as exc:
                smtp = isinstance(exc, SmtpUnavailable)
                if not (smtp or is_outage(exc)):
                    raise
                dependency = "smtp" if smtp else "postgres"
                self.metrics.outages.labels("notifier", dependency).inc()
                self.progress.paused_reason = f"{dependency}: {type(exc).__name__}"
                failures += 1
                delay = min(self.settings.retry_max_s, self.settings.retry_initial_s * 2 ** min(failures - 1, 30))
                delay *= random.uniform(0.75, 1.0)  # jitter, so several notifiers do not hammer in step
                log.warning("outage, backing off", dependency=dependency, error=str(exc), attempt=failures,
                            sleep=round(delay, 2))
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                    return None  # stopping: leave the message uncommitted, it will be redelivered
                except asyncio.TimeoutError:
                    continue

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        self.consumer.subscribe([self.settings.events_topic], listener=CommitOnRevoke(self.offsets))
        async for attempt in self.retrying("kafka"):
            with attempt:
                await self.consumer.start()
        self.retrying.resumed()
        if ready is not None:
            ready.set()
        max_records = min(self.settings.kafka_max_poll_records, MAX_EVENTS_PER_POLL)
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=500, max_records=max_records)
                self.progress.polled()
                if not batch:
                    continue
                started = time.perf_counter()
                for tp, messages in batch.items():
                    for m in messages:
                        if stop.is_set():
                            break  # SIGTERM: the event in hand is finished, the rest is redelivered
                        with structlog.contextvars.bound_contextvars(partition=tp.partition, offset=m.offset):
                            outcome = await self._handle_until_done(m.value, stop)
                        if outcome is None:
                            break
                        self.metrics.messages.labels("notifier", outcome).inc()
                        self.offsets.done(tp, m.offset)
                self.metrics.batch_seconds.labels("notifier").observe(time.perf_counter() - started)
                await self.offsets.commit()
                await self.mailer.close()  # no connection idles between batches
        finally:
            await self.offsets.commit()
            await stop_consumer(self.consumer)
            await self.mailer.close()
