"""Broker faults of a three-broker Apache Kafka cluster (replication factor 3, min.insync.replicas=2)
under a live stream (DESIGN §7.3, §7.4, §7.6).

`orderstatus worker` and `orderstatus notifier` run as real processes with their default settings while
commands keep flowing, each order's on its own: chains of manager commands with `expected_status`
(tests/helpers/command_chains.py) that each email the order's contact, so a lost, doubled or reordered
command shows up as a `stale_status` rejection, a wrong version, a missing event or a missing or second
email. Meanwhile the test kills -9 the broker leading most of the partitions in use, then the active
KRaft controller, stops one broker cleanly (restarting each), and kills two brokers at once (no quorum,
no acknowledgement) before restarting both.

It measures how long each fault held the output up, from what reached the outside (events read by a
reader without a group, emails at the SMTP sink): the largest gap between consecutive arrivals after
it, for the whole output and for the worst partition or order, and the time until every order had an
event and an email of a command sent after it. The figures go to `cluster-fault-pauses.json` in the
test's scratch folder and to the test's output (`-s`)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass

import pytest

from service.adapters.kafka.admin import create_topics
from service.adapters.kafka.clients import make_producer
from service.devkit.embedded import scratch_dir
from service.notifier.rendering import EVENT_ID_HEADER
from service.runtime.settings import Settings
from tests.helpers.arrivals import Arrivals
from tests.helpers.command_chains import CONFIRMED, ON_HOLD, assert_exactly_once, wait_outbox_drained
from tests.helpers.commands import change
from tests.helpers.database import seed_database, url_of
from tests.helpers.kafka_cluster import OFFSETS_TOPIC, partition_states, wait_active_controller, wait_fully_replicated
from tests.helpers.processes import ServiceProcess
from tests.helpers.topics import TopicReader
from tests.helpers.waiting import wait_until

PARTITIONS = 3
# two orders on each of the three partitions (murmur2 of the order id)
ORDER_IDS = [9001, 9005, 9002, 9011, 9003, 9004]
ORDERS = [{"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
           "contacts": [{"email": f"ann.{oid}@example.com", "name": "Ann", "kind": "client"}],
           "payments_total": "0.00"} for oid in ORDER_IDS]
RECIPIENT = {o["order_id"]: o["contacts"][0]["email"] for o in ORDERS}
SEND_GAP_S = 0.1  # between one order's commands: ~60 commands/s in all


@pytest.fixture(scope="module")
def kafka_bootstrap(kafka_cluster):
    """Every client of this module (the settings, the `orderstatus` subprocesses) talks to the cluster."""
    return kafka_cluster.bootstrap_servers


def command(order_id: int, step: int) -> dict:
    to, expected = (ON_HOLD, CONFIRMED) if step % 2 == 0 else (CONFIRMED, ON_HOLD)
    return change(order_id, to, role="manager", expected_status=expected, note={"text": f"step {step}"})


class Flow:
    """The upstream producers: for each order, its commands one after the other, each acknowledged (acks=all,
    idempotent: the service's own producer settings) before the next is sent, until stopped. The orders do
    not wait for each other, so a partition without a leader holds up only its own orders. A command the
    cluster does not acknowledge is sent again with the same id (the worker dedupes it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.commands: list[dict] = []
        self.acked_at: dict[str, float] = {}
        self.acks: dict[int, list[float]] = {oid: [] for oid in ORDER_IDS}
        self.resends: list[str] = []

    async def run(self, stop: asyncio.Event) -> None:
        producer = make_producer(self.settings)
        await producer.start()
        try:
            await asyncio.gather(*(self._order(producer, oid, stop) for oid in ORDER_IDS))
        finally:
            await producer.stop()

    async def _order(self, producer, order_id: int, stop: asyncio.Event) -> None:
        step = 0
        while not stop.is_set():
            c = command(order_id, step)
            while True:
                try:
                    await (await producer.send(self.settings.commands_topic, json.dumps(c).encode(),
                                               key=str(order_id).encode()))
                    break
                except Exception as exc:  # not acknowledged: the same command again
                    self.resends.append(f"{time.monotonic():.1f} order {order_id}: {exc!r}")
                    await asyncio.sleep(0.5)
            now = time.monotonic()
            self.commands.append(c)
            self.acked_at[c["command_id"]] = now
            self.acks[order_id].append(now)
            step += 1
            await asyncio.sleep(SEND_GAP_S)

    def rounds(self) -> int:
        return min(len(times) for times in self.acks.values())


@dataclass
class Fault:
    name: str
    node_ids: list[int]
    at: float  # time.monotonic() when the test began it
    detail: str = ""
    took_s: float = 0.0  # how long the action took (a restart: until the cluster lists the node again)


async def wait_resumed(arrivals: Arrivals, flow: Flow, since: float, timeout: float = 240) -> None:
    """Until every order has an event, and an email, of a command acknowledged after `since`."""
    await wait_until(lambda: resumed_at(arrivals, flow, since) is not None, timeout,
                     "events and emails of new commands for every order", interval=0.2)


def resumed_at(arrivals: Arrivals, flow: Flow, since: float) -> float | None:
    """When every order had an event and an email of a command acknowledged after `since` (None: not yet)."""
    first_event: dict[int, float] = {}
    order_of: dict[str, int] = {}
    for a in arrivals.events:
        cid = a.value.get("command_id")
        if cid and flow.acked_at.get(cid, 0) > since:
            first_event.setdefault(a.value["order_id"], a.at)
            order_of[a.value["event_id"]] = a.value["order_id"]
    first_mail: dict[int, float] = {}
    for at, event_id in arrivals.mails:
        if event_id in order_of:
            first_mail.setdefault(order_of[event_id], at)
    if len(first_event) < len(ORDER_IDS) or len(first_mail) < len(ORDER_IDS):
        return None
    return max(*first_event.values(), *first_mail.values())


def pauses(times: list[float], marks: list[float]) -> list[float]:
    """For each mark, the largest gap between consecutive times among the gaps that ended after it and
    before the next mark: a gap spanning a mark (the output stopped at a fault) is that mark's pause."""
    ordered = sorted(times)
    largest = [0.0] * len(marks)
    for a, b in zip(ordered, ordered[1:]):
        owner = max((i for i, mark in enumerate(marks) if mark < b), default=None)
        if owner is not None:
            largest[owner] = max(largest[owner], b - a)
    return [round(x, 2) for x in largest]


async def leaders_by_node(settings: Settings) -> tuple[Counter, dict]:
    topics = [settings.commands_topic, settings.events_topic, OFFSETS_TOPIC]
    states = await partition_states(settings, topics)
    return Counter(leader for leader, _ in states.values()), states


def led_by(states: dict, node_id: int) -> str:
    return "led " + (", ".join(f"{t}-{p}" for (t, p), (leader, _) in sorted(states.items()) if leader == node_id)
                     or "no partition in use")


def worst(groups: list[list[float]], marks: list[float]) -> list[float]:
    """Per mark, the largest pause of any one group (a partition, an order)."""
    per_group = [pauses(times, marks) for times in groups]
    return [max(values) for values in zip(*per_group)]


def figures(arrivals: Arrivals, flow: Flow, faults: list[Fault], baseline_from: float, began: float) -> dict:
    """The pause each fault caused, from what reached the outside, as JSON. `all_*` is the longest time
    nothing at all came out; `partition_*`/`order_*` the longest any one partition or order was held up."""
    marks = [baseline_from] + [f.at for f in faults]
    wall = time.time() - time.monotonic()  # CreateTime is wall-clock time
    order_of_event = {a.value.get("event_id"): a.value.get("order_id") for a in arrivals.events}
    partitions = sorted({a.partition for a in arrivals.events})
    figures_by_mark = {
        "all_events_gap_s": pauses([a.at for a in arrivals.events], marks),
        "partition_events_gap_s": worst([[a.at for a in arrivals.events if a.partition == p] for p in partitions],
                                        marks),
        "partition_events_gap_by_create_time_s": worst(
            [[a.create_time_s - wall for a in arrivals.events if a.partition == p] for p in partitions], marks),
        "all_emails_gap_s": pauses([t for t, _ in arrivals.mails], marks),
        "order_emails_gap_s": worst([[t for t, e in arrivals.mails if order_of_event.get(e) == oid]
                                     for oid in ORDER_IDS], marks),
        "order_upstream_acks_gap_s": worst(list(flow.acks.values()), marks),
    }
    # how long after its acknowledgement a command's event was read: the largest per mark (by the event's arrival)
    first_arrival: dict[str, float] = {}
    for a in arrivals.events:
        first_arrival.setdefault(a.value.get("command_id"), a.at)
    lag = [0.0] * len(marks)
    for cid, acked in flow.acked_at.items():
        arrived = first_arrival.get(cid)
        owner = None if arrived is None else max((i for i, mark in enumerate(marks) if mark < arrived), default=None)
        if owner is not None:
            lag[owner] = max(lag[owner], arrived - acked)
    figures_by_mark["largest_ack_to_event_s"] = [round(x, 2) for x in lag]
    rows = []
    for i, mark in enumerate(marks):
        fault = faults[i - 1] if i else None
        back = resumed_at(arrivals, flow, mark)
        rows.append({
            "what": fault.name if fault else "baseline (no fault)",
            "nodes": fault.node_ids if fault else [],
            "detail": fault.detail if fault else "",
            "at_s": round(mark - began, 1),
            "action_took_s": round(fault.took_s, 2) if fault else 0.0,
            "caught_up_after_s": None if back is None else round(back - mark, 2),
            **{name: values[i] for name, values in figures_by_mark.items()},
        })
    event_ids = [a.value.get("event_id") for a in arrivals.events]
    return {"commands": len(flow.commands), "events_read": len(arrivals.events),
            "events_published_twice": len(event_ids) - len(set(event_ids)), "emails": len(arrivals.mails),
            "upstream_resends": flow.resends, "marks": rows}


@pytest.mark.timeout(1500)
async def test_apache_broker_and_controller_faults_under_a_stream_lose_nothing_and_double_nothing(
        kafka_cluster, settings, cli_env, mailbox):
    """Broker and controller kills, a clean stop, two brokers down and the restarts mid-stream: each command applied once, events in version order, one email per event."""
    await seed_database(url_of(settings), ORDERS)
    await create_topics(settings, PARTITIONS, 3)
    in_use = [settings.commands_topic, settings.events_topic, settings.dlq_topic, OFFSETS_TOPIC]
    worker = ServiceProcess("worker", cli_env, "cluster-worker")
    notifier = ServiceProcess("notifier", cli_env, "cluster-notifier")
    faults: list[Fault] = []
    stop_flow, stop_reading = asyncio.Event(), asyncio.Event()
    flow = Flow(settings)
    try:
        await worker.wait_assigned(90)
        await notifier.wait_assigned(90)
        async with TopicReader(settings, settings.events_topic) as reader:
            arrivals = Arrivals(reader, mailbox)
            reading = asyncio.create_task(arrivals.run(stop_reading))
            producing = asyncio.create_task(flow.run(stop_flow))
            began = time.monotonic()
            await wait_resumed(arrivals, flow, began)
            await wait_fully_replicated(settings, in_use)
            baseline_from = time.monotonic()
            await wait_until(lambda: flow.rounds() >= 100, 120, "100 commands of every order")

            def index_of(node_id: int) -> int:
                return next(i for i, n in enumerate(kafka_cluster.nodes) if n.node_id == node_id)

            async def fault(name: str, node_ids: list[int], act, detail: str = "") -> None:
                record = Fault(name, node_ids, time.monotonic(), detail)
                faults.append(record)
                print(f"\n[{record.at - began:6.1f}s] {name} (node {', '.join(map(str, node_ids))}) {detail}", flush=True)
                for node_id in node_ids:
                    await asyncio.to_thread(act, index_of(node_id))
                record.took_s = time.monotonic() - record.at
                await wait_resumed(arrivals, flow, record.at)
                print(f"[{time.monotonic() - began:6.1f}s] flowing again", flush=True)
                assert not producing.done() and not reading.done()

            async def restart(node_ids: list[int]) -> None:
                await fault("restart", node_ids, lambda i: kafka_cluster.restart(i, 180))
                await wait_fully_replicated(settings, in_use, timeout=180)

            # 1. kill -9 the broker that leads most of the partitions in use (commands, events, group offsets)
            counts, states = await leaders_by_node(settings)
            leader = counts.most_common(1)[0][0]
            await fault("kill -9 of the partition leader", [leader], kafka_cluster.kill, led_by(states, leader))
            await restart([leader])

            # 2. kill -9 the active controller (the metadata quorum's leader)
            controller = await wait_active_controller(kafka_cluster.bootstrap_servers)
            _, states = await leaders_by_node(settings)
            await fault("kill -9 of the active controller", [controller], kafka_cluster.kill,
                        led_by(states, controller))
            await restart([controller])

            # 3. a clean stop (controlled shutdown) of the broker that now leads most partitions in use
            counts, states = await leaders_by_node(settings)
            stopped = counts.most_common(1)[0][0]
            await fault("clean stop", [stopped], kafka_cluster.stop, led_by(states, stopped))
            await restart([stopped])

            # 4. two brokers killed -9 at once: no controller quorum, and no acknowledgement for any partition
            # (every in-sync replica set still names the dead brokers). The outage outlasts the producers'
            # request timeout (30 s), so requests in flight (upstream's and the relay's) time out and are sent
            # again; then both brokers are restarted. One fault, from the kill to the output flowing again.
            counts, states = await leaders_by_node(settings)
            survivor = counts.most_common(1)[0][0]
            down = [n.node_id for n in kafka_cluster.nodes if n.node_id != survivor]
            outage = settings.kafka_request_timeout_ms / 1000 + 5

            record = Fault("kill -9 of two brokers, restarted after the outage", down, time.monotonic(),
                           f"node {survivor} left alone")
            faults.append(record)
            print(f"\n[{record.at - began:6.1f}s] {record.name} (nodes {down})", flush=True)
            for node_id in down:
                await asyncio.to_thread(kafka_cluster.kill, index_of(node_id))
            await wait_until(lambda: time.monotonic() - max(a.at for a in arrivals.events) > outage, outage + 120,
                             f"no event for {outage:g}s")
            for node_id in down:
                await asyncio.to_thread(kafka_cluster.restart, index_of(node_id), 180)
            record.took_s = time.monotonic() - record.at
            await wait_resumed(arrivals, flow, record.at)
            print(f"[{time.monotonic() - began:6.1f}s] flowing again", flush=True)
            await wait_fully_replicated(settings, in_use, timeout=180)

            stop_flow.set()
            await producing
            ids = {c["command_id"] for c in flow.commands}
            await wait_until(lambda: ids <= arrivals.command_ids(), 240, f"events of all {len(ids)} commands")
            await wait_outbox_drained(settings, timeout=120)
            event_ids = {v["event_id"] for v in arrivals.values() if v.get("command_id") in ids}
            await wait_until(lambda: event_ids <= {e for _, e in arrivals.mails}, 240,
                             f"emails of all {len(event_ids)} events")
            stop_reading.set()
            await reading
        assert await worker.terminate(60) == 0, worker.tail()
        assert await notifier.terminate(60) == 0, notifier.tail()

        # every command applied once, in order; each order's events 1..N in order (first appearances)
        events = [v for v in arrivals.values() if v.get("command_id")]
        await assert_exactly_once(settings, flow.commands, events)
        # one email per event, none twice
        mails = Counter((m[EVENT_ID_HEADER], m["To"].addresses[0].addr_spec) for m in mailbox.messages)
        doubled = {pair: n for pair, n in mails.items() if n > 1}
        assert not doubled, f"{len(doubled)} emails sent twice, e.g. {list(doubled)[:3]}"
        expected = {(v["event_id"], RECIPIENT[v["order_id"]]) for v in events}
        assert set(mails) == expected, f"{len(expected - set(mails))} emails missing"

        report = figures(arrivals, flow, faults, baseline_from, began)
        path = scratch_dir("orderstatus-cluster-faults-") / "cluster-fault-pauses.json"
        path.write_text(json.dumps(report, indent=2))
        print(f"\npauses ({path}):\n{json.dumps(report, indent=2)}", flush=True)
    finally:
        stop_flow.set()
        stop_reading.set()
        worker.close()
        notifier.close()
