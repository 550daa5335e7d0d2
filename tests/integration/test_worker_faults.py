"""Fault tests: the worker against real infrastructure that we break on purpose (DESIGN §7.4, §7.6).

Every scenario streams long chains of manager commands with `expected_status` over a few SO orders:
the orders alternate Confirmed -> OnHold -> Confirmed …, so each command succeeds only when it is
applied exactly once and in partition order; a lost, doubled or reordered command shows up as a
`stale_status` rejection, a wrong version or a missing event."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from service.adapters.database import connect, create_pool, migrate
from service.adapters.kafka import client_options
from service.adapters.rules_store import RulesCache
from service.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, scratch_dir
from service.handlers import SourceMessage, Topics
from service.processing import process_batch
from service.settings import Settings
from service.unit_of_work import PostgresUnitOfWork
from tests.processes import ServiceProcess, fast_group_env, readiness, wait_readiness, wait_until
from tests.support import TopicReader, change, events_for, fetch, produce, running_worker, seed

CONFIRMED, ON_HOLD = 2, 4
ORDER_IDS = [7001, 7002, 7003, 7004]
ORDERS = [
    {"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
     "contacts": [], "payments_total": "0.00"}
    for oid in ORDER_IDS
]


# ------------------------------------------------------------------------------------------ helpers


def alternating(order_ids: list[int], per_order: int, start: int = 0) -> list[dict]:
    """`per_order` manager commands per order, interleaved across orders; each only valid in order."""
    commands = []
    for i in range(start, start + per_order):
        for oid in order_ids:
            to, expected = (ON_HOLD, CONFIRMED) if i % 2 == 0 else (CONFIRMED, ON_HOLD)
            commands.append(change(oid, to, role="manager", expected_status=expected, notify=False,
                                   note={"text": f"step {i}"}))
    return commands


async def stream(settings: Settings, commands: list[dict], chunk: int = 10, gap: float = 0.03) -> None:
    """Publish commands keyed by order id in small chunks, so the worker sees a steady flow."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i in range(0, len(commands), chunk):
            for command in commands[i:i + chunk]:
                await producer.send(settings.commands_topic, value=json.dumps(command).encode(),
                                    key=str(command["order_id"]).encode())
            await producer.flush()
            await asyncio.sleep(gap)
    finally:
        await producer.stop()


async def start_flow(settings: Settings, commands: list[dict], chunk: int = 6, gap: float = 0.05) -> asyncio.Task:
    """Send the first command of each order and wait until the worker applied them (it owns its
    partitions now: a group join takes seconds), then stream the rest in the background."""
    head = len({c["order_id"] for c in commands})
    await produce(settings, commands[:head])
    await wait_processed(settings, head, timeout=45)
    return asyncio.create_task(stream(settings, commands[head:], chunk=chunk, gap=gap))


async def scalar(database_url: str, sql: str, *args):
    conn = await connect(database_url)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def processed_count(settings: Settings) -> int:
    return await scalar(settings.database_url, "SELECT count(*) FROM processed_commands")


async def is_zero(value_awaitable) -> bool:
    return (await value_awaitable) == 0


async def wait_processed(settings: Settings, at_least: int, timeout: float = 30.0) -> int:
    async def probe():
        n = await processed_count(settings)
        return n if n >= at_least else 0

    return await wait_until(probe, timeout, f"{at_least} processed commands")


async def committed_offsets(settings: Settings) -> dict[int, int]:
    """The worker group's committed offsets on the commands topic, by partition (read without joining)."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=settings.worker_group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(settings.commands_topic) or set()
        committed = {p: await consumer.committed(TopicPartition(settings.commands_topic, p)) for p in partitions}
    finally:
        await consumer.stop()
    return {p: o for p, o in committed.items() if o is not None}


def _per_order(commands: list[dict]) -> dict[int, list[str]]:
    per_order: dict[int, list[str]] = defaultdict(list)
    for c in commands:
        per_order[c["order_id"]].append(c["command_id"])
    return per_order


async def assert_exactly_once(settings: Settings, commands: list[dict], events: list[dict]) -> None:
    """Each command applied once, in order, with a version per command; the topic covers each of them."""
    await assert_applied_once(settings, commands)
    assert_events_cover(commands, events)


async def assert_applied_once(settings: Settings, commands: list[dict]) -> None:
    """In Postgres: one processed record, one version and one history row per command, in command order."""
    per_order = _per_order(commands)
    ids = [c["command_id"] for c in commands]

    outcomes = await fetch(settings, "SELECT command_id, outcome FROM processed_commands WHERE command_id = ANY($1)", ids)
    assert len(outcomes) == len(ids), f"{len(ids) - len(outcomes)} commands never processed"
    not_applied = [r for r in outcomes if r["outcome"] != "applied"]
    assert not not_applied, f"{len(not_applied)} commands not applied (reordered or doubled?): {not_applied[:3]}"
    assert await scalar(settings.database_url, "SELECT count(*) FROM processed_commands") == len(ids)

    for oid, expected_ids in per_order.items():
        row = (await fetch(settings, "SELECT version, status_id FROM orders WHERE order_id = $1", oid))[0]
        assert row["version"] == len(expected_ids), (oid, row["version"], len(expected_ids))
        assert row["status_id"] == (ON_HOLD if len(expected_ids) % 2 else CONFIRMED)
        history = await fetch(settings, "SELECT version, command_id FROM order_history WHERE order_id = $1 "
                                         "ORDER BY version", oid)
        assert [h["version"] for h in history] == list(range(1, len(expected_ids) + 1))
        assert [h["command_id"] for h in history] == expected_ids, f"order {oid}: history not in command order"
    assert await scalar(settings.database_url, "SELECT count(DISTINCT command_id) = count(*) FROM order_history")


def assert_events_cover(commands: list[dict], events: list[dict]) -> None:
    """On the topic: an OrderStatusChanged per command; first appearances of an order's versions are 1, 2, 3 …

    At-least-once publishing allows an event to appear twice, but only as the same event_id: a
    version never has two different event ids."""
    per_order = _per_order(commands)
    ids = [c["command_id"] for c in commands]
    changed = [e for e in events if e["type"] == "OrderStatusChanged"]
    assert not [e for e in events if e["type"] != "OrderStatusChanged"], "unexpected rejections on the topic"
    assert {e["command_id"] for e in changed} == set(ids), "some command has no event on the topic"
    by_event: dict[str, dict] = {}
    for e in changed:
        assert by_event.setdefault(e["event_id"], e) == e, f"event {e['event_id']} republished with other content"
    for oid, expected_ids in per_order.items():
        first_seen: list[int] = []
        event_of_version: dict[int, str] = {}
        for e in changed:
            if e["order_id"] != oid:
                continue
            v = e["version"]
            assert event_of_version.setdefault(v, e["event_id"]) == e["event_id"], f"order {oid} v{v}: two event ids"
            if e["event_id"] not in first_seen:
                first_seen.append(e["event_id"])
        versions = [by_event[eid]["version"] for eid in first_seen]
        assert versions == list(range(1, len(expected_ids) + 1)), f"order {oid}: versions on the topic {versions}"
        assert [by_event[eid]["command_id"] for eid in first_seen] == expected_ids


async def unpublished(settings: Settings) -> int:
    return await scalar(settings.database_url, "SELECT count(*) FROM outbox WHERE published_at IS NULL")


# -------------------------------------------------------------------------------------------- tests


async def test_kill_9_mid_stream_loses_nothing_and_applies_nothing_twice(settings, cli_env):
    """A SIGKILLed worker process leaves no lost, doubled or reordered command, and no missing event."""
    await seed(settings, ORDERS)
    commands = alternating(ORDER_IDS, 100)
    # small poll batches keep the worker busy in many transactions, so the kill lands inside the work
    # (measured: 5-15 committed events not yet published at the moment of the kill)
    env = {**fast_group_env(cli_env), "ORDERSTATUS_KAFKA_MAX_POLL_RECORDS": "5"}
    first = ServiceProcess("worker", env, "kill9-first")
    second = None
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            await first.wait_assigned()
            producing = asyncio.create_task(stream(settings, commands, chunk=100, gap=0))
            await wait_processed(settings, 120)
            first.kill9()
            at_kill = await processed_count(settings)
            assert first.proc.returncode == -signal.SIGKILL
            assert at_kill < len(commands), "the worker finished before the kill: the test proved nothing"
            await producing
            second = ServiceProcess("worker", env, "kill9-second")
            await events_for(reader, {c["command_id"] for c in commands}, timeout=45)
            await wait_until(lambda: is_zero(unpublished(settings)), 10, "the outbox to drain")
            assert await second.terminate() == 0, second.tail()
            await reader.poll()
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(settings, commands, events)
    finally:
        first.close()
        if second is not None:
            second.close()


async def test_sigterm_drains_exits_0_and_a_restart_finishes_the_rest(settings, cli_env):
    """SIGTERM mid-stream: exit code 0, outbox drained, offsets committed; a new worker applies the rest once."""
    await seed(settings, ORDERS)
    commands = alternating(ORDER_IDS, 80)
    env = {**fast_group_env(cli_env), "ORDERSTATUS_KAFKA_MAX_POLL_RECORDS": "5"}  # busy at the signal
    first = ServiceProcess("worker", env, "sigterm-first")
    second = None
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            await first.wait_assigned()
            producing = asyncio.create_task(stream(settings, commands, chunk=100, gap=0))
            await wait_processed(settings, 80)
            assert await first.terminate() == 0, first.tail()
            done = await processed_count(settings)
            assert done < len(commands), "the worker finished before SIGTERM: the test proved nothing"
            assert await unpublished(settings) == 0, "SIGTERM left committed events unpublished"
            # everything made durable was committed to the group, and nothing else was
            assert sum((await committed_offsets(settings)).values()) == done
            await producing
            second = ServiceProcess("worker", env, "sigterm-second")
            await events_for(reader, {c["command_id"] for c in commands}, timeout=45)
            assert await second.terminate() == 0, second.tail()
            assert sum((await committed_offsets(settings)).values()) == len(commands)
            await reader.poll()
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(settings, commands, events)
        assert len(events) == len(commands), "a clean stop should not republish anything"
    finally:
        first.close()
        if second is not None:
            second.close()


async def test_outbox_rows_committed_but_never_published_are_published_in_version_order(settings):
    """Crash window: outcomes committed without a publish are published by the next worker, per-order in order."""
    await seed(settings, ORDERS)
    commands = alternating(ORDER_IDS, 50)
    topics = Topics(events=settings.events_topic, dlq=settings.dlq_topic)
    pool = await create_pool(settings.database_url)
    try:
        cache = RulesCache()
        for start in range(0, len(commands), 40):  # five transactions, as five poll batches would be
            sources = [
                SourceMessage(settings.commands_topic, 0, offset, str(c["order_id"]).encode(), json.dumps(c).encode())
                for offset, c in enumerate(commands[start:start + 40], start)
            ]
            result = await process_batch(sources, lambda: PostgresUnitOfWork(pool, cache), topics, 50)
            assert [o.outcome for o in result.outcomes] == ["applied"] * len(sources)
    finally:
        await pool.close()
    assert await unpublished(settings) == len(commands)  # the "crash": committed, nothing published

    async with TopicReader(settings, settings.events_topic) as reader:
        await reader.poll()
        assert reader.records == []
        async with running_worker(settings):
            events = await events_for(reader, {c["command_id"] for c in commands}, timeout=30)
            await wait_until(lambda: is_zero(unpublished(settings)), 10, "the outbox to drain")
            assert len(events) == len(commands)
            await assert_exactly_once(settings, commands, events)

            # the same commands arriving on the topic afterwards are duplicates: no effect, no event
            sentinels = alternating(ORDER_IDS, 1, start=50)
            await produce(settings, commands + sentinels)
            await events_for(reader, {c["command_id"] for c in sentinels}, timeout=30)
        await reader.poll()
        events = [v for v in reader.values() if v.get("command_id")]
    assert len(events) == len(commands) + len(sentinels), "a replayed command emitted a new event"
    await assert_exactly_once(settings, commands + sentinels, events)


async def test_postgres_outage_pauses_without_dlq_and_resumes_exactly_once(settings):
    """Postgres stopped mid-stream and restarted: no dead letters, every command applied once, every event out."""
    data_dir = scratch_dir("orderstatus-fault-pg-")
    pg = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(pg.start)
    restarted = None
    try:
        await asyncio.to_thread(migrate, pg.url)
        private = settings.model_copy(update={"database_url": pg.url, "http_port": free_port()})
        await seed(private, ORDERS)
        commands = alternating(ORDER_IDS, 75)
        async with (TopicReader(private, private.events_topic) as reader,
                    TopicReader(private, private.dlq_topic) as dlq):
            async with running_worker(private) as worker:
                producing = await start_flow(private, commands)
                await wait_readiness(private.http_port, True, 15)
                await wait_processed(private, 60)
                await asyncio.to_thread(pg.stop)
                # the stream keeps coming while the database is down; /readyz says so
                await wait_readiness(private.http_port, False, 10, database=False)
                await asyncio.sleep(2)
                assert not worker.done(), "the worker gave up during the outage"
                await dlq.poll()
                assert dlq.records == [], "an outage sent commands to the DLQ"
                restarted = EmbeddedPostgres(data_dir, port=pg.port)
                await asyncio.to_thread(restarted.start)
                assert await processed_count(private) < len(commands), "finished before the outage"
                await producing
                await wait_readiness(private.http_port, True, 15)
                await events_for(reader, {c["command_id"] for c in commands}, timeout=40)
                await wait_until(lambda: is_zero(unpublished(private)), 10, "the outbox to drain")
            await reader.poll()
            await dlq.poll()
            assert dlq.records == [], "an outage sent commands to the DLQ"
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(private, commands, events)
    finally:
        await asyncio.to_thread((restarted or pg).stop)


async def test_broker_outage_pauses_and_resumes_with_every_event_published(settings):
    """The broker frozen mid-stream (SIGSTOP) and resumed: every command applied once, every event published."""
    broker = EmbeddedBroker(log_path=scratch_dir("orderstatus-fault-broker-") / "tansu.log")
    await asyncio.to_thread(broker.start)
    try:
        private = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers,
                                              "http_port": free_port()})
        await seed(private, ORDERS)
        commands = alternating(ORDER_IDS, 75)
        async with running_worker(private) as worker:
            producing = await start_flow(private, commands)
            await wait_processed(private, 60)
            broker.pause()
            try:
                assert await processed_count(private) < len(commands), "finished before the outage"
                frozen_at = time.monotonic()
                await wait_readiness(private.http_port, False, 6, kafka=False)
                while time.monotonic() - frozen_at < 6:  # and it stays not ready while frozen
                    status, body = await readiness(private.http_port)
                    assert status == 503 and body["kafka"] is False, body
                    await asyncio.sleep(0.2)
                assert not worker.done(), "the worker gave up during the outage"
            finally:
                broker.resume()
            await asyncio.wait_for(producing, 45)
            async with TopicReader(private, private.events_topic) as reader:
                await events_for(reader, {c["command_id"] for c in commands}, timeout=40)
                await wait_until(lambda: is_zero(unpublished(private)), 10, "the outbox to drain")
                await wait_readiness(private.http_port, True, 15)
                await reader.poll()
                events = [v for v in reader.values() if v.get("command_id")]
        async with TopicReader(private, private.dlq_topic) as dlq:
            await dlq.poll()
            await dlq.poll()
            assert dlq.records == [], "an outage sent commands to the DLQ"
        await assert_exactly_once(private, commands, events)
    finally:
        await asyncio.to_thread(broker.stop)


async def test_sigterm_while_the_broker_is_down_still_exits_0(settings, cli_env):
    """SIGTERM during a broker outage: the worker process still exits 0 promptly, without a traceback."""
    broker = EmbeddedBroker(log_path=scratch_dir("orderstatus-fault-broker-") / "tansu.log")
    await asyncio.to_thread(broker.start)
    worker = None
    try:
        private = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
        await seed(private, ORDERS)
        worker = ServiceProcess("worker", {**cli_env, "ORDERSTATUS_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers},
                               "sigterm-broker-down")
        await worker.wait_assigned()
        commands = alternating(ORDER_IDS, 5)
        await produce(private, commands)
        await wait_processed(private, len(commands))
        await wait_until(lambda: is_zero(unpublished(private)), 10, "the outbox to drain")
        await asyncio.to_thread(broker.stop)
        await asyncio.sleep(1.5)  # the consumer's fetches and heartbeats are failing now
        assert await worker.terminate(timeout=30) == 0, worker.tail()
        assert "Traceback" not in worker.text(), worker.tail()
        await assert_applied_once(private, commands)
    finally:
        if worker is not None:
            worker.close()
        await asyncio.to_thread(broker.stop)
