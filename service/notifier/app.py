"""The notifier (DESIGN §1): the consume loop's strategy for events, one event per unit.

An event may mean several SMTP round trips, so each is made durable (every recipient recorded) and
marked done on its own: an outage retries only the event in hand, and SIGTERM finishes it and
leaves the rest of the batch for redelivery."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from service.adapters.postgres.positions import PostgresPositions
from service.domain.commands import SourceMessage
from service.notifier.handlers import EventHandler
from service.notifier.ports import MailTransport, NotificationStore
from service.runtime.consume import ConsumeLoop
from service.runtime.consumer import Consumer
from service.runtime.faults import StatementTimedOut, is_outage, is_timeout
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.positions import DatabasePositions
from service.runtime.retry import OutageRetry

log = structlog.get_logger("orderstatus.notifier")

# an event may mean several SMTP round trips: keep a batch well inside max_poll_interval
MAX_EVENTS_PER_POLL = 100
# The Kafka client hands out all that one fetch brought for a partition before the next partition's records.
# With 1 MiB per partition (~1,500 events) a notifier that is behind sent one partition's orders' emails for
# half a minute while the other orders got none; fetches of at most 64 KiB per partition (about one poll of
# events; a larger record batch still comes whole) serve the partitions in turn.
PARTITION_FETCH_BYTES = 64 * 1024


def partition_fetch_bytes(configured: int) -> int:
    """`max_partition_fetch_bytes` of the notifier's consumer: the configured one, at most PARTITION_FETCH_BYTES."""
    return min(configured, PARTITION_FETCH_BYTES)


@dataclass(frozen=True)
class NotifierConfig:
    """What the notifier is configured with; the entrypoint builds it from the settings (DESIGN §3)."""

    events_topic: str
    mail_from: str
    max_message_bytes: int
    max_poll_records: int
    commit_interval_s: float = 0.0
    # the consumer group, whose positions are written after each batch and read on assignment (issue 24);
    # None: not kept
    group: str | None = None


class EventStrategy:
    def __init__(self, config: NotifierConfig, handler: EventHandler, metrics: Metrics) -> None:
        self.max_records = min(config.max_poll_records, MAX_EVENTS_PER_POLL)
        self.handler = handler
        self.metrics = metrics

    def units(self, batch: Sequence[SourceMessage]) -> Sequence[Sequence[SourceMessage]]:
        return [[message] for message in batch]

    async def make_durable(self, unit: Sequence[SourceMessage]) -> None:
        """Outages propagate (the event is retried); anything else this event causes skips it, counted,
        so no event, whatever it holds, stops the notifier."""
        (message,) = unit
        with structlog.contextvars.bound_contextvars(partition=message.partition, offset=message.offset):
            try:
                outcome = await self.handler.handle(message.value, message.headers)
            except Exception as exc:
                if is_outage(exc):
                    raise
                if is_timeout(exc):
                    raise StatementTimedOut(str(exc)) from exc
                log.error("event skipped: it could not be handled", error=repr(exc))
                outcome = "failed"
        self.metrics.messages.labels("notifier", outcome).inc()


class Notifier:
    def __init__(self, config: NotifierConfig, pool, store: NotificationStore, consumer: Consumer,
                 mailer: MailTransport, metrics: Metrics, progress: Progress, retry: OutageRetry) -> None:
        """`pool` keeps the consumer's positions (issue 24); `store` the delivery records the handler reads and
        writes (`PostgresNotificationStore` over the same pool in production)."""
        self.mailer = mailer
        handler = EventHandler(store, mailer, config.mail_from, metrics, retry, config.max_message_bytes)
        positions = None if config.group is None else PostgresPositions(pool, config.group)
        self.loop = ConsumeLoop(consumer, config.events_topic, EventStrategy(config, handler, metrics), retry,
                                progress, metrics, config.commit_interval_s,
                                None if positions is None else DatabasePositions(positions, consumer, retry, metrics,
                                                                                 written_by_loop=True))

    async def status(self) -> dict:
        return {"lag": await self.loop.lag()}

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        await self.loop.start()
        if ready is not None:
            ready.set()
        try:
            # no SMTP connection idles between batches
            await self.loop.run(stop, after_batch=self.mailer.close)
        finally:
            await self.mailer.close()
