"""`orderstatus dlq list|show|redrive` against the real worker, broker and Postgres (DESIGN §6.2, §11).

A dead letter redriven after the fix applies its command exactly once: a second redrive and a replay of
the commands topic change nothing; a redrive that fails again is back in the DLQ with its count; a
command recorded as invalid is decided again once the limit that refused it is raised."""

from __future__ import annotations

import json
import subprocess

import asyncpg

from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli_async, user_error
from tests.helpers.commands import change, override
from tests.helpers.database import fetch, seed
from tests.helpers.offsets import committed_offsets, log_ends
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

# a stopped worker only leaves the group once its session expired on the embedded broker: keep it short
FAST_GROUP = {"kafka_session_timeout_ms": 6000, "kafka_heartbeat_interval_ms": 1000}
# one lock wait, no second try: a command whose order is locked elsewhere is dead-lettered at once
IMPATIENT = {"db_lock_timeout_s": 0.3, "db_statement_timeout_tries": 1}


def headers(record) -> dict[str, bytes]:
    return dict(record.headers)


def position(record) -> str:
    return f"{record.partition}:{record.offset}"


def stdout_lines(result: subprocess.CompletedProcess) -> list[str]:
    return ok(result).stdout.splitlines()


async def state(settings: Settings) -> dict:
    """What a command can change: orders, history, the outbox and the processed records."""
    return {
        "orders": [tuple(r) for r in await fetch(settings, "SELECT order_id, status_id, version FROM orders "
                                                           "ORDER BY order_id")],
        "history": [tuple(r) for r in await fetch(settings, "SELECT order_id, version, event_id FROM order_history "
                                                            "ORDER BY order_id, version")],
        "outbox": [tuple(r) for r in await fetch(settings, "SELECT id, topic, event_id FROM outbox ORDER BY id")],
        "processed": [tuple(r) for r in await fetch(settings, "SELECT command_id, outcome FROM processed_commands "
                                                              "ORDER BY command_id")],
    }


class LockedOrder:
    """Another session holding an order's row lock, as a long transaction elsewhere would."""

    def __init__(self, settings: Settings, order_id: int) -> None:
        self.settings, self.order_id = settings, order_id

    async def __aenter__(self) -> "LockedOrder":
        self.conn = await asyncpg.connect(self.settings.database_url.get_secret_value())
        self.tx = self.conn.transaction()
        await self.tx.start()
        await self.conn.execute("SELECT 1 FROM orders WHERE order_id = $1 FOR UPDATE", self.order_id)
        return self

    async def release(self) -> None:
        if self.tx is not None:
            await self.tx.rollback()
            self.tx = None

    async def __aexit__(self, *exc) -> None:
        await self.release()
        await self.conn.close()


async def settled(settings: Settings, reader: TopicReader, order_id: int, key: str | None = None) -> None:
    """Everything sent before now with the key (the order id unless given) is processed: a `no_change`
    probe with the same key, so on the same partition after it, got its rejection."""
    [row] = await fetch(settings, "SELECT status_id FROM orders WHERE order_id = $1", order_id)
    probe = change(order_id, row["status_id"], role="manager")
    await produce(settings, [probe], key=key)
    [event] = await events_for(reader, {probe["command_id"]}, timeout=30)
    assert event["reason"] == "no_change"


async def test_a_processing_failure_redriven_after_the_fix_applies_exactly_once(settings, cli_env):
    """processing_failed (order locked) -> lock released -> `dlq redrive` applies it; a second redrive and a
    replay of the commands topic change nothing."""
    await seed(settings)
    settings = settings.model_copy(update={**IMPATIENT, **FAST_GROUP})
    stuck = change(1033, "Confirmed", note={"text": "after the fix"})
    async with TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        async with running_worker(settings):
            async with LockedOrder(settings, 1033):
                await produce(settings, [stuck], headers=[("actor-token", b"kept-as-is")])
                await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
            [letter] = dlq.records
            assert headers(letter)["error.reason"] == b"processing_failed"

            header, *listing = stdout_lines(await run_cli_async(cli_env, "dlq", "list"))
            assert header.split("\t") == ["POSITION", "WRITTEN", "REASON", "ORIGINAL", "COMMAND_ID", "SIZE", "NOTES"]
            assert len(listing) == 1
            fields = listing[0].split("\t")
            assert fields[0] == position(letter) and fields[2] == "processing_failed"
            assert fields[3] == f"{settings.commands_topic}:{headers(letter)['original.partition'].decode()}:0"
            assert fields[4] == stuck["command_id"] and fields[5] == f"{len(letter.value)} bytes"

            shown = stdout_lines(await run_cli_async(cli_env, "dlq", "show", position(letter)))
            assert "  error.reason: processing_failed" in shown and "  actor-token: (redacted, 10 bytes)" in shown
            assert "kept-as-is" not in "\n".join(shown)  # a token is never printed
            assert f"value: {letter.value.decode()}" in shown

            done = stdout_lines(await run_cli_async(cli_env, "dlq", "redrive", "--offset", position(letter)))
            assert done[0].startswith(f"{position(letter)} -> {settings.commands_topic}:")
            assert done[0].endswith("(redrive.count 1)")
            assert done[-1] == f"redrove 1 dead letter to {settings.commands_topic}"
            [applied] = await events_for(events, {stuck["command_id"]}, timeout=30)
            assert applied["type"] == "OrderStatusChanged" and applied["version"] == 1
            assert applied["note"]["text"] == "after the fix"

            # the same dead letter again: a duplicate of the redrive
            ok(await run_cli_async(cli_env, "dlq", "redrive", "--all"))
            await settled(settings, events, 1033)
        after_redrive = await state(settings)
        assert [e["version"] for e in events.values() if e.get("command_id") == stuck["command_id"]] == [1]

        # a replay of the commands topic from the beginning: the original, both redrives, the probe
        group, topic = settings.worker_group, settings.commands_topic
        await replay_to_earliest(cli_env, group, topic)
        ends = await log_ends(settings, topic)
        async with running_worker(settings):
            await wait_until(lambda: _committed_all(settings, group, topic, ends), 40, "the replay to be consumed")
        assert await state(settings) == after_redrive
        assert len(dlq.records) == 1


async def _committed_all(settings: Settings, group: str, topic: str, ends: dict[int, int]) -> bool:
    committed = await committed_offsets(settings, group, topic)
    return all(committed.get(p) == end for p, end in ends.items() if end)


async def replay_to_earliest(cli_env: dict[str, str], group: str, topic: str, timeout: float = 40.0) -> None:
    """`orderstatus replay --to-earliest`, retried until the broker no longer counts the stopped worker."""
    results: list[subprocess.CompletedProcess] = []

    async def answered():
        results.append(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-earliest"))
        return results[-1].returncode == 0 or "is active" not in results[-1].stderr

    await wait_until(answered, timeout, "the group to look inactive", interval=0.5)
    ok(results[-1])


async def test_a_redrive_that_fails_again_returns_to_the_dlq_with_its_count(settings, cli_env):
    """While the cause stays, each redrive is dead-lettered again: the copies carry redrive.count 1, then 2;
    after the fix the third redrive applies the command once."""
    await seed(settings)
    settings = settings.model_copy(update=IMPATIENT)
    stuck = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        async with LockedOrder(settings, 1033) as lock:
            await produce(settings, [stuck])
            for count in (1, 2):
                await dlq.wait_for(lambda _: len(dlq.records) == count, timeout=30, what=f"dead letter {count}")
                ok(await run_cli_async(cli_env, "dlq", "redrive", "--offset", position(dlq.records[-1])))
            await dlq.wait_for(lambda _: len(dlq.records) == 3, timeout=30, what="dead letter 3")
            counts = [headers(r).get("redrive.count") for r in dlq.records]
            assert counts == [None, b"1", b"2"]
            assert [headers(r)["error.reason"] for r in dlq.records] == [b"processing_failed"] * 3
            assert all(r.value == dlq.records[0].value for r in dlq.records)
            listing = stdout_lines(await run_cli_async(cli_env, "dlq", "list", "--reason", "processing_failed",
                                                       "--no-header"))
            assert listing[2].endswith("redriven 2x")
            await lock.release()
        done = stdout_lines(await run_cli_async(cli_env, "dlq", "redrive", "--offset", position(dlq.records[-1])))
        assert done[0].endswith("(redrive.count 3)")
        [applied] = await events_for(events, {stuck["command_id"]}, timeout=30)
        assert applied["type"] == "OrderStatusChanged"
        # the earlier dead letters of the same command, redriven now, apply nothing more
        ok(await run_cli_async(cli_env, "dlq", "redrive", "--reason", "processing_failed"))
        await settled(settings, events, 1033)
        assert [e["version"] for e in events.values() if e.get("command_id") == stuck["command_id"]] == [1]
        [row] = await fetch(settings, "SELECT version FROM orders WHERE order_id = 1033")
        assert row["version"] == 1 and len(dlq.records) == 3


async def test_a_command_recorded_invalid_is_decided_again_after_the_limit_is_raised(settings, cli_env):
    """An override refused on the wire (more items than ORDERSTATUS_MAX_WIRE_ITEMS) is recorded invalid; after
    the limit is raised its redrive applies it under new event ids, once."""
    await seed(settings)
    batch = override([(1033, "OnHold"), (1031, "OnHold")])
    async with TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        async with running_worker(settings.model_copy(update={"max_wire_items": 1})):
            await produce(settings, [batch])
            [refused] = await events_for(events, {batch["command_id"]}, timeout=30)
            await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
        assert refused["reason"] == "invalid_command"
        [outcome] = await fetch(settings, "SELECT outcome FROM processed_commands WHERE command_id = $1",
                                batch["command_id"])
        assert outcome["outcome"] == "invalid:validation_failed"

        async with running_worker(settings):  # the fix: the default limit
            dry = stdout_lines(await run_cli_async(cli_env, "dlq", "redrive", "--reason", "validation_failed",
                                                   "--dry-run"))
            assert dry == [f"{position(dlq.records[0])} -> {settings.commands_topic} (redrive.count 1)",
                           f"would redrive 1 dead letter to {settings.commands_topic}"]
            ok(await run_cli_async(cli_env, "dlq", "redrive", "--reason", "validation_failed"))
            await events.wait_for(lambda values: any(v.get("type") == "OrderStatusOverrideCompleted"
                                                     for v in values), timeout=30, what="the summary")
            ok(await run_cli_async(cli_env, "dlq", "redrive", "--all"))  # again: a duplicate
            await settled(settings, events, 1033, key=batch["command_id"])  # the batch's key and partition
        mine = [e for e in events.values() if e.get("command_id") == batch["command_id"]]
        assert sorted(e["type"] for e in mine) == ["OrderStatusChangeRejected", "OrderStatusChanged",
                                                   "OrderStatusChanged", "OrderStatusOverrideCompleted"]
        assert len({e["event_id"] for e in mine}) == 4
        [summary] = [e for e in mine if e["type"] == "OrderStatusOverrideCompleted"]
        assert all(r["success"] for r in summary["results"])
        versions = await fetch(settings, "SELECT order_id, version FROM orders WHERE order_id IN (1031, 1033)")
        assert {r["order_id"]: r["version"] for r in versions} == {1031: 1, 1033: 1}
        [outcome] = await fetch(settings, "SELECT outcome FROM processed_commands WHERE command_id = $1",
                                batch["command_id"])
        assert outcome["outcome"] == "applied" and len(dlq.records) == 1


async def test_dlq_show_escapes_bytes_and_cuts_long_values(settings, cli_env):
    """Terminal control bytes and invalid UTF-8 are escaped; a value over --max-bytes is cut with a note;
    positions that do not exist are one line on stderr."""
    await seed(settings)
    nasty = b"\x1b[31mred\x00\xfe" + b"x" * 5000
    async with running_worker(settings), TopicReader(settings, settings.dlq_topic) as dlq:
        await produce(settings, [nasty], headers=[("trace", b"\x07bell"), ("empty", None)])
        await dlq.wait_for(lambda _: dlq.records, timeout=30, what="the dead letter")
    [letter] = dlq.records
    shown = ok(await run_cli_async(cli_env, "dlq", "show", position(letter), "--max-bytes", "100")).stdout
    assert "\x1b" not in shown and "\x00" not in shown and "\x07" not in shown
    assert "value: \\x1b[31mred\\x00\\xfe" + "x" * 90 + " ... [4910 more bytes not shown]" in shown
    assert "  trace: \\x07bell" in shown and "  empty: (null)" in shown
    [header, line] = stdout_lines(await run_cli_async(cli_env, "dlq", "list", "--reason", "not_json"))
    assert header.startswith("POSITION\t") and line.split("\t")[4:7] == ["-", f"{len(nasty)} bytes", "-"]
    assert stdout_lines(await run_cli_async(cli_env, "dlq", "list", "--reason", "too_large")) == []

    user_error(await run_cli_async(cli_env, "dlq", "show", "5"), "3 partitions", "PARTITION:OFFSET")
    user_error(await run_cli_async(cli_env, "dlq", "show", f"{letter.partition}:99"), "no dead letter at")
    user_error(await run_cli_async(cli_env, "dlq", "redrive", "--all", "--reason", "not_json"), "exactly one of")
    user_error(await run_cli_async(cli_env, "dlq", "redrive", "--all", "--rate", "0/s"), "--rate")
    user_error(await run_cli_async(cli_env, "dlq", "list", "--since", "yesterday"), "--since")
