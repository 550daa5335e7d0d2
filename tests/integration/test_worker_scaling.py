"""Scale-out (DESIGN §7.7): worker processes in one consumer group share a 4-partition commands topic;
members joining, leaving and being killed -9 mid-stream lose nothing and apply nothing twice.

The commands are chains of manager commands with `expected_status` (tests/helpers/command_chains.py): one
applied out of order or twice becomes a `stale_status` rejection, so "all applied" proves per-order order."""

from __future__ import annotations

import asyncio

from aiokafka.partitioner import DefaultPartitioner

from tests.helpers.command_chains import (
    FOUR_PARTITION_ORDER_IDS,
    PARTITIONS,
    CONFIRMED,
    ON_HOLD,
    alternating,
    assert_exactly_once,
    chain_orders,
    processed_by,
    processed_count,
    wait_outbox_drained,
    wait_processed,
)
from tests.helpers.commands import change, override
from tests.helpers.database import fetch, seed
from tests.helpers.processes import ServiceProcess, fast_group_env
from tests.helpers.producing import stream
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

ORDER_IDS = FOUR_PARTITION_ORDER_IDS
ORDERS = chain_orders(ORDER_IDS)


def test_the_orders_cover_every_partition():
    """The scale-out scenarios put work on all four partitions, so every member has something to do."""
    partitioner = DefaultPartitioner()
    all_partitions = list(range(PARTITIONS))
    assert {partitioner(str(o).encode(), all_partitions, all_partitions) for o in ORDER_IDS} == set(all_partitions)


async def _kill_one_of_two_mid_stream(settings, cli_env, commands: list[dict], name: str, *, chunk: int,
                                      busy_at: int, timeout: float) -> tuple[list[dict], int, int]:
    """Two workers take the stream; once both have processed commands, one is SIGKILLed; the survivor
    finishes, drains the outbox and exits 0 on SIGTERM. Returns every event read, the processed count at the
    kill and how many commands the survivor processed."""
    env = fast_group_env(cli_env)
    a = ServiceProcess("worker", env, f"{name}-a")
    b = ServiceProcess("worker", env, f"{name}-b")
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            await a.wait_assigned()
            await b.wait_assigned()
            producing = asyncio.create_task(stream(settings, commands, chunk=chunk, gap=0.05))
            await wait_processed(settings, busy_at, timeout=40)
            # both members have been working before one of them dies
            await wait_until(_both_busy(a, b), 15, "both workers to process commands")
            a.kill9()
            at_kill = await processed_count(settings)
            await producing
            await events_for(reader, {c["command_id"] for c in commands}, timeout=timeout)
            await wait_outbox_drained(settings)
            assert await b.terminate() == 0, b.tail()
            await reader.poll()
            return reader.values(), at_kill, processed_by(b)
    finally:
        a.close()
        b.close()


async def test_two_workers_share_the_partitions_and_a_kill_9_of_one_loses_nothing(settings, cli_env):
    """Two workers split the work; one is SIGKILLed mid-stream; the survivor takes over its partitions in order."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    commands = alternating(ORDER_IDS, 40)
    values, at_kill, by_survivor = await _kill_one_of_two_mid_stream(settings, cli_env, commands, "scale", chunk=8,
                                                                     busy_at=100, timeout=45)
    assert at_kill < len(commands), "everything was done before the kill: the test proved nothing"
    assert by_survivor > 0
    await assert_exactly_once(settings, commands, [v for v in values if v.get("command_id")])


def _both_busy(a: ServiceProcess, b: ServiceProcess):
    async def probe():
        return processed_by(a) > 0 and processed_by(b) > 0

    return probe


async def test_members_joining_and_leaving_mid_stream_hand_partitions_over_in_order(settings, cli_env):
    """A second worker joins mid-stream (rebalance), then the first leaves with SIGTERM: every command applied once, in order."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    commands = alternating(ORDER_IDS, 40)
    a = ServiceProcess("worker", cli_env, "scale-join-a")
    b = None
    try:
        async with TopicReader(settings, settings.events_topic) as reader:
            await a.wait_assigned()
            producing = asyncio.create_task(stream(settings, commands, chunk=4, gap=0.2))  # ~16 s of flow
            await wait_processed(settings, 40, timeout=30)
            b = ServiceProcess("worker", cli_env, "scale-join-b")  # joins while `a` is busy: `a` must give partitions up
            await b.wait_assigned()
            await wait_until(_both_busy(a, b), 20, "both workers to process commands")
            assert await processed_count(settings) < len(commands), "finished before the handover: proved nothing"
            assert await a.terminate() == 0, a.tail()  # leaves the group: `b` takes every partition
            await producing
            await events_for(reader, {c["command_id"] for c in commands}, timeout=45)
            await wait_outbox_drained(settings)
            assert await b.terminate() == 0, b.tail()
            await reader.poll()
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(settings, commands, events)
        assert len(events) == len(commands), "clean handovers should not publish anything twice"
    finally:
        a.close()
        if b is not None:
            b.close()


def mixed_changes_and_overrides(order_ids: list[int], rounds: int) -> list[dict]:
    """Per round: a change of every order, then an override of all of them; no `expected_status`, so each
    applies whatever the other partition's commands did first (or is a no_change rejection)."""
    commands = []
    for i in range(rounds):
        status = ON_HOLD if i % 2 == 0 else CONFIRMED
        commands += [change(oid, status, role="manager", notify=False) for oid in order_ids]
        commands.append(override([(oid, CONFIRMED if status == ON_HOLD else ON_HOLD) for oid in order_ids],
                                 notify=False))
    return commands


async def test_override_and_change_events_of_an_order_keep_version_order_across_workers(settings, cli_env):
    """Overrides (keyed by command id: any partition) and changes (keyed by order) of the same orders, two
    workers, one SIGKILLed mid-stream: every order's events reach the topic in version order, 1..N with
    nothing missing, N its version in Postgres — an order's events are published by one relay, whichever
    worker decided them."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    commands = mixed_changes_and_overrides(ORDER_IDS, 30)
    values, _, _ = await _kill_one_of_two_mid_stream(settings, cli_env, commands, "order", chunk=9, busy_at=90,
                                                     timeout=60)
    changed = [v for v in values if v.get("type") == "OrderStatusChanged"]
    versions = {r["order_id"]: r["version"] for r in await fetch(settings, "SELECT order_id, version FROM orders")}
    seen: set[str] = set()
    by_order: dict[int, list[int]] = {oid: [] for oid in ORDER_IDS}
    for event in changed:  # a kill -9 may publish an event twice: its first appearance counts
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            by_order[event["order_id"]].append(event["version"])
    overridden = {e["order_id"] for e in changed if e["override"]}
    assert overridden == set(ORDER_IDS)  # the overrides did change every order, so the proof covers them
    for oid in ORDER_IDS:
        assert by_order[oid] == list(range(1, versions[oid] + 1)), (oid, by_order[oid])

