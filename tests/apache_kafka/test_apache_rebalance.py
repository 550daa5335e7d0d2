"""Consumer-group rebalances on Apache Kafka with the real timings (DESIGN §7.3, §7.7).

The worker processes run with the service's defaults: `ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS` 10 s and a
3 s heartbeat, not the shortened session of `fast_group_env` that tests/integration/test_worker_scaling.py
uses; and Apache Kafka's group coordinator, which waits for every member to rejoin and for a dead member's
session to expire, as production does. The commands are chains with `expected_status`
(tests/helpers/command_chains.py): one applied twice or out of order becomes a `stale_status` rejection.
Each test prints how long the rebalance held the output up (the largest gap between events reaching a
reader)."""

from __future__ import annotations

import asyncio
import time

import pytest

from service.runtime.settings import Settings
from tests.helpers.arrivals import Arrivals, largest_gap
from tests.helpers.command_chains import (
    FOUR_PARTITION_ORDER_IDS,
    PARTITIONS,
    alternating,
    assert_exactly_once,
    chain_orders,
    processed_by,
    processed_count,
    wait_outbox_drained,
    wait_processed,
)
from tests.helpers.database import seed
from tests.helpers.processes import ServiceProcess
from tests.helpers.producing import stream
from tests.helpers.topics import TopicReader
from tests.helpers.waiting import wait_until

ORDER_IDS = FOUR_PARTITION_ORDER_IDS
ORDERS = chain_orders(ORDER_IDS)
DEFAULTS = Settings.model_fields


def assigned(worker: ServiceProcess) -> set[int]:
    """The partitions the worker's last assignment gave it."""
    lines = [line for line in worker.log_lines() if line.get("event") == "partitions assigned"]
    return {int(p.rsplit(":", 1)[1]) for p in lines[-1]["partitions"]} if lines else set()


def assert_real_group_timings(env: dict[str, str]) -> None:
    """The workers run with the service's own session timeout and heartbeat, not a test's."""
    assert "ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS" not in env or (
        int(env["ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS"]) == DEFAULTS["kafka_session_timeout_ms"].default)
    assert "ORDERSTATUS_KAFKA_HEARTBEAT_INTERVAL_MS" not in env or (
        int(env["ORDERSTATUS_KAFKA_HEARTBEAT_INTERVAL_MS"]) == DEFAULTS["kafka_heartbeat_interval_ms"].default)


@pytest.mark.timeout(600)
async def test_apache_a_worker_joining_mid_stream_shares_the_partitions_without_loss_or_double(settings, cli_env):
    """A second worker joins a busy one mid-stream (a real rebalance): both work, every command applied once, in order."""
    assert_real_group_timings(cli_env)
    await seed(settings, ORDERS, partitions=PARTITIONS)
    commands = alternating(ORDER_IDS, 150)  # ~25 s of flow at 8 commands per 0.15 s
    first = ServiceProcess("worker", cli_env, "apache-join-a")
    second = None
    stop_reading = asyncio.Event()
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            arrivals = Arrivals(reader)
            reading = asyncio.create_task(arrivals.run(stop_reading))
            await first.wait_assigned(90)
            producing = asyncio.create_task(stream(settings, commands, chunk=len(ORDER_IDS), gap=0.15))
            await wait_processed(settings, 80, timeout=60)
            joined_at = time.monotonic()
            second = ServiceProcess("worker", cli_env, "apache-join-b")
            await second.wait_assigned(90)
            handed_over = time.monotonic()
            await wait_until(lambda: processed_by(first) > 0 and processed_by(second) > 0, 60,
                             "both workers to process commands")
            assert await processed_count(settings) < len(commands), "the stream ended before the join: proved nothing"
            await wait_until(lambda: assigned(first) and assigned(second) and not assigned(first) & assigned(second)
                             and len(assigned(first) | assigned(second)) == PARTITIONS, 30,
                             "the partitions split between the two workers")
            await producing
            ids = {c["command_id"] for c in commands}
            await wait_until(lambda: ids <= arrivals.command_ids(), 90, f"events of all {len(ids)} commands")
            await wait_outbox_drained(settings, timeout=30)
            stop_reading.set()
            await reading
        assert await first.terminate(60) == 0, first.tail()
        assert await second.terminate(60) == 0, second.tail()
        events = [v for v in arrivals.values() if v.get("command_id")]
        await assert_exactly_once(settings, commands, events)
        assert len(events) == len(commands), "a clean handover should not publish anything twice"
        def worst_partition_gap(start: float, end: float) -> float:
            return max(largest_gap([a.at for a in arrivals.events if a.partition == p], start, end)
                       for p in range(PARTITIONS))

        output = largest_gap([a.at for a in arrivals.events], joined_at, handed_over + 5)
        print(f"\njoin: the new member was assigned {handed_over - joined_at:.1f}s after its process started; "
              f"around the rebalance the output paused {output:.2f}s, the worst partition "
              f"{worst_partition_gap(joined_at, handed_over + 5):.2f}s "
              f"(before it: {worst_partition_gap(arrivals.events[0].at, joined_at - 1):.2f}s)")
    finally:
        stop_reading.set()
        first.close()
        if second is not None:
            second.close()


@pytest.mark.timeout(600)
async def test_apache_a_worker_killed_9_mid_stream_is_replaced_after_the_real_session_timeout(settings, cli_env):
    """One of two workers killed -9 mid-stream: after the real session timeout the survivor finishes its partitions, nothing lost or applied twice."""
    assert_real_group_timings(cli_env)
    await seed(settings, ORDERS, partitions=PARTITIONS)
    commands = alternating(ORDER_IDS, 200)  # ~35 s of flow: the session timeout runs out mid-stream
    a = ServiceProcess("worker", cli_env, "apache-kill-a")
    b = ServiceProcess("worker", cli_env, "apache-kill-b")
    stop_reading = asyncio.Event()
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            arrivals = Arrivals(reader)
            reading = asyncio.create_task(arrivals.run(stop_reading))
            await a.wait_assigned(90)
            await b.wait_assigned(90)
            await wait_until(lambda: len(assigned(a)) + len(assigned(b)) == PARTITIONS, 60,
                             "the group to settle with both workers")
            producing = asyncio.create_task(stream(settings, commands, chunk=len(ORDER_IDS), gap=0.15))
            await wait_until(lambda: processed_by(a) > 0 and processed_by(b) > 0, 60, "both workers to process")
            await wait_processed(settings, 200, timeout=60)
            orphaned = assigned(a)
            a.kill9()
            killed_at = time.monotonic()
            assert await processed_count(settings) < len(commands) / 2, "too little left after the kill"
            # the survivor takes the dead member's partitions once its session has expired
            await wait_until(lambda: assigned(b) == set(range(PARTITIONS)), 90, "the survivor to own every partition")
            taken_over = time.monotonic()
            await producing
            ids = {c["command_id"] for c in commands}
            await wait_until(lambda: ids <= arrivals.command_ids(), 90, f"events of all {len(ids)} commands")
            await wait_outbox_drained(settings, timeout=30)
            stop_reading.set()
            await reading
        assert await b.terminate(60) == 0, b.tail()
        events = [v for v in arrivals.values() if v.get("command_id")]
        await assert_exactly_once(settings, commands, events)
        # events are keyed by order like commands, so the orphaned partitions' events tell their pause
        orphaned_pause = largest_gap([x.at for x in arrivals.events if x.partition in orphaned], killed_at, taken_over + 5)
        own_pause = largest_gap([x.at for x in arrivals.events if x.partition not in orphaned], killed_at, taken_over + 5)
        session = int(cli_env.get("ORDERSTATUS_KAFKA_SESSION_TIMEOUT_MS", DEFAULTS["kafka_session_timeout_ms"].default))
        print(f"\nkill -9: the survivor owned every partition {taken_over - killed_at:.1f}s after the kill "
              f"(session.timeout.ms {session}); the killed worker's partitions {sorted(orphaned)} paused "
              f"{orphaned_pause:.2f}s, the survivor's own partitions {own_pause:.2f}s")
    finally:
        stop_reading.set()
        a.close()
        b.close()
