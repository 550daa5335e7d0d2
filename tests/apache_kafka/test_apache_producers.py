"""The production producer settings on the real engine: every record the service writes (the relay's events,
the dead-letter writer, `orderstatus send`, `dlq redrive`) comes from an idempotent producer (which implies
acks=all), as the broker itself stored it. The stand-in cannot initialise an idempotent producer at all."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from aiokafka.record.memory_records import MemoryRecords

from service.devkit.apache_kafka import ApacheKafka
from tests.helpers.cli import ok, run_cli_async
from tests.helpers.database import seed
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader


def producer_ids(log_dirs: Path, topic: str) -> list[int]:
    """The producer id of every record batch stored in the topic's log segments (-1: not idempotent)."""
    found = []
    for segment in sorted(log_dirs.glob(f"{topic}-*/*.log")):
        records = MemoryRecords(segment.read_bytes())
        while (batch := records.next_batch()) is not None:
            found.append(batch.producer_id)
    return found


async def test_apache_every_record_the_service_writes_comes_from_an_idempotent_producer(
        settings, cli_env, session_broker):
    """Events (the relay), dead letters (the worker's writer), commands (`send`, `dlq redrive`): every stored
    batch carries a producer id, i.e. was written by an idempotent producer with acks=all."""
    assert isinstance(session_broker, ApacheKafka), "this test reads Apache Kafka's own log segments"
    assert settings.kafka_enable_idempotence and cli_env["ORDERSTATUS_KAFKA_ENABLE_IDEMPOTENCE"] == "true"
    await seed(settings)
    change = {"type": "ChangeOrderStatus", "command_id": str(uuid.uuid4()), "order_id": 1029, "status": 21,
              "actor": {"id": "u-7", "role": "client", "client_id": "c-1"}}
    broken = {"type": "ChangeOrderStatus", "command_id": str(uuid.uuid4()), "order_id": "not a number"}
    async with running_worker(settings):
        async with TopicReader(settings, settings.events_topic) as events, \
                TopicReader(settings, settings.dlq_topic) as dead:
            ok(await run_cli_async(cli_env, "send", json.dumps(change)))
            ok(await run_cli_async(cli_env, "send", "--no-validate", json.dumps(broken)))
            await events.wait_for(lambda values: {v.get("command_id") for v in values} >= {change["command_id"],
                                                                                        broken["command_id"]})
            await dead.wait_for(lambda values: len(dead.records) >= 1, what="the dead letter")
            ok(await run_cli_async(cli_env, "dlq", "redrive", "--all"))
            await dead.wait_for(lambda values: len(dead.records) >= 2, what="the redriven command dead-lettered again")
    data = session_broker.nodes[0].folder / "data"
    for topic in (settings.commands_topic, settings.events_topic, settings.dlq_topic):
        ids = producer_ids(data, topic)
        assert ids, f"nothing stored in {topic}"
        assert all(pid >= 0 for pid in ids), f"{topic}: batches without a producer id: {ids}"
