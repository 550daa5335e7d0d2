"""Postgres failover (issue 24) on a real primary and streaming standby (tests/helpers/postgres_standby.py):
the service follows the promoted standby through a multi-host URL, never writes to a demoted primary, and
loses no command."""

from __future__ import annotations

import asyncpg
import pytest

import json
import time
import urllib.request

from collections import Counter

from service.adapters.postgres.connection import connect, create_pool, writable_server
from service.adapters.postgres.rules import RulesCache
from service.adapters.postgres.unit_of_work import PostgresUnitOfWork
from service.notifier.rendering import EVENT_ID_HEADER
from service.devkit.embedded import free_port, scratch_dir
from service.runtime.faults import is_outage
from tests.helpers.cli import settings_env
from tests.helpers.command_chains import (
    alternating,
    assert_exactly_once,
    chain_orders,
    processed_count,
    wait_outbox_drained,
    wait_processed,
)
from tests.helpers.database import on_database, seed, seed_database
from tests.helpers.offsets import committed_offsets
from tests.helpers.postgres_standby import ReplicatedPostgres
from tests.helpers.processes import ServiceProcess, fast_group_env
from tests.helpers.events import changed
from tests.helpers.producing import produce, stream
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

ORDER_IDS = [7001, 7002, 7003, 7004]
PER_PHASE = 10  # commands per order in each phase: before the hold, while held, after the failover


@pytest.fixture
def synchronous_pair():
    pair = ReplicatedPostgres(scratch_dir("orderstatus-test-standby-"), synchronous=True).start()
    try:
        yield pair
    finally:
        pair.stop()


@pytest.fixture
def asynchronous_pair():
    pair = ReplicatedPostgres(scratch_dir("orderstatus-test-standby-"), synchronous=False).start()
    try:
        yield pair
    finally:
        pair.stop()


def _server(port: int) -> str:
    return f"127.0.0.1:{port}"


class TestFollowingThePrimary:
    async def test_pool_connects_to_the_writable_host_and_follows_the_promoted_standby(self, synchronous_pair):
        """With both hosts and target_session_attrs=read-write the pool writes to the primary, and after a
        kill -9 and a promotion to the standby, whichever host is listed first."""
        pair = synchronous_pair
        pool = await create_pool(pair.url, size=2)
        try:
            async with pool.acquire() as conn:
                assert await writable_server(conn) == _server(pair.primary.port)
            pair.kill_primary()
            pair.promote()

            async def on_new_primary() -> bool:
                try:
                    async with pool.acquire() as conn:
                        return await writable_server(conn) == _server(pair.standby.port)
                except Exception as exc:
                    assert is_outage(exc), repr(exc)  # what the service waits out, never a crash
                    return False

            await wait_until(on_new_primary, 30, "the pool on the promoted standby")
        finally:
            await pool.close()

    async def test_a_connection_left_on_a_fenced_old_primary_cannot_commit(self, synchronous_pair):
        """The standby is promoted while the old primary still runs and is then fenced: a connection opened
        to the old primary before has its write refused (an outage, retried), is dropped, and the pool's next
        connection is the new primary; the refused row is nowhere."""
        pair = synchronous_pair
        pool = await create_pool(pair.url, size=1)
        try:
            async with pool.acquire() as conn:
                await conn.execute("CREATE TABLE fence_probe (x int)")
            old = await pool.acquire()
            assert await writable_server(old) == _server(pair.primary.port)
            pair.promote()
            pair.fence_primary()
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError) as refused:
                await old.execute("INSERT INTO fence_probe VALUES (1)")
            assert is_outage(refused.value)

            async def dropped() -> bool:
                try:
                    await old.fetchval("SELECT 1")
                    return False
                except (asyncpg.exceptions.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError):
                    return True

            await wait_until(dropped, 5, "the connection to the fenced primary dropped")
            async with pool.acquire() as conn:
                assert await writable_server(conn) == _server(pair.standby.port)
            for url in (pair.primary_url, pair.standby_url):
                reader = await connect(url)
                try:
                    assert await reader.fetchval("SELECT count(*) FROM fence_probe") == 0
                finally:
                    await reader.close()
        finally:
            await pool.close()

    async def test_a_workers_unit_of_work_open_on_the_old_primary_commits_nothing(self, synchronous_pair):
        """A worker's transaction begun on the primary, which is then fenced (sessions ended) after the standby's
        promotion: its commit fails as an outage (retried on the new primary), and neither server holds any of
        it."""
        pair = synchronous_pair
        await seed_database(pair.url, chain_orders(ORDER_IDS))
        pool = await create_pool(pair.url, size=1)
        try:
            uow = PostgresUnitOfWork(pool, RulesCache(), group="fenced")
            with pytest.raises(Exception) as failed:
                async with uow:
                    assert await uow.claim([("fenced-1", "ChangeOrderStatus", "commands:0:0")]) == {"fenced-1"}
                    uow.advance({("commands", 0): 1})
                    pair.promote()
                    pair.fence_primary(end_sessions=True)
                    await uow.commit()
            assert is_outage(failed.value), repr(failed.value)
            for url in (pair.primary_url, pair.standby_url):
                reader = await connect(url)
                try:
                    assert await reader.fetchval("SELECT count(*) FROM processed_commands") == 0
                    assert await reader.fetchval("SELECT count(*) FROM consumer_positions") == 0
                finally:
                    await reader.close()
        finally:
            await pool.close()

    async def test_readiness_probe_refuses_a_standby(self, synchronous_pair):
        """`writable_server` (the readiness probe) names the primary and refuses a connection to a standby."""
        pair = synchronous_pair
        conn = await connect(pair.standby_url)
        try:
            with pytest.raises(asyncpg.exceptions.InternalClientError, match="does not accept writes"):
                await writable_server(conn)
        finally:
            await conn.close()
        conn = await connect(pair.primary_url)
        try:
            assert await writable_server(conn) == _server(pair.primary.port)
        finally:
            await conn.close()


# ------------------------------------------------------------------------ a worker through a failover


def readiness(port: int, path: str = "/readyz") -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as refused:  # 503: not ready, same body
        return json.loads(refused.read())
    except OSError:
        return {}


async def committed_total(settings) -> int:
    found = await committed_offsets(settings, settings.worker_group, settings.commands_topic)
    return sum(offset or 0 for offset in found.values())


async def through_a_failover(settings, pair: ReplicatedPostgres, *, hold: bool) -> dict:
    """A worker process on the multi-host URL; commands before, during and after the primary is killed -9 and
    the standby promoted (held behind first when `hold`). Asserts every command applied exactly once on the
    surviving database with its events, and returns what was measured."""
    db = on_database(settings, pair.url)
    await seed(db, chain_orders(ORDER_IDS))
    phases = [alternating(ORDER_IDS, PER_PHASE, start=PER_PHASE * n) for n in range(3)]
    port = free_port()
    env = {**fast_group_env(settings_env(db)), "ORDERSTATUS_HTTP_PORT": str(port),
           "ORDERSTATUS_KAFKA_MAX_POLL_RECORDS": "5"}
    worker = ServiceProcess("worker", env, "failover")
    try:
        async with TopicReader(db, db.events_topic) as reader:
            await worker.wait_assigned()
            done = 0
            for n, phase in enumerate(phases[:2]):
                if n == 1 and hold:
                    pair.hold_standby()
                await produce(db, phase)
                done += len(phase)
                await wait_processed(db, done, timeout=45)
                await wait_outbox_drained(db, timeout=30)
                await events_for(reader, {c["command_id"] for c in phase})
                await wait_until(lambda: _equals(committed_total(db), done), 30, "Kafka offsets committed")
            assert readiness(port).get("database_server") == f"127.0.0.1:{pair.primary.port}"
            pair.kill_primary()
            killed = time.monotonic()
            if hold:
                pair.release_standby()
            pair.promote()
            surviving = await processed_count(db)
            await produce(db, phases[2])

            def ready_on_the_standby() -> bool:
                body = readiness(port)
                return body.get("ready") is True and body.get("database_server") == f"127.0.0.1:{pair.standby.port}"

            await wait_until(ready_on_the_standby, 60, "the worker ready on the promoted standby", interval=0.1)
            pause_s = time.monotonic() - killed
            everything = [c for phase in phases for c in phase]
            await wait_processed(db, len(everything), timeout=60)
            await wait_outbox_drained(db, timeout=30)
            await events_for(reader, {c["command_id"] for c in everything}, timeout=45)
            if hold:  # the commands decided again are compared with the topic once their window is passed
                await wait_until(lambda: readiness(port, "/status").get("decided_again", {}).get("checked_events"),
                                 30, "the decided-again check")
            status = readiness(port, "/status")
            assert status["database_server"] == f"127.0.0.1:{pair.standby.port}"
            assert await worker.terminate() == 0, worker.tail()
            await reader.poll()
            events = [v for v in reader.values() if v.get("command_id")]
        await assert_exactly_once(db, everything, events)
        rewinds = [line for line in worker.log_lines() if str(line.get("event", "")).startswith("the database is behind")]
        return {"lost": 2 * len(phases[0]) - surviving, "rewound": sum(line.get("again", 0) for line in rewinds),
                "pause_s": pause_s, "events": len(events), "commands": len(everything),
                "decided_again": status["decided_again"]}
    finally:
        worker.close()


async def _equals(value, expected) -> bool:
    return await value == expected


class TestWorkerThroughAFailover:
    async def test_synchronous_standby_loses_nothing_and_applies_each_command_once(self, settings, synchronous_pair):
        """Synchronous replication: the promoted standby has every commit, nothing is rewound, every command is
        applied exactly once with versions 1..N, and the topic holds one event per command."""
        measured = await through_a_failover(settings, synchronous_pair, hold=False)
        print(f"synchronous failover: {measured}")
        assert measured["lost"] == 0 and measured["rewound"] == 0
        assert measured["events"] == measured["commands"]

    async def test_asynchronous_standby_held_behind_rewinds_and_decides_the_lost_commands_again(
            self, settings, asynchronous_pair):
        """Asynchronous replication with the standby stopped before the last commands: the new primary lost
        them; the worker reads them again from the database's position (logged, counted: exactly the lost
        ones), each command is applied exactly once on the surviving database, and every event on the topic
        agrees with it (a re-emitted event has the same id and the same content)."""
        measured = await through_a_failover(settings, asynchronous_pair, hold=True)
        print(f"asynchronous failover: {measured}")
        assert measured["lost"] == len(ORDER_IDS) * PER_PHASE
        assert measured["rewound"] == measured["lost"]
        # one partition's commands decided again on the same state: every re-emitted event equals the published one
        assert measured["decided_again"]["checked_events"] == measured["lost"]
        assert measured["decided_again"]["conflicts"] == 0


# ---------------------------------------------------------------------- the notifier through a failover

NOTIFIED_ORDERS = [
    {"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
     "contacts": [{"email": f"ann.{oid}@example.com", "kind": "client"},
                  {"email": f"pm.{oid}@example.com", "kind": "stakeholder"}]}
    for oid in (801, 802, 803, 804)
]
EVENTS_PER_PHASE = 3  # per order


def mail_counts(sink, events) -> Counter:
    """Emails in the sink per (event id, recipient) of these events."""
    ids = {e.event_id for e in events}
    counts: Counter = Counter()
    for message in sink.messages:
        if message[EVENT_ID_HEADER] in ids:
            counts[(message[EVENT_ID_HEADER], message["To"].addresses[0].addr_spec)] += 1
    return counts


async def notifier_through_a_failover(settings, pair: ReplicatedPostgres, mailbox, *, hold: bool) -> dict:
    """A notifier process on the multi-host URL; events before, during and after the failover (the standby held
    behind first when `hold`). Returns the emails per phase and what the notifier logged it read again."""
    db = on_database(settings, pair.url)
    await seed(db, NOTIFIED_ORDERS)
    phases = [[changed(o["order_id"], version=v, note=f"step {v}") for v in range(n * 10, n * 10 + EVENTS_PER_PHASE)
               for o in NOTIFIED_ORDERS] for n in range(3)]
    notifier = ServiceProcess("notifier", fast_group_env(settings_env(db)), "failover-notifier")
    try:
        await notifier.wait_assigned()
        for n, phase in enumerate(phases):
            if n == 1 and hold:
                pair.hold_standby()
            if n == 2:
                pair.kill_primary()
                if hold:
                    pair.release_standby()
                pair.promote()
            await stream(db, phase, db.events_topic, chunk=4, gap=0.05)
            expected = 2 * len(phase)
            await wait_until(lambda: len(mail_counts(mailbox.mailbox, phase)) == expected, 60,
                             f"the emails of phase {n}", interval=0.1)
            if n < 2:
                await wait_until(lambda: _equals(_committed(db), (n + 1) * len(phase)), 30, "offsets committed")
        if hold:
            await wait_until(lambda: any(str(line.get("event", "")).startswith("the database is behind")
                                         for line in notifier.log_lines()), 30, "the rewind logged")
        assert await notifier.terminate() == 0, notifier.tail()
        rewinds = [line for line in notifier.log_lines()
                   if str(line.get("event", "")).startswith("the database is behind")]
        return {"counts": [mail_counts(mailbox.mailbox, phase) for phase in phases],
                "rewound": sum(line.get("again", 0) for line in rewinds), "events": [len(p) for p in phases]}
    finally:
        notifier.close()


async def _committed(settings) -> int:
    found = await committed_offsets(settings, settings.notifier_group, settings.events_topic)
    return sum(offset or 0 for offset in found.values())


class TestNotifierThroughAFailover:
    async def test_synchronous_standby_sends_each_email_once(self, settings, synchronous_pair, mailbox):
        """Synchronous replication: every (event, recipient) gets exactly one email before, across and after the
        failover; nothing is read again."""
        measured = await notifier_through_a_failover(settings, synchronous_pair, mailbox, hold=False)
        assert [set(c.values()) for c in measured["counts"]] == [{1}, {1}, {1}]
        assert measured["rewound"] == 0

    async def test_asynchronous_standby_resends_only_the_lost_window_and_counts_it(self, settings, asynchronous_pair,
                                                                                  mailbox):
        """Asynchronous replication with the standby held behind: the records of the events notified while it
        was held are lost, so the notifier reads exactly those events again (logged, counted) and their emails
        go out a second time — and no other email does."""
        measured = await notifier_through_a_failover(settings, asynchronous_pair, mailbox, hold=True)
        first, lost, after = measured["counts"]
        assert set(first.values()) == {1} and set(after.values()) == {1}
        assert set(lost.values()) == {2}
        assert measured["rewound"] == measured["events"][1]
