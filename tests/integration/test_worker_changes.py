"""ChangeOrderStatus end to end: real broker, real Postgres, the worker in this process."""

from __future__ import annotations

import json
import uuid

from service.adapters.postgres.connection import connect
from service.adapters.postgres.rules import replace_rules
from service.contract.rules_file import parse_rules
from tests.helpers.cli import ok, run_cli, run_cli_async, user_error
from tests.helpers.commands import change
from tests.helpers.database import SAMPLE_RULES, fetch, seed, url_of
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for

REJECTIONS = [
    # (reason, command)
    ("order_not_found", change(9999, "Confirmed")),
    ("order_not_found", change(1029, 21, role="client", client_id="c-2")),  # someone else's order looks missing
    ("status_not_found", change(1033, "NoSuchStatus")),
    ("status_not_found", change(1033, 777)),
    ("status_not_available", change(1033, "Quoted")),
    ("status_hidden", change(1033, "Archived")),
    ("no_change", change(1029, "Confirmed")),
    ("stale_status", change(1029, "ReadyToShip", expected_status="Draft")),
    ("transition_not_allowed", change(1033, "Dispatched")),
    ("role_not_permitted", change(3003, "TranslationCancelled", role="client", client_id="c-5")),
    ("cancel_has_goods_out_notes", change(1031, "CancelledByClient")),
    ("cancel_order_invoiced", change(1032, 21, role="manager")),
    ("cancel_has_payments", change(1030, 21, role="client", client_id="c-1")),
]


async def test_every_reason_code_is_published_and_changes_nothing(settings):
    """Each rejection reason arrives as OrderStatusChangeRejected; no order, note or reservation changes (R9)."""
    await seed(settings)
    before = await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id")
    commands = [c for _, c in REJECTIONS]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, commands)
        events = await events_for(reader, {c["command_id"] for c in commands})
    by_command = {e["command_id"]: e for e in events}
    for reason, command in REJECTIONS:
        event = by_command[command["command_id"]]
        assert event["type"] == "OrderStatusChangeRejected"
        assert event["reason"] == reason, (command, event)
        assert event["order_id"] == command["order_id"]
        assert event["requested_status"] == command["status"]
        assert event["message"]
    after = await fetch(settings, "SELECT order_id, status_id, version FROM orders ORDER BY order_id")
    assert before == after
    assert await fetch(settings, "SELECT * FROM order_history") == []
    assert len(await fetch(settings, "SELECT * FROM order_reservations")) == 2


async def test_successful_changes_write_status_note_version_and_side_effects(settings):
    """A cancel removes reservations and coupons, notes are kept or generated, versions count 1, 2."""
    await seed(settings)
    cancel = change(1029, 21, role="client", client_id="c-1", expected_status="Confirmed",
                    note={"text": "Customer asked to cancel", "is_public": True, "file_id": 28}, correlation_id="corr-1")
    confirm = change(1033, "Confirmed")
    ready = change(1033, 5, notify=False)
    commands = [cancel, confirm, ready]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, commands)
        events = await events_for(reader, {c["command_id"] for c in commands})
        records = {json.loads(r.value)["command_id"]: r for r in reader.records}
    by_command = {e["command_id"]: e for e in events}

    cancelled = by_command[cancel["command_id"]]
    assert cancelled["type"] == "OrderStatusChanged"
    assert cancelled["from_status"] == {"id": 2, "code": "Confirmed", "name": "Confirmed"}
    assert cancelled["to_status"] == {"id": 21, "code": "CancelledByClient", "name": "Cancelled"}
    assert cancelled["version"] == 1 and cancelled["order_type"] == "SO" and cancelled["override"] is False
    assert cancelled["note"] == {"text": "Customer asked to cancel", "is_public": True, "file_id": 28}
    assert cancelled["removed_reservations"] == ["R-1"] and cancelled["removed_coupons"] == ["SPRING10"]
    assert cancelled["actor"] == {"id": "client-1", "role": "client", "client_id": "c-1", "name": None}
    assert cancelled["notify"] is True and cancelled["correlation_id"] == "corr-1"

    confirmed, readied = by_command[confirm["command_id"]], by_command[ready["command_id"]]
    assert (confirmed["version"], readied["version"]) == (1, 2)
    assert confirmed["note"]["text"] == "Status changed from Draft to Confirmed by staff."
    assert confirmed["note"]["is_public"] is False and confirmed["note"]["file_id"] is None
    assert readied["notify"] is False and readied["removed_reservations"] == []

    headers = dict(records[cancel["command_id"]].headers)
    assert headers["ce_specversion"] == b"1.0" and headers["ce_source"] == b"orderstatus"
    assert headers["ce_id"] == cancelled["event_id"].encode() and headers["ce_type"] == b"OrderStatusChanged"
    assert headers["ce_subject"] == b"1029" and headers["content-type"] == b"application/json"
    assert records[cancel["command_id"]].key == b"1029"

    assert await fetch(settings, "SELECT * FROM order_reservations WHERE order_id = 1029") == []
    assert await fetch(settings, "SELECT * FROM order_coupons WHERE order_id = 1029") == []
    history = await fetch(settings, "SELECT version, note_text, is_public, file_id FROM order_history "
                                    "WHERE order_id = 1029")
    assert [tuple(r) for r in history] == [(1, "Customer asked to cancel", True, 28)]
    rows = await fetch(settings, "SELECT order_id, status_id, version FROM orders WHERE order_id IN (1029, 1033) "
                                 "ORDER BY order_id")
    assert [tuple(r) for r in rows] == [(1029, 21, 1), (1033, 5, 2)]


async def test_duplicate_command_ids_have_no_new_effect(settings):
    """A redelivered or replayed command id applies nothing and emits nothing new (§7.2)."""
    await seed(settings)
    first = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [first, first])  # duplicate inside one poll batch
        await events_for(reader, {first["command_id"]})
        await produce(settings, [first])  # duplicate after it was applied
        marker = change(1033, "ReadyToShip")  # processed after the duplicate, so the duplicate was seen
        await produce(settings, [marker])
        await events_for(reader, {marker["command_id"]})
        events = [e for e in reader.values() if e["command_id"] == first["command_id"]]
    assert len(events) == 1
    rows = await fetch(settings, "SELECT version FROM orders WHERE order_id = 1033")
    assert rows[0]["version"] == 2
    assert len(await fetch(settings, "SELECT * FROM order_history WHERE order_id = 1033")) == 2


async def test_a_thousand_interleaved_commands_apply_in_partition_order(settings):
    """1,000 commands over 5 orders, each valid only after the previous one, all apply with versions 1..200."""
    orders = [{"order_id": 5000 + i, "order_type": "SO", "status": "Confirmed"} for i in range(5)]
    await seed(settings, orders=orders, partitions=3)
    commands = []
    for step in range(200):
        for order in orders:
            expected, target = ("Confirmed", "OnHold") if step % 2 == 0 else ("OnHold", "Confirmed")
            commands.append(change(order["order_id"], target, role="manager", expected_status=expected))
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, commands)
        events = await events_for(reader, {c["command_id"] for c in commands}, timeout=120)
    assert {e["type"] for e in events} == {"OrderStatusChanged"}
    for order in orders:
        versions = [e["version"] for e in events if e["order_id"] == order["order_id"]]
        assert versions == list(range(1, 201))
    rows = await fetch(settings, "SELECT version, status_id FROM orders WHERE order_id >= 5000")
    assert {(r["version"], r["status_id"]) for r in rows} == {(200, 2)}


async def test_invalid_messages_are_dead_lettered_and_the_partition_keeps_flowing(settings):
    """Not JSON, unknown type and failed validation go to the DLQ byte for byte; valid work continues."""
    await seed(settings, partitions=1)
    not_json = b"\xff\x00 definitely not json"
    unknown = json.dumps({"type": "DeleteOrder", "command_id": "cmd-unknown-type", "order_id": 1}).encode()
    invalid = json.dumps({"type": "ChangeOrderStatus", "command_id": "cmd-invalid", "order_id": 1029,
                          "status": 21, "actor": {"id": "x", "role": "client"}}).encode()  # client without client_id
    follow_up = change(1033, "Confirmed")
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        await produce(settings, [not_json, unknown, invalid, follow_up])
        values = await events_for(events, {"cmd-unknown-type", "cmd-invalid", follow_up["command_id"]})
        await dlq.wait_for(lambda _: len(dlq.records) >= 3, what="3 dead letters")
    letters = dlq.records
    assert [r.value for r in letters] == [not_json, unknown, invalid]
    reasons = [dict(r.headers)["error.reason"] for r in letters]
    assert reasons == [b"not_json", b"unknown_type", b"validation_failed"]
    for record in letters:
        headers = dict(record.headers)
        assert headers["original.topic"] == settings.commands_topic.encode()
        assert headers["original.partition"] == b"0"
        assert headers["error.message"]
    assert [int(dict(r.headers)["original.offset"]) for r in letters] == [0, 1, 2]
    by_command = {v["command_id"]: v for v in values}
    assert by_command["cmd-invalid"]["reason"] == "invalid_command"
    assert by_command["cmd-invalid"]["order_id"] == 1029
    assert by_command["cmd-unknown-type"]["reason"] == "invalid_command"
    assert by_command[follow_up["command_id"]]["type"] == "OrderStatusChanged"


async def test_rules_reload_applies_to_the_next_command_without_restart(settings):
    """After a rules load, the running worker decides the next command with the new rules (hot reload)."""
    await seed(settings)
    first = change(2001, "Received")  # PO Draft -> Received: no such edge in the sample rules
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [first])
        [rejected] = await events_for(reader, {first["command_id"]})
        text = SAMPLE_RULES.read_text() + (
            "  - {order_type: PO, from: Draft, to: Received, roles: [staff]}\n"
        )
        conn = await connect(url_of(settings))
        try:
            await replace_rules(conn, parse_rules(text))
        finally:
            await conn.close()
        second = change(2001, "Received")
        await produce(settings, [second])
        [accepted] = await events_for(reader, {second["command_id"]})
    assert rejected["reason"] == "transition_not_allowed"
    assert accepted["type"] == "OrderStatusChanged" and accepted["to_status"]["code"] == "Received"


async def test_send_history_and_transitions_commands(settings, cli_env):
    """`orderstatus send` publishes a command the worker applies; `history` and `transitions` show the result."""
    await seed(settings)
    command = json.dumps({"type": "ChangeOrderStatus", "order_id": 3001, "status": "QuoteAccepted",
                          "actor": {"id": "u-7", "role": "client", "client_id": "c-4"},
                          "note": {"text": "Looks good", "is_public": True}})
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        sent = ok(await run_cli_async(cli_env, "send", command))
        command_id = json.loads(sent.stdout)["command_id"]
        uuid.UUID(command_id)
        await events_for(reader, {command_id})
    shown = ok(run_cli(cli_env, "history", "3001"))
    history = json.loads(shown.stdout)
    assert history["status"]["code"] == "QuoteAccepted" and history["version"] == 1
    assert history["history"][0]["note"] == {"text": "Looks good", "is_public": True, "file_id": None}
    listed = json.loads(ok(run_cli(cli_env, "transitions", "3001", "--role", "staff")).stdout)
    assert [s["code"] for s in listed["transitions"]] == ["InProgress"]
    assert listed["overrides"] == [] and listed["can_override_status"] is False
    user_error(run_cli(cli_env, "send", '{"type": "ChangeOrderStatus"}'))
    user_error(run_cli(cli_env, "history", "424242"), "not found")


async def test_values_postgres_cannot_store_are_invalid_commands_not_stalls(settings):
    """NUL characters, lone surrogates and out-of-range ids are rejected as invalid_command; work goes on."""
    await seed(settings, partitions=1)
    nul_note = change(1029, 21, role="client", client_id="c-1", note={"text": "nul \x00"}, command_id="cmd-nul")
    surrogate = change(1029, 21, role="client", client_id="c-1", command_id="cmd-surrogate")
    surrogate["actor"]["id"] = "u-\ud800"
    huge = change(2**63, "Confirmed", command_id="cmd-huge")
    follow_up = change(1033, "Confirmed")
    values = [json.dumps(c).encode() for c in (nul_note, surrogate, huge)]
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as events, \
            TopicReader(settings, settings.dlq_topic) as dlq:
        await produce(settings, [*values, follow_up])
        found = await events_for(events, {"cmd-nul", "cmd-surrogate", "cmd-huge", follow_up["command_id"]})
        await dlq.wait_for(lambda _: len(dlq.records) >= 3, what="3 dead letters")
    by_command = {e["command_id"]: e for e in found}
    for command_id in ("cmd-nul", "cmd-surrogate", "cmd-huge"):
        assert by_command[command_id]["reason"] == "invalid_command"
    assert by_command["cmd-huge"]["order_id"] is None
    assert by_command["cmd-surrogate"]["actor"] == {"id": None, "role": "client", "client_id": "c-1"}
    assert [r.value for r in dlq.records] == values
    assert by_command[follow_up["command_id"]]["type"] == "OrderStatusChanged"
