"""`orderstatus dev --demo`: one scripted command per rule of DESIGN §2 against the sample data,
sent through the real broker, with each outcome read back from the events topic as a table."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import click
from aiokafka import AIOKafkaConsumer

from service.adapters.kafka.clients import make_producer
from service.adapters.postgres.connection import connect
from service.adapters.postgres.orders import upsert_orders
from service.adapters.postgres.rules import fetch_rules
from service.contract.orders_file import parse_orders
from service.ops.send import prepare_command, send_commands
from service.runtime.settings import Settings


def _actor(role: str, client_id: str | None = None) -> dict:
    return {"id": f"demo-{role}", "role": role, **({"client_id": client_id} if client_id else {})}


def _change(order_id, status, role="staff", client_id=None, **extra) -> dict:
    return {"type": "ChangeOrderStatus", "order_id": order_id, "status": status, "actor": _actor(role, client_id), **extra}


def _override(items, role="manager", **extra) -> dict:
    return {"type": "OverrideOrderStatuses", "items": [{"order_id": o, "status": s} for o, s in items],
            "actor": _actor(role), **extra}


# rule, scenario, command (sample order ids; the demo runs on its own copies), expected outcome as printed
# (the events of one command, item events sorted, the summary last)
SCRIPT: list[tuple[str, str, dict, str]] = [
    ("R1", "unknown target status", _change(1033, "NoSuchStatus"), "rejected: status_not_found"),
    ("R2", "status of another order type", _change(1033, 101), "rejected: status_not_available"),
    ("R3", "hidden status", _change(1033, "Archived"), "rejected: status_hidden"),
    ("R4", "client asks for another client's order", _change(1029, 21, "client", "c-9"), "rejected: order_not_found"),
    ("R5", "no edge Draft -> Dispatched", _change(1033, "Dispatched"), "rejected: transition_not_allowed"),
    ("R5", "manager-only edge tried by a client", _change(3003, "TranslationCancelled", "client", "c-5"),
     "rejected: role_not_permitted"),
    ("R5", "staff confirms a draft", _change(1033, "Confirmed"), "changed Draft->Confirmed v1"),
    ("R6", "cancel with payments", _change(1030, 21, "client", "c-1"), "rejected: cancel_has_payments"),
    ("R6", "cancel with goods-out notes", _change(1031, "CancelledByClient"), "rejected: cancel_has_goods_out_notes"),
    ("R6", "cancel an invoiced order", _change(1032, 21, "manager"), "rejected: cancel_order_invoiced"),
    ("R7/R8", "client cancels, public note", _change(1029, 21, "client", "c-1",
                                                    note={"text": "Customer asked to cancel", "is_public": True}),
     "changed Confirmed->CancelledByClient v1"),
    ("R10", "client accepts a quote, notify false", _change(3001, "QuoteAccepted", "client", "c-4", notify=False),
     "changed Quoted->QuoteAccepted v1"),
    ("R11", "manager overrides a dispatched order", _override([(1034, "OnHold")]),
     "changed Dispatched->OnHold v1 (override); summary 1/1 ok"),
    ("R11", "override to a non-overridable status", _override([(1033, "Dispatched")]),
     "rejected: override_not_allowed; summary 0/1 ok"),
    ("R11", "staff may not override", _override([(3003, "OnHold")], role="staff"),
     "rejected: role_not_permitted; summary 0/1 ok"),
    ("R12", "mixed batch (StoreFeeder sample)", _override([(2001, "OnHold"), (9999, "CancelledByClient"),
                                                          (3002, "Quoted")]),
     "changed Draft->OnHold v1 (override); rejected: order_not_found; rejected: override_not_allowed; "
     "summary 1/3 ok"),
    ("R12", "batch over the limit", _override([(2001, "OnHold")] * 51),
     "rejected: batch_too_large; summary: all 51 items refused (batch_too_large)"),
    ("R14", "change to the current status", _change(3002, "Delivered", "client", "c-4"), "rejected: no_change"),
    ("R14", "stale expected_status", _change(3002, "ResultsAccepted", "client", "c-4", expected_status="Quoted"),
     "rejected: stale_status"),
    ("R14", "compare-and-set succeeds", _change(3002, "ResultsAccepted", "client", "c-4", expected_status="Delivered"),
     "changed Delivered->ResultsAccepted v1"),
    ("§6.2", "invalid command (no actor)", {"type": "ChangeOrderStatus", "order_id": 1029, "status": 2},
     "rejected: invalid_command"),
]


SAMPLE_ORDERS = Path(__file__).resolve().parent / "samples" / "orders.jsonl"
MISSING = 9999  # the order the R12 sample names that does not exist
ROW_SPAN = 10_000  # each row's orders: base + row * ROW_SPAN + the sample id


def _order_ids(command: dict) -> list[int]:
    if "items" in command:
        return [item["order_id"] for item in command["items"]]
    return [command["order_id"]] if "order_id" in command else []


def _remap(command: dict, offset: int) -> dict:
    """The command on the row's own copies of the sample orders (the missing order stays missing)."""
    def moved(order_id: int) -> int:
        return order_id + offset

    if "items" in command:
        return {**command, "items": [{**item, "order_id": moved(item["order_id"])} for item in command["items"]]}
    return {**command, "order_id": moved(command["order_id"])} if "order_id" in command else dict(command)


def _describe(events: list[dict]) -> str:
    """The outcome events of one command in one line, without order ids (each row has its own copies)."""
    parts = []
    for e in events:
        if e["type"] == "OrderStatusChanged":
            parts.append(f"changed {e['from_status']['code']}->{e['to_status']['code']} v{e['version']}"
                         + (" (override)" if e["override"] else ""))
        elif e["type"] == "OrderStatusChangeRejected":
            parts.append(f"rejected: {e['reason']}")
        elif e.get("reason"):
            parts.append(f"summary: all {e['item_count']} items refused ({e['reason']})")
        else:
            ok = sum(r["success"] for r in e["results"])
            parts.append(f"summary {ok}/{len(e['results'])} ok")
    # the items of an override land on several partitions, so their events come in any order: sorted,
    # the summary last
    return "; ".join(sorted(parts, key=lambda part: (part.startswith("summary"), part)))


def _complete(events: list[dict], command: dict) -> bool:
    """All of a command's outcome events are in: an override ends with its summary."""
    if "items" in command:
        return any(e["type"] == "OrderStatusOverrideCompleted" for e in events)
    return bool(events)


async def _import_copies(settings: Settings) -> int:
    """Import a fresh copy of the sample orders each row names, above every order id in use, so the demo
    gives the same outcomes on a fresh and on a reused data directory; returns the base of the ids."""
    conn = await connect(settings.database_url.get_secret_value())
    try:
        highest = await conn.fetchval("SELECT coalesce(max(order_id), 0) FROM orders")
        base = (highest // 1_000_000 + 1) * 1_000_000
        samples = {json.loads(line)["order_id"]: json.loads(line) for line in SAMPLE_ORDERS.read_text().splitlines()}
        lines = []
        for row, (_, _, command, _) in enumerate(SCRIPT):
            for order_id in dict.fromkeys(_order_ids(command)):
                if order_id != MISSING:
                    lines.append(json.dumps({**samples[order_id], "order_id": base + row * ROW_SPAN + order_id}))
        rules = await fetch_rules(conn)
        await upsert_orders(conn, parse_orders(lines, rules), rules)
    finally:
        await conn.close()
    return base


async def run_demo(env: dict) -> list[tuple[str, str, str, str]]:
    """Send the script, print rule, scenario, expected and actual outcome per row; returns the rows."""
    settings = Settings(**{k[len("ORDERSTATUS_"):].lower(): v for k, v in env.items() if k.startswith("ORDERSTATUS_")})
    base = await _import_copies(settings)
    prepared = []
    for row, (_, _, command, _) in enumerate(SCRIPT):
        command = {**_remap(command, base + row * ROW_SPAN), "command_id": str(uuid.uuid4())}
        prepared.append(prepare_command(json.dumps(command), len(prepared) + 1, validate=False))
    consumer = AIOKafkaConsumer(settings.events_topic, bootstrap_servers=settings.kafka_bootstrap_servers,
                                auto_offset_reset="latest", group_id=None)
    await consumer.start()
    try:
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        producer = make_producer(settings)
        try:
            await producer.start()
            await send_commands(producer, settings.commands_topic, prepared)
        finally:
            await producer.stop()
        commands = {data["command_id"]: data for _, _, data in prepared}
        seen: dict[str, list[dict]] = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(_complete(seen.get(c, []), d) for c, d in commands.items()):
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    event = json.loads(m.value)
                    seen.setdefault(event.get("command_id"), []).append(event)
    finally:
        await consumer.stop()
    rows = []
    for (rule, scenario, _, expected), (_, _, data) in zip(SCRIPT, prepared):
        events = seen.get(data["command_id"])
        rows.append((rule, scenario, expected, _describe(events) if events else "no event yet"))
    width = max(len(expected) for *_, expected, _ in rows)
    click.echo(f"\nThe demo runs on its own copies of the sample orders (ids from {base}, one set per row).")
    click.echo(f"\n{'rule':6} {'scenario':40} {'':2} {'expected':{width}}  actual")
    click.echo(f"{'-' * 6} {'-' * 40} {'-' * 2} {'-' * width}  {'-' * 40}")
    for rule, scenario, expected, actual in rows:
        mark = "ok" if actual == expected else "!!"
        click.echo(f"{rule:6} {scenario:40} {mark:2} {expected:{width}}  {actual}")
    wrong = sum(actual != expected for *_, expected, actual in rows)
    click.echo(f"\n{len(rows) - wrong} of {len(rows)} outcomes as expected"
               + (f"; {wrong} differ (marked !!)" if wrong else "") + ".")
    click.echo("R13: `orderstatus transitions 3001 --role client --client-id c-4` lists what comes next.\n")
    return rows
