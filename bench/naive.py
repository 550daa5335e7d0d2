"""The naive baseline (issue 12), a process of its own: `python -m bench.naive`, configured like
`orderstatus worker` by the ORDERSTATUS_* environment.

Per consumed record, one at a time: the service's own `process_batch` on that one record in its own
unit of work (one transaction: claim, lock, decide, write history, outbox and outcome), then that
command's events published with one synchronous `send_and_wait` each, then the record's offset
committed. Same decisions and same writes as the worker, none of its batching (the outbox rows it writes
are left for no one: the naive design publishes straight after its commit).

It reaches into the service at two points — `process_batch` and `PostgresUnitOfWork` — so a change
there is fixed here, in one place."""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from service.adapters.kafka.clients import make_consumer, make_producer
from service.adapters.postgres.connection import create_pool
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.contract.commands import InputLimits
from service.contract.events import Topics, to_wire
from service.domain.commands import SourceMessage
from service.runtime.logging import configure_logging
from service.runtime.settings import Settings
from service.runtime.signals import run_until_signalled
from service.worker.batch import BatchResult, process_batch
from service.worker.config import BatchConfig


async def publish_synchronously(producer, result: BatchResult, topics: Topics) -> None:
    """Publish the events the command's transaction just wrote, each sent and acknowledged before the next
    (the same bytes the outbox holds; nothing relays them)."""
    for outcome in result.outcomes:
        for event in outcome.emitted:
            message = to_wire(event, topics, outcome.traceparent)
            await producer.send_and_wait(message.topic, value=message.value, key=message.key,
                                         headers=message.headers)


async def run_naive(settings: Settings, stop: asyncio.Event) -> int:
    pool = await create_pool(settings.database_url.get_secret_value(), size=2,
                             statement_timeout_s=settings.db_statement_timeout_s,
                             lock_timeout_s=settings.db_lock_timeout_s)
    producer = make_producer(settings, linger_ms=0)  # each send is awaited alone: lingering would only add delay
    consumer = make_consumer(settings, settings.worker_group, settings.commands_topic, max_poll_records=1)
    topics = Topics(events=settings.events_topic, dlq=settings.dlq_topic, max_message_bytes=settings.max_message_bytes)
    limits = InputLimits(max_message_bytes=settings.max_message_bytes, max_wire_items=settings.max_wire_items)
    rules_cache = RulesCache()
    await producer.start()
    await consumer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=1)
            for tp, messages in batch.items():
                for m in messages:
                    source = SourceMessage(tp.topic, tp.partition, m.offset, m.key, m.value, tuple(m.headers or ()))
                    result = await process_batch([source], lambda: PostgresUnitOfWork(pool, rules_cache),
                                                 BatchConfig(topics, settings.max_batch_items, limits))
                    await publish_synchronously(producer, result, topics)
                    await consumer.commit({TopicPartition(tp.topic, tp.partition): m.offset + 1})
    finally:
        await consumer.stop()
        await producer.stop()
        await pool.close()
    return 0


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, json=True)
    raise SystemExit(run_until_signalled(run_naive, settings))


if __name__ == "__main__":
    main()
