"""`orderstatus dev --demo`: one scripted command per rule of DESIGN §2 against the sample data,
sent through the real broker, with each outcome read back from the events topic as a table."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import click
from aiokafka import AIOKafkaConsumer

from service.adapters.kafka.clients import make_producer
from service.ops.send import prepare_command, send_commands
from service.runtime.settings import Settings


def _actor(role: str, client_id: str | None = None) -> dict:
    return {"id": f"demo-{role}", "role": role, **({"client_id": client_id} if client_id else {})}


def _change(order_id, status, role="staff", client_id=None, **extra) -> dict:
    return {"type": "ChangeOrderStatus", "order_id": order_id, "status": status, "actor": _actor(role, client_id), **extra}


def _override(items, role="manager", **extra) -> dict:
    return {"type": "OverrideOrderStatuses", "items": [{"order_id": o, "status": s} for o, s in items],
            "actor": _actor(role), **extra}


SCRIPT: list[tuple[str, str, dict]] = [
    ("R1", "unknown target status", _change(1033, "NoSuchStatus")),
    ("R2", "status of another order type", _change(1033, 101)),
    ("R3", "hidden status", _change(1033, "Archived")),
    ("R4", "client asks for another client's order", _change(1029, 21, "client", "c-9")),
    ("R5", "no edge Draft -> Dispatched", _change(1033, "Dispatched")),
    ("R5", "manager-only edge tried by a client", _change(3003, "TranslationCancelled", "client", "c-5")),
    ("R5", "staff confirms a draft", _change(1033, "Confirmed")),
    ("R6", "cancel with payments", _change(1030, 21, "client", "c-1")),
    ("R6", "cancel with goods-out notes", _change(1031, "CancelledByClient")),
    ("R6", "cancel an invoiced order", _change(1032, 21, "manager")),
    ("R7/R8", "client cancels, public note", _change(1029, 21, "client", "c-1",
                                                    note={"text": "Customer asked to cancel", "is_public": True})),
    ("R10", "client accepts a quote, notify false", _change(3001, "QuoteAccepted", "client", "c-4", notify=False)),
    ("R11", "manager overrides a dispatched order", _override([(1034, "OnHold")])),
    ("R11", "override to a non-overridable status", _override([(1033, "Dispatched")])),
    ("R11", "staff may not override", _override([(3003, "OnHold")], role="staff")),
    ("R12", "mixed batch (StoreFeeder sample)", _override([(2001, "OnHold"), (9999, "CancelledByClient"),
                                                          (3002, "Quoted")])),
    ("R12", "batch over the limit", _override([(2001, "OnHold")] * 51)),
    ("R14", "change to the current status", _change(3002, "Delivered", "client", "c-4")),
    ("R14", "stale expected_status", _change(3002, "ResultsAccepted", "client", "c-4", expected_status="Quoted")),
    ("R14", "compare-and-set succeeds", _change(3002, "ResultsAccepted", "client", "c-4", expected_status="Delivered")),
    ("§6.2", "invalid command (no actor)", {"type": "ChangeOrderStatus", "order_id": 1029, "status": 2}),
]


def _describe(events: list[dict]) -> str:
    parts = []
    for e in events:
        if e["type"] == "OrderStatusChanged":
            parts.append(f"changed #{e['order_id']} {e['from_status']['code']}->{e['to_status']['code']} v{e['version']}"
                         + (" (override)" if e["override"] else ""))
        elif e["type"] == "OrderStatusChangeRejected":
            parts.append(f"rejected #{e['order_id']}: {e['reason']}")
        elif e.get("reason"):
            parts.append(f"summary: all {e['item_count']} items refused ({e['reason']})")
        else:
            ok = sum(r["success"] for r in e["results"])
            parts.append(f"summary {ok}/{len(e['results'])} ok")
    return "; ".join(parts) if len(parts) <= 4 else "; ".join(parts[:1] + [f"... {len(parts) - 2} more"] + parts[-1:])


async def run_demo(env: dict) -> None:
    settings = Settings(**{k[len("ORDERSTATUS_"):].lower(): v for k, v in env.items() if k.startswith("ORDERSTATUS_")})
    prepared = []
    for _, _, command in SCRIPT:
        command = {**command, "command_id": str(uuid.uuid4())}
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
        wanted = {data["command_id"] for _, _, data in prepared}
        seen: dict[str, list[dict]] = {}
        deadline = time.monotonic() + 60
        while wanted - set(seen) and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for m in messages:
                    event = json.loads(m.value)
                    seen.setdefault(event.get("command_id"), []).append(event)
        await asyncio.sleep(1)  # summaries follow their items; give the last ones a moment
        for messages in (await consumer.getmany(timeout_ms=500)).values():
            for m in messages:
                event = json.loads(m.value)
                seen.setdefault(event.get("command_id"), []).append(event)
    finally:
        await consumer.stop()
    click.echo(f"\n{'rule':6} {'scenario':42} outcome")
    click.echo(f"{'-' * 6} {'-' * 42} {'-' * 60}")
    for (rule, scenario, _), (_, _, data) in zip(SCRIPT, prepared):
        events = seen.get(data["command_id"])
        click.echo(f"{rule:6} {scenario:42} {_describe(events) if events else 'no event yet'}")
    click.echo("\nR13: `orderstatus transitions 3001 --role client --client-id c-4` lists what comes next.\n")
