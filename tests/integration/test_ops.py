"""Operator commands end to end (DESIGN §4): `orderstatus replay` resets a stopped group's offsets and a
replayed commands topic changes nothing (§7.2); `orderstatus republish` re-emits stored events byte for byte.

Real broker and Postgres; the CLI runs as a subprocess (in a thread, so an in-process worker keeps
heartbeating meanwhile). Committed offsets are read with an aiokafka consumer of the group that only
assigns partitions (the admin API for group offsets does not work on the embedded broker)."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from datetime import datetime, timedelta, timezone

from service.runtime.settings import Settings
from tests.helpers.cli import ok, run_cli_async, user_error
from tests.helpers.commands import change, override
from tests.helpers.database import UNPUBLISHED, fetch, seed
from tests.helpers.offsets import commit_offsets, committed_offsets, end_offsets, log_ends, wait_committed
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.waiting import wait_until

# a worker that stops sends no LeaveGroup at generation 0 (the embedded broker's first generation), so the
# group only looks empty once its session expired: keep that short (6 s is Kafka's minimum by default)
FAST_GROUP = {"kafka_session_timeout_ms": 6000, "kafka_heartbeat_interval_ms": 1000}
PAST = "2000-01-01T00:00:00+00:00"


async def replay_once_inactive(env: dict[str, str], *args: str, timeout: float = 40.0) -> subprocess.CompletedProcess:
    """Run `replay` until the broker no longer counts the stopped worker as a member of the group."""
    results: list[subprocess.CompletedProcess] = []

    async def answered():
        results.append(await run_cli_async(env, "replay", *args))
        return results[-1].returncode == 0 or "is active" not in results[-1].stderr

    try:
        await wait_until(answered, timeout, "the group to look inactive", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {results[-1].stderr.strip()}") from None
    return results[-1]


def lines(result: subprocess.CompletedProcess) -> list[str]:
    """The stdout lines of a command that must have succeeded."""
    return ok(result).stdout.splitlines()


async def snapshot(settings: Settings) -> dict:
    """Everything a command can change in Postgres."""
    return {
        "orders": [tuple(r) for r in await fetch(settings, "SELECT order_id, status_id, version FROM orders "
                                                           "ORDER BY order_id")],
        "history": [tuple(r) for r in await fetch(settings, "SELECT order_id, version, note_text FROM order_history "
                                                            "ORDER BY order_id, version")],
        "reservations": [tuple(r) for r in await fetch(settings, "SELECT * FROM order_reservations ORDER BY 1, 2")],
        "coupons": [tuple(r) for r in await fetch(settings, "SELECT * FROM order_coupons ORDER BY 1, 2")],
        "processed": [tuple(r) for r in await fetch(settings, "SELECT command_id, outcome FROM processed_commands "
                                                              "ORDER BY command_id")],
        "outbox": [tuple(r) for r in await fetch(settings, "SELECT id, event_id FROM outbox ORDER BY id")],
    }


def mixed_commands() -> list[dict]:
    """Successes, rejections and an override batch over several orders (and so several partitions)."""
    return [
        change(1033, "Confirmed"),
        change(1033, "ReadyToShip"),
        change(1029, 21, role="client", client_id="c-1"),  # a cancel: removes reservations and coupons
        change(1030, 21, role="client", client_id="c-1"),  # rejected: cancel_has_payments
        change(2001, "Received"),  # rejected: transition_not_allowed
        override([(1034, "CourierClaim"), (4242, "OnHold")]),  # one success, one order_not_found
        change(3001, "QuoteAccepted", role="client", client_id="c-4"),
    ]


async def process(settings: Settings, commands: list[dict]) -> None:
    """Run a worker until every command has its events, then stop it (its relay drains the outbox)."""
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, commands)
        await events_for(reader, {c["command_id"] for c in commands})
    assert await fetch(settings, f"SELECT id FROM outbox WHERE {UNPUBLISHED}") == []


# ---------------------------------------------------------------- replay


async def test_replay_to_earliest_rereads_every_command_and_changes_nothing(settings, cli_env):
    """After --to-earliest a restarted worker re-reads the whole commands topic and changes nothing (§7.2)."""
    settings = settings.model_copy(update=FAST_GROUP)
    await seed(settings)
    commands = mixed_commands()
    await process(settings, commands)
    group, topic = settings.worker_group, settings.commands_topic
    ends = await log_ends(settings, topic)
    assert sum(ends.values()) == len(commands) and len([p for p in ends if ends[p]]) >= 2
    done = {p: (end or None) for p, end in ends.items()}  # a partition that got nothing has no commit
    assert await committed_offsets(settings, group, topic) == done
    before = await snapshot(settings)
    events_end = await log_ends(settings, settings.events_topic)
    dlq_end = await log_ends(settings, settings.dlq_topic)

    dry = lines(await replay_once_inactive(cli_env, "--group", group, "--topic", topic, "--to-earliest",
                                               "--dry-run"))
    moves = [f"{topic}:{p}: {'none' if done[p] is None else done[p]} -> 0" for p in sorted(ends)]
    assert dry == [f"{m} (dry run)" for m in moves]
    assert await committed_offsets(settings, group, topic) == done

    assert lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-earliest")) == moves
    assert await committed_offsets(settings, group, topic) == {p: 0 for p in ends}

    async with running_worker(settings):
        await wait_committed(settings, group, topic, {p: end for p, end in ends.items()})
    assert await snapshot(settings) == before
    assert await log_ends(settings, settings.events_topic) == events_end
    assert await log_ends(settings, settings.dlq_topic) == dlq_end


async def test_replay_refuses_a_group_with_a_running_worker(settings, cli_env):
    """A group with a live member is refused with one line, exit non-zero, and its offsets stay as they were."""
    await seed(settings)
    first = change(1033, "Confirmed")
    group, topic = settings.worker_group, settings.commands_topic
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [first])
        await events_for(reader, {first["command_id"]})  # the worker is a member: it consumed the command
        before = await committed_offsets(settings, group, topic)
        assert sorted(o for o in before.values() if o is not None) == [1]
        for options in (["--to-earliest"], ["--to-earliest", "--dry-run"], ["--to-offset", "0:0"]):
            result = await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, *options)
            user_error(result, group, "active")
        assert await committed_offsets(settings, group, topic) == before
        # the refusal did not disturb the member: it still applies the next command
        second = change(1033, "ReadyToShip")
        await produce(settings, [second])
        [event] = await events_for(reader, {second["command_id"]})
    assert event["type"] == "OrderStatusChanged" and event["version"] == 2


async def _group_with_offsets(settings: Settings, count: int = 30) -> tuple[str, dict[int, int]]:
    """Commands on every partition (no worker), and a group that consumed all of them and stopped."""
    await seed(settings)
    await produce(settings, [change(5000 + i, "Confirmed") for i in range(count)])
    ends = await log_ends(settings, settings.commands_topic)
    assert sum(ends.values()) == count and all(end >= 2 for end in ends.values()), ends
    group = f"ops-{uuid.uuid4().hex[:8]}"
    await commit_offsets(settings, group, settings.commands_topic, ends)
    return group, ends


async def test_replay_to_offset_moves_only_the_named_partition(settings, cli_env):
    """--to-offset 0:1 moves partition 0 to offset 1 and leaves the other partitions where they were."""
    group, ends = await _group_with_offsets(settings)
    topic = settings.commands_topic

    dry = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-offset", "0:1",
                              "--dry-run"))
    assert dry == [f"{topic}:0: {ends[0]} -> 1 (dry run)"]
    assert await committed_offsets(settings, group, topic) == ends

    moved = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-offset", "0:1"))
    assert moved == [f"{topic}:0: {ends[0]} -> 1"]
    assert await committed_offsets(settings, group, topic) == {**ends, 0: 1}

    both = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-offset", "2:0",
                               "--to-offset", f"0:{ends[0]}"))
    assert both == [f"{topic}:0: 1 -> {ends[0]}", f"{topic}:2: {ends[2]} -> 0"]
    assert await committed_offsets(settings, group, topic) == {**ends, 2: 0}


async def test_replay_to_datetime_moves_to_the_first_offset_at_or_after_it(settings, cli_env):
    """--to-datetime: before the first message -> beginning, between two batches -> second batch, future -> end."""
    group, first_ends = await _group_with_offsets(settings)
    topic = settings.commands_topic
    await asyncio.sleep(0.02)  # producer timestamps are in milliseconds: keep the batches apart
    between = datetime.now(timezone.utc)
    await asyncio.sleep(0.02)
    await produce(settings, [change(6000 + i, "Confirmed") for i in range(30)], separately=True)
    ends = await log_ends(settings, topic)
    assert all(ends[p] > first_ends[p] for p in ends), (first_ends, ends)
    # "the end" is what the broker reports: one record per batch keeps the embedded broker's report exact
    assert await end_offsets(settings, topic) == ends
    await commit_offsets(settings, group, topic, ends)

    past = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-datetime", PAST))
    assert past == [f"{topic}:{p}: {ends[p]} -> 0" for p in sorted(ends)]
    assert await committed_offsets(settings, group, topic) == {p: 0 for p in ends}

    middle = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic,
                                 "--to-datetime", between.isoformat()))
    assert middle == [f"{topic}:{p}: 0 -> {first_ends[p]}" for p in sorted(ends)]
    assert await committed_offsets(settings, group, topic) == first_ends

    future = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    dry = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-datetime", future,
                              "--dry-run"))
    assert dry == [f"{topic}:{p}: {first_ends[p]} -> {ends[p]} (dry run)" for p in sorted(ends)]
    assert await committed_offsets(settings, group, topic) == first_ends
    naive = future.replace("+00:00", "")  # no offset given: read as UTC
    moved = lines(await run_cli_async(cli_env, "replay", "--group", group, "--topic", topic, "--to-datetime", naive))
    assert moved == [f"{topic}:{p}: {first_ends[p]} -> {ends[p]}" for p in sorted(ends)]
    assert await committed_offsets(settings, group, topic) == ends


async def test_replay_refuses_mistakes_with_one_line_and_commits_nothing(settings, cli_env):
    """Unknown topic, bad --to-offset or date, none or two --to-* options: one stderr line, exit 1, no commit."""
    group, ends = await _group_with_offsets(settings)
    topic = settings.commands_topic
    base = ["--group", group, "--topic", topic]
    cases = [
        (["--group", group, "--topic", "no-such-topic", "--to-earliest"], ["no-such-topic", "does not exist"]),
        ([*base], ["exactly one"]),
        ([*base, "--to-earliest", "--to-offset", "0:0"], ["exactly one"]),
        ([*base, "--to-earliest", "--to-datetime", PAST], ["exactly one"]),
        ([*base, "--to-offset", "0-1"], ["PARTITION:OFFSET", "0-1"]),
        ([*base, "--to-offset", "x:1"], ["PARTITION:OFFSET"]),
        ([*base, "--to-offset", "0:1:2"], ["PARTITION:OFFSET"]),
        ([*base, "--to-offset", "0:"], ["PARTITION:OFFSET"]),
        ([*base, "--to-offset", "0:1", "--to-offset", "9:0"], ["no partition 9"]),
        ([*base, "--to-offset", "0:-1"], ["0 or more", "0:-1"]),
        ([*base, "--to-offset", "-1:0"], ["0 or more", "-1:0"]),
        ([*base, "--to-datetime", "yesterday"], ["--to-datetime", "yesterday"]),
    ]
    for args, words in cases:
        user_error(await run_cli_async(cli_env, "replay", *args), *words)
    assert await committed_offsets(settings, group, topic) == ends
    missing = await run_cli_async(cli_env, "replay", "--topic", topic, "--to-earliest")  # click's own usage error
    assert missing.returncode != 0 and "--group" in missing.stderr and "Traceback" not in missing.stderr


# ---------------------------------------------------------------- republish


def by_partition(records) -> dict[int, list]:
    parts: dict[int, list] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        parts.setdefault(record.partition, []).append(record)
    return parts


def wire(record) -> tuple:
    """What a downstream consumer sees of a record: key, value bytes and headers (in order)."""
    return record.key, record.value, tuple(record.headers)


async def _processed_events(settings: Settings) -> list:
    """Process the mixed commands and return the records the worker published on the events topic."""
    await seed(settings)
    await process(settings, mixed_commands())
    stored = len(await fetch(settings, "SELECT id FROM outbox WHERE topic = $1", settings.events_topic))
    async with TopicReader(settings, settings.events_topic) as reader:
        await reader.wait_for(lambda values: len(values) >= stored, what=f"{stored} events")
    assert len(reader.records) == stored
    return reader.records


async def test_republish_reemits_every_stored_event_byte_for_byte_in_order(settings, cli_env):
    """`republish --since` re-sends every stored event with identical key, value, headers, partition and order."""
    originals = await _processed_events(settings)
    ends = await log_ends(settings, settings.events_topic)
    result = lines(await run_cli_async(cli_env, "republish", "--since", PAST))
    assert result == [f"republished {len(originals)} events to {settings.events_topic}"]
    async with TopicReader(settings, settings.events_topic) as reader:
        await reader.wait_for(lambda values: len(values) >= 2 * len(originals), what="the republished events")
    assert len(reader.records) == 2 * len(originals)
    old, new = by_partition(originals), by_partition(reader.records)
    assert set(new) == set(old)
    for partition, records in new.items():
        assert [r.offset for r in records[len(old[partition]):]][:1] == [ends[partition]]
        assert [wire(r) for r in records] == [wire(r) for r in old[partition]] * 2
    headers = dict(originals[0].headers)
    assert {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type"} <= set(headers)


async def test_republish_one_order_and_a_future_since(settings, cli_env):
    """--order-id re-emits only that order's events, identical and in order; a future --since sends nothing."""
    originals = await _processed_events(settings)
    ends = await log_ends(settings, settings.events_topic)

    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert lines(await run_cli_async(cli_env, "republish", "--since", future)) == [
        f"republished 0 events to {settings.events_topic}"]
    assert await log_ends(settings, settings.events_topic) == ends  # the command exited: nothing was sent

    wanted = [r for r in sorted(originals, key=lambda r: (r.partition, r.offset)) if r.key == b"1033"]
    assert len(wanted) == 2  # Draft -> Confirmed -> ReadyToShip
    result = lines(await run_cli_async(cli_env, "republish", "--since", PAST, "--order-id", "1033"))
    assert result == [f"republished 2 events to {settings.events_topic}"]
    async with TopicReader(settings, settings.events_topic) as reader:
        await reader.wait_for(lambda values: len(values) >= len(originals) + 2, what="the republished events")
    assert len(reader.records) == len(originals) + 2
    again = [r for r in sorted(reader.records, key=lambda r: (r.partition, r.offset))
             if r.offset >= ends[r.partition]]
    assert [wire(r) for r in again] == [wire(r) for r in wanted]
    assert {r.partition for r in again} == {wanted[0].partition}
    refused = await run_cli_async(cli_env, "republish", "--since", "last tuesday")
    user_error(refused, "--since", "last tuesday")
