"""Hostile and careless input against the real worker, notifier and relay: nothing stops or floods the
output, and a normal command (or event) right after still gets its event (or email) within seconds."""

from __future__ import annotations

import gzip
import json

import asyncpg
from aiokafka import AIOKafkaProducer

from service.notifier.rendering import EVENT_ID_HEADER
from tests.helpers.cli import ok, run_cli_async
from tests.helpers.commands import change, override
from tests.helpers.database import fetch, seed
from tests.helpers.events import changed
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier, running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

MIB = 1_048_576


def _headers(record) -> dict:
    return dict(record.headers)


async def test_hostile_commands_are_dead_lettered_and_a_normal_command_still_gets_its_event(settings):
    """Oversized batch, near-1 MiB garbage, huge integers, deep nesting, a gzip bomb, null and forged
    headers: each is answered (rejection or dead letter, none over 1 MiB) and the worker keeps going."""
    await seed(settings)
    oversized = override([(1029, "OnHold")] * 900)  # a few hundred KB: over the limit of 50, under the wire cap
    huge_int = b'{"type": "ChangeOrderStatus", "command_id": "h1", "order_id": ' + b"9" * 5000 + b"}"
    nested = b'{"type": "ChangeOrderStatus", "x": ' + b"[" * 300_000 + b"]" * 300_000 + b"}"
    garbage = b"\xfe" * (MIB - 200)
    async with running_worker(settings) as worker, TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        await produce(settings, [oversized, huge_int, nested, garbage], separately=True)
        await produce(settings, [b"not json"], headers=[("error.reason", b"forged"), ("original.offset", b"999"),
                                                      ("trace", None)])
        bomb = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, compression_type="gzip",
                                max_request_size=64 * MIB, acks="all")
        await bomb.start()
        try:  # 40 MiB of zeros, some 40 KB on the wire
            await bomb.send_and_wait(settings.commands_topic, b"0" * (40 * MIB), key=b"bomb")
        finally:
            await bomb.stop()
        normal = change(1033, "Confirmed")
        await produce(settings, [normal])

        [applied] = await events_for(events, {normal["command_id"]}, timeout=20)
        assert applied["type"] == "OrderStatusChanged" and not worker.done()
        batch = await events_for(events, {oversized["command_id"]}, timeout=5)
        summary = next(e for e in batch if e["type"] == "OrderStatusOverrideCompleted")
        assert summary["results"] == [] and summary["item_count"] == 900 and summary["reason"] == "batch_too_large"
        assert all(len(r.value) < 4096 for r in events.records)

        await dlq.wait_for(lambda values: len(dlq.records) >= 5, timeout=20, what="five dead letters")
        letters = {(_headers(r)["original.partition"], _headers(r)["original.offset"]): r for r in dlq.records}
        assert all(len(r.value) + sum(len(v or b"") for _, v in r.headers) < MIB for r in dlq.records)
        reasons = sorted(_headers(r)["error.reason"].decode() for r in dlq.records)
        assert reasons == ["not_json", "not_json", "not_json", "not_json", "too_large"], reasons
        bomb_letter = next(r for r in dlq.records if _headers(r)["error.reason"] == b"too_large")
        assert _headers(bomb_letter)["error.truncated"] == b"true"
        assert _headers(bomb_letter)["original.size"] == str(40 * MIB).encode()
        forged = next(r for r in dlq.records if r.value == b"not json")
        assert [v for n, v in forged.headers if n == "error.reason"] == [b"not_json"]
        assert [v for n, v in forged.headers if n == "original.offset"] != [b"999"]
        assert ("trace", None) in forged.headers
        assert len(letters) == 5


async def test_a_command_with_null_header_values_applies(settings):
    """A valid command carrying a header with a null value is processed like any other."""
    await seed(settings)
    command = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as events:
        await produce(settings, [command], headers=[("trace", None), ("bin", b"\xff\x00")])
        [event] = await events_for(events, {command["command_id"]}, timeout=20)
    assert event["type"] == "OrderStatusChanged"


async def test_a_transaction_that_keeps_timing_out_is_dead_lettered_and_the_rest_apply(settings):
    """A command whose order stays locked by someone else hits lock_timeout on every try: after the
    bounded tries it is dead-lettered as processing_failed, and the other commands apply."""
    await seed(settings)
    settings = settings.model_copy(update={"db_lock_timeout_s": 0.3, "db_statement_timeout_tries": 2})
    blocker = await asyncpg.connect(settings.database_url.get_secret_value())
    stuck, fine = change(1033, "Confirmed"), change(3001, "QuoteAccepted", role="manager")
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM orders WHERE order_id = 1033 FOR UPDATE")
        async with running_worker(settings), TopicReader(settings, settings.events_topic) as events, \
                TopicReader(settings, settings.dlq_topic) as dlq:
            await produce(settings, [stuck, fine])
            await events_for(events, {fine["command_id"]}, timeout=30)
            await dlq.wait_for(lambda values: dlq.records, timeout=30, what="the stuck command's dead letter")
            [letter] = dlq.records
            assert _headers(letter)["error.reason"] == b"processing_failed"
            assert b"LockNotAvailable" in _headers(letter)["error.message"]
            assert json.loads(letter.value)["command_id"] == stuck["command_id"]
        await tx.rollback()
    finally:
        await blocker.close()
    [row] = await fetch(settings, "SELECT version FROM orders WHERE order_id = 1033")
    assert row["version"] == 0


async def test_a_row_the_broker_refuses_is_parked_later_rows_flow_and_the_cli_retries_it(settings, cli_env):
    """An event the producer refuses for good (over its max request size) is parked; other orders' events
    are published, the same order's later event waits behind it, and `outbox retry` after the fix
    publishes both in version order."""
    await seed(settings)
    small = settings.model_copy(update={"kafka_max_request_size": 2048})
    big = change(1033, "Confirmed", note={"text": "x" * 3000})
    behind = change(1033, "OnHold", role="manager")
    other = change(3001, "QuoteAccepted", role="manager")
    async with TopicReader(settings, settings.events_topic) as events:
        async with running_worker(small):
            await produce(settings, [big])
            await wait_until(lambda: _parked(settings), 20, "the big event to be parked")
            await produce(settings, [behind, other])
            await events_for(events, {other["command_id"]}, timeout=20)
            status = ok(await run_cli_async(cli_env, "outbox", "status"))
            assert json.loads(status.stdout)["parked"] == 1
            listing = ok(await run_cli_async(cli_env, "outbox", "parked")).stdout
            assert "MessageSizeTooLargeError" in listing and "1 held back" in listing
        assert {v.get("command_id") for v in events.values()} & {big["command_id"], behind["command_id"]} == set()
        parked = await fetch(settings, "SELECT id, held_behind FROM outbox WHERE parked_at IS NOT NULL ORDER BY id")
        row_id = parked[0]["id"]
        assert [r["held_behind"] for r in parked] == [None, row_id]  # the later event is parked behind it
        async with running_worker(settings):  # the fix: the default request size
            done = ok(await run_cli_async(cli_env, "outbox", "retry", str(row_id)))
            assert f"{row_id}: released" in done.stdout
            await events_for(events, {big["command_id"], behind["command_id"]}, timeout=20)
    order = [(v["command_id"], v["version"]) for v in events.values() if v.get("order_id") == 1033]
    assert order == [(big["command_id"], 1), (behind["command_id"], 2)]
    again = await run_cli_async(cli_env, "outbox", "retry", str(row_id))
    assert again.returncode == 1 and "not parked" in again.stderr


async def _parked(settings) -> bool:
    return bool(await fetch(settings, "SELECT 1 FROM outbox WHERE parked_at IS NOT NULL"))


async def test_hostile_events_are_skipped_and_the_next_event_is_emailed(settings, mailbox):
    """Garbage, huge integers, an order id beyond bigint, deep nesting, an oversized note and null
    headers on the events topic are skipped and counted; the notifier still emails the next event."""
    await seed(settings, [{"order_id": 601, "order_type": "SO", "status": "Confirmed",
                           "contacts": [{"email": "pm@example.com", "kind": "stakeholder"}]}])
    good = changed(601)
    beyond = json.loads(changed(601).model_dump_json())
    beyond["order_id"] = 2**64
    huge_note = json.loads(changed(601).model_dump_json())
    huge_note["note"]["text"] = "n" * 900_000
    hostile = [b"\x00\xff garbage", b'{"type": "OrderStatusChanged", "version": ' + b"7" * 5000 + b"}",
               json.dumps(beyond).encode(), b'{"type": "OrderStatusChanged", "x": ' + b"[" * 300_000 + b"}",
               json.dumps(huge_note).encode(), None]
    async with running_notifier(settings) as notifier:
        await produce(settings, hostile, settings.events_topic, separately=True, headers=[("h", None)])
        await produce(settings, [good], settings.events_topic)
        await wait_until(lambda: [m for m in mailbox.messages if m[EVENT_ID_HEADER] == good.event_id], 20,
                         "the good event's email")
        assert not notifier.done()
    assert len(mailbox.messages) == 1


async def test_gzip_bomb_on_the_events_topic_does_not_stop_the_notifier(settings, mailbox):
    """A compressed event that expands to 40 MiB is skipped as too large; the next event is emailed."""
    await seed(settings, [{"order_id": 602, "order_type": "SO", "status": "Confirmed",
                           "contacts": [{"email": "pm@example.com", "kind": "stakeholder"}]}])
    good = changed(602)
    async with running_notifier(settings) as notifier:
        bomb = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, compression_type="gzip",
                                max_request_size=64 * MIB, acks="all")
        await bomb.start()
        try:
            await bomb.send_and_wait(settings.events_topic, b" " * (40 * MIB), key=b"602")
        finally:
            await bomb.stop()
        await produce(settings, [good], settings.events_topic)
        await wait_until(lambda: [m for m in mailbox.messages if m[EVENT_ID_HEADER] == good.event_id], 20,
                         "the good event's email")
        assert not notifier.done()


def test_gzip_compresses_the_bomb_below_the_broker_limit():
    """The bombs above are real: 40 MiB of one byte compresses far below 1 MiB."""
    assert len(gzip.compress(b"0" * (40 * MIB))) < MIB // 8
