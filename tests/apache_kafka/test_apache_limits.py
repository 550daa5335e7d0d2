"""Limits only the real engine enforces (issue 19): the broker's own size limit on the events topic, and
commands compressed with every codec by another client (librdkafka), including one the worker cannot read."""

from __future__ import annotations

import asyncio
import struct
import subprocess
import sys
from pathlib import Path

import confluent_kafka
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import UnknownError, for_code
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.util import calc_crc32c

from service.devkit.embedded import scratch_dir
from tests.helpers.cli import ok, run_cli_async
from tests.helpers.commands import change
from tests.helpers.database import fetch, seed
from tests.helpers.processes import ServiceProcess
from tests.helpers.producing import encode, produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

CODECS = ("gzip", "snappy", "lz4", "zstd")
# orders of our own, each Confirmed: a manager may put any of them OnHold
ORDERS = [{"order_id": n, "order_type": "SO", "status": "Confirmed"} for n in range(801, 831)]


async def _topic_configs(admin: AIOKafkaAdminClient, topic: str) -> dict[str, str]:
    """The topic's configs as the broker reports them (defaults included)."""
    [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    [(error_code, error_message, _type, _name, entries)] = response.resources
    assert error_code == 0, error_message
    return {entry[0]: entry[1] for entry in entries}


async def set_max_message_bytes(settings, topic: str, limit: int) -> None:
    """Set the topic's `max.message.bytes` with the admin API (AlterConfigs replaces the topic's dynamic
    configs, so `min.insync.replicas` is given again) and wait until the broker reports it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        keep = (await _topic_configs(admin, topic))["min.insync.replicas"]
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={
            "max.message.bytes": str(limit), "min.insync.replicas": keep})])

        async def applied():
            return (await _topic_configs(admin, topic))["max.message.bytes"] == str(limit)

        await wait_until(applied, 20, f"{topic}'s max.message.bytes to read {limit}")
    finally:
        await admin.close()


async def _parked(settings) -> list:
    return await fetch(settings, "SELECT id, held_behind, park_reason FROM outbox WHERE parked_at IS NOT NULL "
                                 "ORDER BY id")


class TestTheBrokersSizeLimit:
    async def test_apache_an_event_over_the_topics_limit_is_parked_other_orders_flow_and_retry_publishes_it(
            self, settings, cli_env):
        """The broker's MESSAGE_TOO_LARGE (the topic's max.message.bytes, far below the producer's own limit)
        parks only the big event and its order's later one: the events of 15 other orders in the same round
        (refused with its batch, then out of sequence for the idempotent producer) are published, and
        `outbox retry` publishes both held events in order once the limit is raised."""
        await seed(settings, [{"order_id": 1033, "order_type": "SO"}, *ORDERS])
        await set_max_message_bytes(settings, settings.events_topic, 4096)
        assert settings.kafka_max_request_size >= 1_048_576  # the producer would send it: only the broker refuses
        big = change(1033, "Confirmed", note={"text": "x" * 6000})
        others = [change(o["order_id"], "OnHold", role="manager") for o in ORDERS]
        behind = change(1033, "OnHold", role="manager")
        try:
            async with TopicReader(settings, settings.events_topic) as events:
                async with running_worker(settings) as worker:
                    # first events on every partition: the idempotent producer has a sequence there to keep
                    await produce(settings, others[:15])
                    await events_for(events, {c["command_id"] for c in others[:15]}, timeout=30)
                    await produce(settings, [big, *others[15:]])  # one poll, one relay round
                    await events_for(events, {c["command_id"] for c in others}, timeout=30)
                    parked = await wait_until(lambda: _parked(settings), 20, "the big event to be parked")
                    assert len(parked) == 1 and "MessageSizeTooLargeError" in parked[0]["park_reason"]
                    await produce(settings, [behind])
                    await wait_until(lambda: _parked_count(settings, 2), 20, "the later event held behind it")
                    listing = ok(await run_cli_async(cli_env, "outbox", "parked")).stdout
                    assert "MessageSizeTooLargeError" in listing and "1 held back" in listing
                    assert not worker.done()
                assert {v.get("command_id") for v in events.values()} & {big["command_id"], behind["command_id"]} \
                    == set()
                row_id = parked[0]["id"]

                await set_max_message_bytes(settings, settings.events_topic, 1_048_588)  # the fix: the default
                async with running_worker(settings):
                    done = ok(await run_cli_async(cli_env, "outbox", "retry", str(row_id)))
                    assert f"{row_id}: released" in done.stdout
                    await events_for(events, {big["command_id"], behind["command_id"]}, timeout=30)
            order = [(v["command_id"], v["version"]) for v in events.values() if v.get("order_id") == 1033]
            assert order == [(big["command_id"], 1), (behind["command_id"], 2)]
            assert await _parked(settings) == []
        finally:
            await set_max_message_bytes(settings, settings.events_topic, 1_048_588)


async def _parked_count(settings, count: int) -> bool:
    return len(await _parked(settings)) == count


def produce_compressed(settings, codec: str, commands: list[dict]) -> list[tuple[int, int]]:
    """Send the commands with librdkafka (`confluent_kafka.Producer`), compressed with `codec`, keyed by
    order id like every producer; returns (partition, offset) of each. Compressible values (a long note)
    keep librdkafka from sending a batch uncompressed."""
    producer = confluent_kafka.Producer({"bootstrap.servers": settings.kafka_bootstrap_servers,
                                         "compression.type": codec, "linger.ms": 50, "acks": "all"})
    placed: list[tuple[int, int]] = []
    failures: list = []

    def delivered(error, message):
        if error is not None:
            failures.append(error)
        else:
            placed.append((message.partition(), message.offset()))

    for command in commands:
        key, value = encode(command)
        producer.produce(settings.commands_topic, value=value, key=key, on_delivery=delivered)
    assert producer.flush(30) == 0 and not failures, failures
    return placed


def _compressible(order_id: int) -> dict:
    return change(order_id, "OnHold", role="manager", note={"text": "compress me " * 100})


class TestCompressedCommands:
    async def test_apache_commands_compressed_with_each_codec_by_librdkafka_are_applied(self, settings):
        """gzip, snappy, lz4 and zstd batches from a librdkafka producer are all read and applied by the worker."""
        await seed(settings, ORDERS)
        by_codec = {codec: [_compressible(801 + 3 * i + n) for n in range(3)] for i, codec in enumerate(CODECS)}
        async with running_worker(settings) as worker, TopicReader(settings, settings.events_topic) as events:
            for codec, commands in by_codec.items():
                await asyncio.to_thread(produce_compressed, settings, codec, commands)
            applied = await events_for(events, {c["command_id"] for cs in by_codec.values() for c in cs}, timeout=30)
            assert not worker.done()
        assert sorted(e["type"] for e in applied) == ["OrderStatusChanged"] * 12
        rows = await fetch(settings, "SELECT order_id FROM orders WHERE version = 1 ORDER BY order_id")
        assert [r["order_id"] for r in rows] == list(range(801, 813))

    async def test_apache_a_codec_the_worker_cannot_read_is_dead_lettered_and_the_partition_goes_on(
            self, settings, cli_env):
        """A worker without the snappy, lz4 and zstd codecs (no cramjam) dead-letters every command of such a
        batch as `unreadable`, with its original topic, partition and offset and an empty value, never
        crash-loops, and applies the gzip and uncompressed commands around them on the same partitions."""
        await seed(settings, ORDERS)
        hidden = scratch_dir("orderstatus-no-cramjam-")
        (hidden / "cramjam.py").write_text('raise ImportError("cramjam is not installed here")\n')
        env = {**cli_env, "PYTHONPATH": f"{hidden}:{Path(__file__).resolve().parents[2]}"}
        no_codec = subprocess.run([sys.executable, "-c", "import aiokafka.codec as c; print(c.has_snappy())"],
                                  env=env, capture_output=True, text=True, check=True)
        assert no_codec.stdout.strip() == "False"
        unreadable = {codec: [_compressible(801 + 3 * i + n) for n in range(3)]
                      for i, codec in enumerate(("snappy", "lz4", "zstd"))}
        readable = [_compressible(n) for n in range(811, 814)]
        after = [change(n, "OnHold", role="manager") for n in range(814, 817)]
        worker = ServiceProcess("worker", env, "no-cramjam")
        try:
            await worker.wait_assigned()
            placed: dict[tuple[int, int], str] = {}
            for codec, commands in unreadable.items():
                placed |= dict.fromkeys(await asyncio.to_thread(produce_compressed, settings, codec, commands), codec)
            await asyncio.to_thread(produce_compressed, settings, "gzip", readable)
            await produce(settings, after)
            async with TopicReader(settings, settings.events_topic) as events, \
                    TopicReader(settings, settings.dlq_topic) as dlq:
                applied = await events_for(events, {c["command_id"] for c in readable + after}, timeout=40)
                await dlq.wait_for(lambda values: len(dlq.records) >= 9, timeout=30, what="nine dead letters")
            assert worker.proc.poll() is None, worker.tail()
        finally:
            await worker.terminate()
            worker.close()
        assert sorted(e["type"] for e in applied) == ["OrderStatusChanged"] * 6
        letters = {(int(dict(r.headers)["original.partition"]), int(dict(r.headers)["original.offset"])): r
                   for r in dlq.records}
        assert letters.keys() == placed.keys()
        for letter in dlq.records:
            headers = dict(letter.headers)
            assert headers["error.reason"] == b"unreadable"
            assert b"UnsupportedCodecError" in headers["error.message"]
            assert headers["original.topic"] == settings.commands_topic.encode()
            assert not letter.value
        assert "Traceback" not in worker.text()
        starts = [line for line in worker.log_lines() if line.get("event") == "worker started"]
        assert len(starts) == 1
        rows = await fetch(settings, "SELECT order_id FROM orders WHERE version = 1 ORDER BY order_id")
        assert [r["order_id"] for r in rows] == list(range(811, 817))


def _batch_claiming_gzip(values: list[bytes]) -> bytes:
    """A v2 record batch whose attributes say gzip while its records are not compressed (CRC made valid)."""
    builder = DefaultRecordBatchBuilder(2, 0, 0, -1, -1, -1, 1_048_576)
    for delta, value in enumerate(values):
        builder.append(delta, timestamp=1_700_000_000_000, key=b"801", value=value, headers=[])
    data = bytearray(builder.build())
    attributes = struct.unpack_from(">h", data, 21)[0]
    struct.pack_into(">h", data, 21, attributes | 1)
    struct.pack_into(">I", data, 17, calc_crc32c(bytes(data[21:])))
    return bytes(data)


class TestCorruptPayloads:
    async def test_apache_the_broker_refuses_a_batch_whose_payload_does_not_decompress(self, settings):
        """A raw produce of a batch that claims gzip but does not decompress is refused by the broker itself
        (UNKNOWN_SERVER_ERROR) and nothing is appended: only a codec missing on the reading side can make a
        stored batch unreadable, which the test above covers."""
        await seed(settings, ORDERS)
        tp = TopicPartition(settings.commands_topic, 0)
        client = AIOKafkaClient(bootstrap_servers=settings.kafka_bootstrap_servers)
        await client.bootstrap()
        try:
            await client.add_topic(tp.topic)
            request = ProduceRequest(required_acks=-1, timeout=30_000, transactional_id=None,
                                     topics=[(tp.topic, [(0, _batch_claiming_gzip([b'{"x": 1}'] * 3))])])
            response = await client.send(client.cluster.leader_for_partition(tp), request)
        finally:
            await client.close()
        [(_, [(partition, error_code, *_)])] = response.topics
        assert (partition, for_code(error_code)) == (0, UnknownError)
        reader = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
        await reader.start()
        try:
            assert await reader.end_offsets([tp]) == {tp: 0}
        finally:
            await reader.stop()
