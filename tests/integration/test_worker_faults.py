"""Fault tests: the worker against real infrastructure that we break on purpose (DESIGN §7.4, §7.6).

Every scenario streams long chains of manager commands with `expected_status` over a few SO orders
(`tests/helpers/command_chains.py`): each command succeeds only when it is applied exactly once and in
partition order, so a lost, doubled or reordered command shows up as a `stale_status` rejection, a
wrong version or a missing event."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest

from service.adapters.postgres.connection import create_pool, migrate
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.contract.events import Topics
from service.devkit.embedded import EmbeddedPostgres, free_port, scratch_dir
from tests.helpers.brokers import new_broker
from service.runtime.settings import Settings
from service.worker.batch import process_batch
from service.worker.config import BatchConfig
from tests.helpers.command_chains import (
    alternating,
    assert_applied_once,
    assert_exactly_once,
    chain_orders,
    processed_count,
    unpublished,
    wait_outbox_drained,
    wait_processed,
)
from tests.helpers.commands import source_messages
from tests.helpers.database import on_database, seed, url_of
from tests.helpers.offsets import committed_offsets
from tests.helpers.probes import assert_stays_not_ready, get, wait_readiness
from tests.helpers.processes import ServiceProcess, fast_group_env
from tests.helpers.producing import produce, stream
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

ORDER_IDS = [7001, 7002, 7003, 7004]
ORDERS = chain_orders(ORDER_IDS)


# ------------------------------------------------------------------------------------------ helpers


async def start_flow(settings: Settings, commands: list[dict], chunk: int = 6, gap: float = 0.05) -> asyncio.Task:
    """Send the first command of each order and wait until the worker applied them (it owns its
    partitions now: a group join takes seconds), then stream the rest in the background."""
    head = len({c["order_id"] for c in commands})
    await produce(settings, commands[:head])
    await wait_processed(settings, head, timeout=45)
    return asyncio.create_task(stream(settings, commands[head:], chunk=chunk, gap=gap))


async def committed_total(settings: Settings) -> int:
    """How many commands the worker group has committed on the commands topic (all partitions)."""
    found = await committed_offsets(settings, settings.worker_group, settings.commands_topic)
    return sum(offset or 0 for offset in found.values())


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
            await wait_outbox_drained(settings)
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
            assert await committed_total(settings) == done
            await producing
            second = ServiceProcess("worker", env, "sigterm-second")
            await events_for(reader, {c["command_id"] for c in commands}, timeout=45)
            assert await second.terminate() == 0, second.tail()
            assert await committed_total(settings) == len(commands)
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
    pool = await create_pool(url_of(settings))
    try:
        cache = RulesCache()
        for start in range(0, len(commands), 40):  # five transactions, as five poll batches would be
            sources = source_messages(commands[start:start + 40], settings.commands_topic, first_offset=start)
            result = await process_batch(sources, lambda: PostgresUnitOfWork(pool, cache), BatchConfig(topics, 50))
            assert [o.outcome for o in result.outcomes] == ["applied"] * len(sources)
    finally:
        await pool.close()
    assert await unpublished(settings) == len(commands)  # the "crash": committed, nothing published

    async with TopicReader(settings, settings.events_topic) as reader:
        await reader.poll()
        assert reader.records == []
        async with running_worker(settings):
            events = await events_for(reader, {c["command_id"] for c in commands}, timeout=30)
            await wait_outbox_drained(settings)
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


async def outage_retries(port: int) -> float:
    """The worker's orderstatus_outage_retries_total, summed over dependencies, from its /metrics."""
    status, body = await get(port, "/metrics")
    assert status == 200, body
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("orderstatus_outage_retries_total{"))


async def worker_retried(worker: asyncio.Task, port: int, at_least: float) -> bool:
    """The worker is still running and has counted `at_least` outage retries."""
    assert not worker.done(), "the worker gave up during the outage"
    return await outage_retries(port) >= at_least


async def test_postgres_outage_pauses_without_dlq_and_resumes_exactly_once(settings):
    """Postgres stopped mid-stream and restarted: no dead letters, every command applied once, every event out."""
    data_dir = scratch_dir("orderstatus-fault-pg-")
    pg = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(pg.start)
    restarted = None
    try:
        await asyncio.to_thread(migrate, pg.url)
        private = on_database(settings, pg.url, http_port=free_port())
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
                # it keeps backing off and retrying (counted), rather than giving up
                retries = await outage_retries(private.http_port)
                await wait_until(lambda: worker_retried(worker, private.http_port, retries + 2), 30,
                                 "two more outage retries of the worker")
                await dlq.poll()
                assert dlq.records == [], "an outage sent commands to the DLQ"
                restarted = EmbeddedPostgres(data_dir, port=pg.port)
                await asyncio.to_thread(restarted.start)
                assert await processed_count(private) < len(commands), "finished before the outage"
                await producing
                await wait_readiness(private.http_port, True, 15)
                await events_for(reader, {c["command_id"] for c in commands}, timeout=40)
                await wait_outbox_drained(private)
            await reader.poll()
            await dlq.poll()
            assert dlq.records == [], "an outage sent commands to the DLQ"
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(private, commands, events)
    finally:
        await asyncio.to_thread((restarted or pg).stop)


async def test_broker_outage_pauses_and_resumes_with_every_event_published(settings):
    """The broker frozen mid-stream (SIGSTOP) and resumed: every command applied once, every event published."""
    broker = new_broker("worker-fault")
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
                # and it stays not ready while frozen
                await assert_stays_not_ready(private.http_port, 6 - (time.monotonic() - frozen_at), kafka=False)
                assert not worker.done(), "the worker gave up during the outage"
            finally:
                broker.resume()
            await asyncio.wait_for(producing, 45)
            async with TopicReader(private, private.events_topic) as reader:
                await events_for(reader, {c["command_id"] for c in commands}, timeout=40)
                await wait_outbox_drained(private)
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
    broker = new_broker("worker-fault")
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
        await wait_outbox_drained(private)
        logged = len(worker.text())
        await asyncio.to_thread(broker.stop)
        await wait_until(lambda: all(failure in worker.text()[logged:] for failure in (
            "Failed fetch messages", "Group Coordinator Request failed")), 30,
            "the worker's log of failing fetches and heartbeats")
        assert await worker.terminate(timeout=30) == 0, worker.tail()
        assert "Traceback" not in worker.text(), worker.tail()
        await assert_applied_once(private, commands)
    finally:
        if worker is not None:
            worker.close()
        await asyncio.to_thread(broker.stop)


@pytest.mark.parametrize("command", ["worker", "notifier"])
async def test_sigterm_while_postgres_is_unreachable_at_start_up_exits_0(cli_env, command):
    """A process still waiting for its first Postgres connection stops on SIGTERM, promptly and with exit 0."""
    env = {**cli_env, "ORDERSTATUS_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/orderstatus",
           "ORDERSTATUS_RETRY_MAX_S": "30"}
    process = ServiceProcess(command, env, f"sigterm-no-postgres-{command}")
    try:
        await wait_until(lambda: "outage, backing off" in process.text(), 30, "the first Postgres backoff")
        started = time.monotonic()
        assert await process.terminate(timeout=10) == 0, process.tail()
        assert time.monotonic() - started < 5, process.tail()
        assert "Traceback" not in process.text(), process.tail()
    finally:
        process.close()
