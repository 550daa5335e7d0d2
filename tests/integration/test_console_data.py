"""The data behind the console's Health and Dead-letter pages (issue 21), on real Postgres and the broker.

Heartbeats: a running worker process's row names its partitions and goes stale once it is killed -9; the
worker, notifier and gateway beat and a clean stop marks their rows stopped; a heartbeat that cannot be
written (the table gone, Postgres stopped) never stops its process and writes again once it can.
Activity: the per-minute counts agree with what the worker and the notifier did. The dead-letter index:
garbage sent through the worker is indexed with its reason, command id and order id, pages walk every
letter once under any filter, indexing the DLQ again changes nothing, and letters gone with retention
are unindexed."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import timedelta
from functools import partial

import pytest
import structlog

from service.adapters.kafka.clients import make_consumer
from service.adapters.kafka.consumer import KafkaConsumer
from service.adapters.postgres import activity, dead_letter_index, heartbeats
from service.adapters.postgres.connection import create_pool, migrate
from service.adapters.postgres.dead_letter_index import Filter
from service.console.dead_letter_indexer import DeadLetterIndexer, first_stored_offsets
from service.devkit.embedded import EmbeddedPostgres, free_port, scratch_dir
from service.entrypoints.services import run_gateway
from service.runtime.auth import new_key_pair
from service.runtime.health import Progress
from service.runtime.heartbeat import Heartbeat, heartbeating, identity, progress_report
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.runtime.settings import Settings
from tests.helpers.commands import change
from tests.helpers.database import fetch, seed, url_of
from tests.helpers.processes import ServiceProcess, fast_group_env
from tests.helpers.producing import produce
from tests.helpers.services import running, running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def pool_of(settings: Settings):
    pool = await create_pool(url_of(settings), size=2)
    try:
        yield pool
    finally:
        await pool.close()


async def rows_of(pool, kind: str | None = None) -> list[heartbeats.ProcessRow]:
    return await heartbeats.processes(pool, kind)


@contextlib.asynccontextmanager
async def running_indexer(settings: Settings, pool, group: str):
    """The console's indexer in this loop, in consumer group `group`; stopped (and committed) on exit."""
    progress = Progress(30.0)
    metrics = Metrics("console")
    indexer = DeadLetterIndexer(pool, KafkaConsumer(make_consumer(settings, group)), settings.dlq_topic,
                                OutageRetry(0.05, 0.5, metrics, progress), progress, metrics,
                                first_offsets=partial(first_stored_offsets, settings, settings.dlq_topic))
    stop = asyncio.Event()
    task = asyncio.create_task(indexer.run(stop))
    try:
        yield indexer
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


# ------------------------------------------------------------------------------------------ heartbeats


class TestHeartbeats:
    async def test_a_worker_process_reports_its_partitions_and_goes_stale_when_killed(self, settings, cli_env):
        """A worker subprocess's row has its pid, host, version and all 3 partitions, ready; after kill -9 it is
        stale (not stopped), while a clean stop would have marked it stopped."""
        await seed(settings)
        worker = ServiceProcess("worker", fast_group_env(cli_env), "heartbeat-worker")
        try:
            await worker.wait_assigned()
            async with pool_of(settings) as pool:

                async def reported():
                    rows = [r for r in await rows_of(pool, "worker") if r.pid == worker.proc.pid]
                    owned = rows and rows[0].partitions.get(settings.commands_topic)
                    return rows[0] if owned == [0, 1, 2] and rows[0].ready else None

                row = await wait_until(reported, 30, "the worker's heartbeat with its partitions")
                assert row.status == "running" and row.stopped_at is None
                assert row.version and row.host and row.started_at <= row.beat_at
                worker.kill9()
                stale = await wait_until(
                    lambda: _status_of(pool, row.process_id, "stale"), 45, "the killed worker's row to go stale")
                assert stale.stopped_at is None and stale.seconds_since_beat > 3 * stale.interval_s
        finally:
            worker.close()

    async def test_worker_notifier_and_gateway_beat_and_a_clean_stop_marks_their_rows_stopped(self, settings,
                                                                                             tmp_path):
        """In-process worker, notifier and gateway each have a running row (the notifier owning the events
        topic's partitions); once stopped every row says stopped, owning nothing."""
        await seed(settings)
        gateway_key = tmp_path / "gateway.pem"
        _, public = new_key_pair()
        gateway_key.write_bytes(new_key_pair()[0])
        (tmp_path / "public.pem").write_bytes(public)
        with_gateway = settings.model_copy(update={
            "auth_public_keys": str(tmp_path / "public.pem"), "auth_issuer": "https://id.example.com",
            "auth_audience": "orderstatus", "gateway_signing_key_file": str(gateway_key), "gateway_port": free_port()})
        async with pool_of(settings) as pool:
            async with running_worker(settings), running_notifier(settings), \
                    running(run_gateway, with_gateway, "gateway"):

                async def all_running():
                    rows = {r.kind: r for r in await rows_of(pool) if r.status == "running"}
                    notifier = rows.get("notifier")
                    ready = notifier and notifier.partitions.get(settings.events_topic) == [0, 1, 2]
                    return rows if ready and set(rows) == {"worker", "notifier", "gateway"} else None

                running_rows = await wait_until(all_running, 45, "worker, notifier and gateway beating")
            for kind, running_row in running_rows.items():
                row = await _status_of(pool, running_row.process_id, "stopped")
                assert row is not None, f"the {kind}'s row is not marked stopped"
                assert row.partitions == {} and not row.ready

    async def test_a_failing_write_is_logged_once_and_never_stops_the_beating(self, settings):
        """With the table gone the beats fail (one warning for many failures) and go on; once it is back
        the next beat writes the row."""
        async with pool_of(settings) as pool:
            beat = Heartbeat(pool, identity("console", 0.05), progress_report(Progress(30.0)))
            await pool.execute("ALTER TABLE process_heartbeats RENAME TO process_heartbeats_away")
            with structlog.testing.capture_logs() as logs:
                async with heartbeating(pool, "console", progress_report(Progress(30.0)), 0.05) as looping:
                    assert [await beat.beat_once() for _ in range(3)] == [False, False, False]
                    assert beat.failing
                    await wait_until(lambda: looping.failing, 10, "the beating task to fail")
                    await pool.execute("ALTER TABLE process_heartbeats_away RENAME TO process_heartbeats")
                    assert await beat.beat_once()
                    await wait_until(lambda: not looping.failing, 10, "the beating task to write again")
                    assert {r.process_id for r in await rows_of(pool)} == {beat.who.process_id,
                                                                          looping.who.process_id}
            warnings = [e for e in logs if e["event"].startswith("heartbeat not written")]
            assert len(warnings) == 2  # one per Heartbeat, however many beats failed
            assert any(e["event"] == "heartbeat written again" for e in logs)

    async def test_postgres_stopped_and_restarted_the_beating_goes_on_and_writes_again(self):
        """A real outage: Postgres stopped under a beating process logs one warning, the task keeps running, and
        after the restart the next beats write the row again."""
        data_dir = scratch_dir("orderstatus-heartbeat-pg-")
        pg = EmbeddedPostgres(data_dir)
        await asyncio.to_thread(pg.start)
        restarted = None
        try:
            await asyncio.to_thread(migrate, pg.url)
            pool = await create_pool(pg.url, size=1)
            try:
                with structlog.testing.capture_logs() as logs:
                    async with heartbeating(pool, "console", progress_report(Progress(30.0)), 0.1) as beat:
                        await wait_until(lambda: beat.beats >= 2, 10, "beats before the outage")
                        await asyncio.to_thread(pg.stop)
                        await wait_until(lambda: beat.failing, 15, "the beats to fail")
                        written = beat.beats
                        restarted = EmbeddedPostgres(data_dir, port=pg.port)
                        await asyncio.to_thread(restarted.start)
                        await wait_until(lambda: beat.beats >= written + 2, 30, "beats after the restart")
                        row = (await rows_of(pool))[0]
                        assert row.process_id == beat.who.process_id and row.status == "running"
                warnings = [e for e in logs if e["event"].startswith("heartbeat not written")]
                assert len(warnings) == 1
                assert (await _status_of(pool, beat.who.process_id, "stopped")) is not None
            finally:
                await pool.close()
        finally:
            await asyncio.to_thread((restarted or pg).stop)


async def _status_of(pool, process_id: str, status: str) -> heartbeats.ProcessRow | None:
    rows = [r for r in await heartbeats.processes(pool) if r.process_id == process_id]
    return rows[0] if rows and rows[0].status == status else None


async def _any_of(pool, kind: str, status: str) -> heartbeats.ProcessRow | None:
    rows = [r for r in await heartbeats.processes(pool, kind) if r.status == status]
    return rows[0] if rows else None


# ------------------------------------------------------------------------------------------ activity


class TestActivity:
    async def test_counts_per_minute_match_what_the_worker_and_notifier_did(self, settings, mailbox):
        """Applied and rejected commands (by reason), status changes and emails sent in the last hour sum to
        what the events and the mailbox show; every series has 60 zero-filled minutes."""
        await seed(settings)
        commands = [change(1029, 21, role="client", client_id="c-1")]
        commands += [change(990_000 + i, 21) for i in range(4)]  # no such orders
        commands += [change(1029, 21, role="client", client_id="c-1") for _ in range(2)]  # already there
        async with running_worker(settings), running_notifier(settings), \
                TopicReader(settings, settings.events_topic) as reader:
            await produce(settings, commands)
            events = await events_for(reader, {c["command_id"] for c in commands})
            await wait_until(lambda: len(mailbox.mailbox.messages) >= 2, 30, "the cancel's emails")
        applied = [e for e in events if e["type"] == "OrderStatusChanged"]
        rejected = Counter(e["reason"] for e in events if e["type"] == "OrderStatusChangeRejected")
        assert len(applied) == 1 and sum(rejected.values()) == 6 and rejected["order_not_found"] == 4
        sent = len(await fetch(settings, "SELECT 1 FROM sent_notifications WHERE status = 'sent'"))
        async with pool_of(settings) as pool:
            seen = await activity.last_hour(pool, settings.dlq_topic)
        assert len(seen.minutes) == 60
        assert all(b - a == timedelta(minutes=1) for a, b in zip(seen.minutes, seen.minutes[1:]))
        for series in [seen.changes, *seen.commands.values(), *seen.rejections.values(), *seen.emails.values()]:
            assert len(series) == 60
        assert sum(seen.commands["applied"]) == 1
        assert sum(seen.commands["rejected"]) == 6
        assert {reason: sum(n) for reason, n in seen.rejections.items()} == dict(rejected)
        assert sum(seen.changes) == 1
        assert sum(seen.emails["sent"]) == sent == len(mailbox.mailbox.messages)
        assert sum(seen.commands["invalid"]) == 0 and seen.dead_letters == {}


    async def test_recent_activity_agrees_with_the_hour_and_reads_only_the_minutes_since_it_settled(self, settings):
        """RecentActivity's hour equals last_hour's on the same rows, new commands of the current minute count at
        once, and a row written afterwards into a settled minute (30 minutes ago) is not read again."""
        await seed(settings)
        commands = "INSERT INTO processed_commands (command_id, command_type, outcome, processed_at) " \
                   "SELECT $1 || g, 'ChangeOrderStatus', $2, now() - $3::interval FROM generate_series(1, $4) g"
        async with pool_of(settings) as pool:
            for minutes_ago, outcome, count in [(0, "applied", 3), (5, "rejected:invalid_transition", 2),
                                                (30, "applied", 4), (59, "invalid", 1), (90, "applied", 7)]:
                await pool.execute(commands, f"c{minutes_ago}-", outcome, timedelta(minutes=minutes_ago), count)
            recent = activity.RecentActivity(settings.dlq_topic)

            async def both():  # the same minute on both sides (a minute may turn between the calls)
                while True:
                    mine, whole = await recent.last_hour(pool), await activity.last_hour(pool, settings.dlq_topic)
                    if mine.minutes == whole.minutes:
                        return mine, whole

            mine, whole = await both()
            assert mine == whole and sum(mine.commands["applied"]) == 7 and sum(mine.commands["invalid"]) == 1
            await pool.execute(commands, "now-", "applied", timedelta(0), 5)
            await pool.execute(commands, "late-", "applied", timedelta(minutes=30), 100)
            mine, whole = await both()
            assert sum(whole.commands["applied"]) == 112
            assert sum(mine.commands["applied"]) == 12  # the current minute's 5 counted, the settled minute kept
            assert mine.rejections == whole.rejections == {"invalid_transition": mine.rejections["invalid_transition"]}


# ------------------------------------------------------------------------------------------ dead-letter index


def garbage(count: int) -> list:
    """`count` commands the worker dead-letters, in three reasons: a third not JSON, a third of an unknown
    type (with a command id and an order id), a third failing validation (with both as well)."""
    out: list = []
    for i in range(count):
        if i % 3 == 0:
            out.append(f"not json {i}".encode())
        elif i % 3 == 1:
            out.append({"type": "NoSuchCommand", "command_id": f"unknown-{i}", "order_id": 700_000 + i})
        else:
            out.append(change(800_000 + i, {"not": "a status"}, command_id=f"invalid-{i}"))
    return out


async def index_snapshot(settings: Settings) -> list[tuple]:
    rows = await fetch(settings, 'SELECT * FROM dead_letter_index ORDER BY topic, partition, "offset"')
    return [tuple(v for k, v in r.items() if k != "indexed_at") for r in rows]


async def walk(pool, topic: str, where: Filter, limit: int) -> list[dead_letter_index.IndexedLetter]:
    """Every letter that matches, page by page."""
    letters, cursor = [], None
    while True:
        page = await dead_letter_index.page(pool, topic, where, limit, cursor)
        assert len(page.letters) <= limit
        letters += page.letters
        if page.next_cursor is None:
            return letters
        cursor = page.next_cursor


class TestDeadLetterIndex:
    async def test_garbage_is_indexed_paged_with_filters_and_indexed_again_harmlessly(self, settings):
        """300 dead letters: indexed with reason, command id, order id and original position; every filter's
        pages hold each match once, newest first; a second indexer in a new group leaves the index as it was; only
        letters below a partition's first stored offset are unindexed."""
        await seed(settings)
        sent = garbage(300)
        async with pool_of(settings) as pool:
            async with running_worker(settings), running_indexer(settings, pool, f"console-{uuid.uuid4().hex[:6]}"):
                await produce(settings, sent)
                await wait_until(lambda: _indexed(pool, settings.dlq_topic, 300), 90, "300 dead letters indexed")
            topic = settings.dlq_topic
            assert await dead_letter_index.counts_by_reason(pool, topic) == {
                "not_json": 100, "unknown_type": 100, "validation_failed": 100}

            everything = await walk(pool, topic, Filter(), 37)
            assert len(everything) == 300
            assert len({(x.partition, x.offset) for x in everything}) == 300
            order = [(x.written_at, x.partition, x.offset) for x in everything]
            assert order == sorted(order, reverse=True)

            unknown = await walk(pool, topic, Filter(reason="unknown_type"), 7)
            assert len(unknown) == 100 and {x.reason for x in unknown} == {"unknown_type"}
            assert {x.command_id for x in unknown} == {f"unknown-{i}" for i in range(1, 300, 3)}

            one = await walk(pool, topic, Filter(command_id="invalid-2"), 10)
            assert [(x.reason, x.order_id, x.original_topic) for x in one] == [
                ("validation_failed", 800_002, settings.commands_topic)]
            by_order = await walk(pool, topic, Filter(order_id=700_004), 10)
            assert [x.command_id for x in by_order] == ["unknown-4"]
            assert [x.command_id for x in await walk(pool, topic, Filter(order_id=1), 10)] == []

            middle = everything[150].written_at
            newer = await dead_letter_index.count(pool, topic, Filter(since=middle))
            older = await dead_letter_index.count(pool, topic, Filter(until=middle))
            assert newer + older == 300 and 0 < newer < 300
            assert len(await walk(pool, topic, Filter(since=middle), 11)) == newer

            # what the index says of a letter agrees with the record in the DLQ topic
            async with TopicReader(settings, topic) as dlq:
                await dlq.wait_for(lambda values: len(values) >= 300, 30, "the DLQ's records")
                records = {(r.partition, r.offset): r for r in dlq.records}
            assert set(records) == {(x.partition, x.offset) for x in everything}
            for letter in everything[:20]:
                record = records[(letter.partition, letter.offset)]
                headers = dict(record.headers)
                assert letter.size == len(record.value)
                assert letter.key == record.key
                assert str(letter.original_offset).encode() == headers["original.offset"]

            before = await index_snapshot(settings)
            async with running_indexer(settings, pool, f"console-{uuid.uuid4().hex[:6]}") as again:
                await wait_until(lambda: again.strategy.indexed >= 300, 60, "the second indexer to read the DLQ")
                assert await again.prune() == 0  # the DLQ still stores every letter: nothing is unindexed
            assert await index_snapshot(settings) == before

            # letters below a partition's first stored offset (gone with retention) are unindexed, others kept
            partition = everything[0].partition
            in_partition = sorted(x.offset for x in everything if x.partition == partition)
            cut = in_partition[len(in_partition) // 2]
            gone = await dead_letter_index.forget_before(pool, topic, {partition: cut})
            assert gone == len(in_partition) // 2
            left = {(x.partition, x.offset) for x in await walk(pool, topic, Filter(), 100)}
            assert left == {(x.partition, x.offset) for x in everything
                            if x.partition != partition or x.offset >= cut}


    async def test_the_redrive_preview_from_the_index_says_what_dlq_redrive_says_of_the_records(self, settings):
        """The console's preview, answered from the index, gives each letter the outcome, reason, target and
        redrive.count that `dlq redrive --dry-run` gives it from the record: a worker's dead letter (redriven
        twice before), one cut to fit (error.truncated) and a record without the worker's headers; a position
        never indexed is skipped as gone."""
        from service.adapters.kafka.records import topic_records
        from service.contract.events import dead_letter
        from service.domain.commands import SourceMessage
        from service.domain.events import DeadLetter
        from service.entrypoints.cli.console import DeadLetters
        from service.ops import dlq as ops_dlq

        await seed(settings)
        topic = settings.dlq_topic

        def letter(value: bytes, max_bytes: int):
            source = SourceMessage(settings.commands_topic, 0, 7, b"1029", value, headers=(("redrive.count", b"2"),))
            return dead_letter(DeadLetter(source, "validation_failed", "status: field required"), topic, max_bytes)

        sent = []
        for wire in (letter(b'{"type": "ChangeOrderStatus"}', 1_048_576), letter(b"x" * 2000, 600)):
            sent += await produce(settings, [wire.value], topic, key=wire.key, headers=wire.headers)
        sent += await produce(settings, [b"written by hand"], topic)
        positions = [(m.partition, m.offset) for m in sent]
        async with pool_of(settings) as pool:
            async with running_indexer(settings, pool, f"console-{uuid.uuid4().hex[:6]}"):
                await wait_until(lambda: _indexed(pool, topic, 3), 60, "three dead letters indexed")
            never = (positions[0][0], 10_000)
            preview = await DeadLetters(settings, pool, None).preview([*positions, never])
        selection = ops_dlq.Selection(positions=tuple(sorted(positions)))
        async with topic_records(settings, topic) as reader:
            by_record = [r async for r in ops_dlq.redrive(reader, None, selection, dry_run=True)]

        def shown(r) -> dict:  # as the console's port shows a result of `dlq redrive`
            skipped = isinstance(r, ops_dlq.Skipped)
            return {"position": r.letter.position, "outcome": "skipped" if skipped else "redriven",
                    "why": r.why if skipped else None, "target": None if skipped else r.topic,
                    "count": 0 if skipped else r.count}

        expected = [shown(r) for r in by_record]
        gone = {"position": f"{never[0]}:{never[1]}", "outcome": "skipped",
                "why": "no such dead letter (deleted by retention?)", "target": None, "count": 0}
        assert preview == sorted([*expected, gone], key=lambda r: tuple(map(int, r["position"].split(":"))))
        assert [r["outcome"] for r in expected].count("redriven") == 1
        assert {r["count"] for r in expected if r["outcome"] == "redriven"} == {3}
        assert sum(1 for r in expected if r["why"] and "error.truncated" in r["why"]) == 1
        assert sum(1 for r in expected if r["why"] and "original.topic" in r["why"]) == 1


async def _indexed(pool, topic: str, count: int) -> bool:
    return await dead_letter_index.count(pool, topic) >= count
