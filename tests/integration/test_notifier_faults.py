"""Fault tests: the notifier against real infrastructure that we break on purpose (DESIGN §7.2, §7.4, §7.6).

Every scenario streams OrderStatusChanged events for four orders with three contacts each over a
three-partition events topic, breaks something mid-stream, and then accounts for every
(event_id, recipient) pair: one claim row (attempt 1), at most one email, and exactly one email for
every row recorded `sent`. A skipped event shows up as a pair without a row or an email, a doubled
send as a second email. Postgres and the broker are private to their test (stopping or freezing
the session-wide ones would disturb every other test); SMTP is the session sink (`mailbox`)."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections import Counter

from service.adapters.postgres.connection import connect, migrate
from service.contract.events import OrderStatusChanged
from service.devkit.embedded import EmbeddedPostgres, free_port, scratch_dir
from tests.helpers.brokers import new_broker
from service.notifier.rendering import EVENT_ID_HEADER
from service.runtime.settings import Settings
from tests.helpers.database import fetch, on_database, seed, url_of
from tests.helpers.events import changed
from tests.helpers.offsets import committed_offsets
from tests.helpers.probes import assert_stays_not_ready, wait_readiness
from tests.helpers.processes import ServiceProcess, fast_group_env
from tests.helpers.producing import stream
from tests.helpers.services import running_notifier
from tests.helpers.waiting import wait_until

PARTITIONS = 3
ORDER_IDS = [801, 802, 803, 804]
ORDERS = [
    {"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
     "contacts": [{"email": f"ann.{oid}@example.com", "name": "Ann", "kind": "client"},
                  {"email": f"bob.{oid}@example.com", "kind": "client"},
                  {"email": f"pm.{oid}@example.com", "name": "Pat", "kind": "stakeholder"}]}
    for oid in ORDER_IDS
]
RECIPIENTS = {o["order_id"]: sorted(c["email"] for c in o["contacts"]) for o in ORDERS}

Pair = tuple[str, str]  # (event_id, recipient)


# ------------------------------------------------------------------------------------------ helpers


def make_events(per_order: int) -> list[OrderStatusChanged]:
    """`per_order` events for each order, interleaved across the orders (and so across partitions)."""
    return [changed(oid, version=v, note=f"step {v}") for v in range(1, per_order + 1) for oid in ORDER_IDS]


def pairs(events: list[OrderStatusChanged]) -> set[Pair]:
    return {(e.event_id, r) for e in events for r in RECIPIENTS[e.order_id]}


async def stream_events(settings: Settings, events: list[OrderStatusChanged], chunk: int = 4,
                        gap: float = 0.1) -> dict[str, tuple[int, int]]:
    """Publish the events keyed by order id in chunks; returns each event's (partition, offset)."""
    placed = await stream(settings, events, settings.events_topic, chunk=chunk, gap=gap)
    return {e.event_id: (m.partition, m.offset) for e, m in zip(events, placed)}


def mail_counts(sink, events: list[OrderStatusChanged]) -> Counter:
    """How many emails the sink holds per (event_id, recipient) of these events."""
    ids = {e.event_id for e in events}
    counts: Counter = Counter()
    for message in sink.messages:
        event_id = message[EVENT_ID_HEADER]
        if event_id in ids:
            counts[(event_id, message["To"].addresses[0].addr_spec)] += 1
    return counts


async def claim_rows(settings: Settings) -> dict[Pair, list[tuple[int, str]]]:
    """Every sent_notifications row as (attempt, status), by (event_id, recipient)."""
    rows = await fetch(settings, "SELECT event_id::text, recipient, attempt, status FROM sent_notifications "
                                 "ORDER BY event_id, recipient, attempt")
    claims: dict[Pair, list[tuple[int, str]]] = {}
    for r in rows:
        claims.setdefault((r["event_id"], r["recipient"]), []).append((r["attempt"], r["status"]))
    return claims


async def notifier_offsets(settings: Settings) -> dict[int, int]:
    """The notifier group's committed offsets on the events topic, by partition (0 where none)."""
    found = await committed_offsets(settings, settings.notifier_group, settings.events_topic)
    return {p: offset or 0 for p, offset in found.items()}


async def assert_all_committed(settings: Settings, placed: dict[str, tuple[int, int]]) -> None:
    """The group's offsets stand right after the last published event of each partition."""
    ends = {p: 0 for p in range(PARTITIONS)}
    for partition, offset in placed.values():
        ends[partition] = max(ends[partition], offset + 1)
    committed = await notifier_offsets(settings)
    assert committed == ends, f"notifier group committed {committed}, the events end at {ends}"


async def assert_each_email_once(settings: Settings, sink, events: list[OrderStatusChanged]) -> None:
    """Every (event, recipient) pair: exactly one email in the sink and one `sent` row, attempt 1."""
    expected = pairs(events)
    counts = mail_counts(sink, events)
    doubled = {p: n for p, n in counts.items() if n > 1}
    assert not doubled, f"{len(doubled)} emails sent more than once, e.g. {list(doubled.items())[:3]}"
    missing = expected - set(counts)
    assert not missing, f"{len(missing)} of {len(expected)} emails never sent, e.g. {sorted(missing)[:3]}"
    assert set(counts) == expected
    claims = await claim_rows(settings)
    wrong = {p: c for p, c in claims.items() if c != [(1, "sent")]}
    assert not wrong, f"claim rows other than one 'sent' attempt: {list(wrong.items())[:3]}"
    assert set(claims) == expected


async def all_mailed(sink, events: list[OrderStatusChanged], timeout: float) -> None:
    expected = pairs(events)
    await wait_until(lambda: set(mail_counts(sink, events)) >= expected, timeout,
                     f"all {len(expected)} emails (have {len(mail_counts(sink, events))})")


# -------------------------------------------------------------------------------------------- tests


async def test_postgres_outage_pauses_the_notifier_and_every_email_goes_out_once(settings, mailbox):
    """Postgres stopped mid-stream and restarted: not ready and no email while down, then every email exactly once."""
    data_dir = scratch_dir("orderstatus-notifier-pg-")
    pg = EmbeddedPostgres(data_dir)
    await asyncio.to_thread(pg.start)
    restarted = None
    try:
        await asyncio.to_thread(migrate, pg.url)
        port = free_port()
        private = on_database(settings, pg.url, notifier_http_port=port)
        await seed(private, ORDERS, partitions=PARTITIONS)
        events = make_events(30)  # 120 events, 360 emails, published over ~3 s
        async with running_notifier(private) as notifier:
            await wait_readiness(port, True, 15)
            producing = asyncio.create_task(stream_events(private, events))
            await wait_until(lambda: len(mail_counts(mailbox, events)) >= 60, 30, "the first 60 emails")
            await asyncio.to_thread(pg.stop)
            assert len(mail_counts(mailbox, events)) < len(pairs(events)), "finished before the outage"
            await wait_readiness(port, False, 10, database=False)
            # while Postgres is down nothing can be claimed, so nothing is sent; /readyz keeps saying so
            quiet = len(mailbox.messages)
            await assert_stays_not_ready(port, 2.5, database=False)
            assert len(mailbox.messages) == quiet, "an email went out while its claim could not be recorded"
            assert not notifier.done(), "the notifier gave up during the outage"
            restarted = EmbeddedPostgres(data_dir, port=pg.port)
            await asyncio.to_thread(restarted.start)
            await wait_readiness(port, True, 20)
            placed = await asyncio.wait_for(producing, 30)
            await all_mailed(mailbox, events, 30)
        await assert_all_committed(private, placed)
        await assert_each_email_once(private, mailbox, events)
    finally:
        await asyncio.to_thread((restarted or pg).stop)


async def test_broker_frozen_mid_stream_then_every_email_goes_out_once(settings, mailbox):
    """The broker frozen for 6 s mid-stream (SIGSTOP) and resumed: not ready meanwhile, then every email exactly once."""
    broker = new_broker("notifier-fault")
    await asyncio.to_thread(broker.start)
    try:
        port = free_port()
        private = settings.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers,
                                              "notifier_http_port": port})
        await seed(private, ORDERS, partitions=PARTITIONS)
        events = make_events(30)
        async with running_notifier(private) as notifier:
            await wait_readiness(port, True, 15)
            producing = asyncio.create_task(stream_events(private, events))
            await wait_until(lambda: len(mail_counts(mailbox, events)) >= 60, 30, "the first 60 emails")
            broker.pause()
            try:
                frozen_at = time.monotonic()
                assert len(mail_counts(mailbox, events)) < len(pairs(events)), "finished before the outage"
                await wait_readiness(port, False, 6, kafka=False)
                await assert_stays_not_ready(port, 6 - (time.monotonic() - frozen_at), kafka=False)
                assert not notifier.done(), "the notifier gave up during the outage"
            finally:
                broker.resume()
            placed = await asyncio.wait_for(producing, 30)
            await all_mailed(mailbox, events, 40)
            await wait_readiness(port, True, 20)
        await assert_all_committed(private, placed)
        await assert_each_email_once(private, mailbox, events)
    finally:
        await asyncio.to_thread(broker.stop)


async def test_kill_9_mid_stream_sends_nothing_twice_and_leaves_only_reported_doubts(settings, cli_env, mailbox):
    """kill -9 mid-stream, then a new notifier: no email twice, every `sent` row mailed, sent + in-doubt cover every pair."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    events = make_events(50)  # 200 events, 600 emails, all published at once
    expected = pairs(events)
    env = fast_group_env(cli_env)
    first = ServiceProcess("notifier", env, "notifier-kill9-first")
    second = None
    try:
        await first.wait_assigned()
        placed = await stream_events(settings, events, chunk=len(events), gap=0)
        await wait_until(lambda: len(mail_counts(mailbox, events)) >= 150, 30, "the first 150 emails")
        first.kill9()
        assert first.proc.returncode == -signal.SIGKILL
        at_kill = await claim_rows(settings)
        mailed_at_kill = mail_counts(mailbox, events)
        assert len(at_kill) < len(expected), "the notifier finished before the kill: the test proved nothing"
        # handled but not committed: the successor gets these again and must recognise every claim
        committed = await notifier_offsets(settings)
        handled = {p[0] for p in at_kill}
        redelivered = [e for e in events if e.event_id in handled
                       and placed[e.event_id][1] >= committed[placed[e.event_id][0]]]
        assert redelivered, "the kill hit a commit boundary: no redelivered event to prove dedupe with"
        # the crash window made certain: a claim as a kill inside DATA leaves it, on an event not reached yet
        planted_event = events[-1]
        planted = (planted_event.event_id, RECIPIENTS[planted_event.order_id][0])
        assert not any(p[0] == planted_event.event_id for p in at_kill)
        conn = await connect(url_of(settings))
        try:
            await conn.execute("INSERT INTO sent_notifications (event_id, recipient, attempt, status) "
                               "VALUES ($1, $2, 1, 'sending')", uuid.UUID(planted[0]), planted[1])
        finally:
            await conn.close()

        second = ServiceProcess("notifier", env, "notifier-kill9-second")

        async def every_pair_claimed_and_settled():
            claims = await claim_rows(settings)
            open_claims = {p for p, c in claims.items() if c[-1][1] == "sending"} - set(at_kill) - {planted}
            return set(claims) >= expected and not open_claims

        await wait_until(every_pair_claimed_and_settled, 45, "a settled claim for every pair", interval=0.2)
        assert await second.terminate() == 0, second.tail()
        await assert_all_committed(settings, placed)

        claims = await claim_rows(settings)
        counts = mail_counts(mailbox, events)
        assert set(claims) == expected
        assert all(len(c) == 1 and c[0][0] == 1 for c in claims.values()), "a pair was claimed twice"
        doubled = {p: n for p, n in counts.items() if n > 1}
        assert not doubled, f"emails sent twice: {list(doubled.items())[:3]}"
        sent = {p for p, c in claims.items() if c[0][1] == "sent"}
        in_doubt = {p for p, c in claims.items() if c[0][1] == "sending"}
        assert sent | in_doubt == expected, "a pair is neither sent nor in doubt"
        assert all(counts[p] == 1 for p in sent), "a pair recorded as sent has no email"
        # only the crash (and the planted claim) leave doubts: at most the one email that was in DATA
        assert planted in in_doubt and counts[planted] == 0, "an in-doubt claim was sent again automatically"
        assert in_doubt - {planted} <= {p for p, c in at_kill.items() if c[-1][1] == "sending"}
        assert len(in_doubt - {planted}) <= 1
        for p in in_doubt:
            assert counts[p] == mailed_at_kill[p] <= 1, "an in-doubt claim was sent again automatically"
        # the events the first process never reached were all sent by the second
        assert expected - set(at_kill) - {planted} <= sent
        # and the successor says which emails are in doubt instead of counting them as duplicates
        reported = [line for line in second.log_lines()
                    if line.get("event") == "email outcome unknown; not resent automatically"]
        assert {(line.get("event_id"), line.get("recipient")) for line in reported} >= in_doubt, second.tail()
    finally:
        first.close()
        if second is not None:
            second.close()


async def test_sigterm_mid_stream_exits_0_and_a_restart_sends_the_rest_once(settings, cli_env, mailbox):
    """SIGTERM mid-stream: exit 0 with every handled event committed and nothing in doubt; a restart sends the rest once."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    events = make_events(50)
    expected = pairs(events)
    env = fast_group_env(cli_env)
    first = ServiceProcess("notifier", env, "notifier-sigterm-first")
    second = None
    try:
        await first.wait_assigned()
        placed = await stream_events(settings, events, chunk=len(events), gap=0)
        await wait_until(lambda: len(mail_counts(mailbox, events)) >= 150, 30, "the first 150 emails")
        assert await first.terminate() == 0, first.tail()
        assert "Traceback" not in first.text(), first.tail()
        claims = await claim_rows(settings)
        assert len(claims) < len(expected), "the notifier finished before SIGTERM: the test proved nothing"
        assert all(c == [(1, "sent")] for c in claims.values()), "a clean stop left a claim in doubt"
        # the event in hand was finished (all its recipients), and exactly the handled events were committed
        handled = {p[0] for p in claims}
        assert set(claims) == {p for p in expected if p[0] in handled}
        committed = await notifier_offsets(settings)
        below = {eid for eid, (partition, offset) in placed.items() if offset < committed[partition]}
        assert handled == below, "the offsets committed at SIGTERM do not match the events handled"
        assert mail_counts(mailbox, events) == Counter(set(claims))

        second = ServiceProcess("notifier", env, "notifier-sigterm-second")
        await all_mailed(mailbox, events, 45)
        assert await second.terminate() == 0, second.tail()
        await assert_all_committed(settings, placed)
        await assert_each_email_once(settings, mailbox, events)
    finally:
        first.close()
        if second is not None:
            second.close()
