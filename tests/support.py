"""Helpers shared by integration tests: seed a database, run a worker in-process, read topics."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from service.adapters.database import connect
from service.adapters.kafka import create_topics
from service.adapters.orders_store import upsert_orders
from service.adapters.rules_store import fetch_rules, replace_rules
from service.ordersfile import parse_orders
from service.rulesfile import load_rules_file
from service.settings import Settings

SAMPLES = Path(__file__).resolve().parent.parent / "service" / "samples"


async def seed(settings: Settings, orders: list[dict] | None = None, partitions: int = 3) -> None:
    """Load the sample rules, import the sample orders (or the given ones), create the topics."""
    conn = await connect(settings.database_url)
    try:
        await replace_rules(conn, load_rules_file(SAMPLES / "rules.yaml"))
        rules = await fetch_rules(conn)
        lines = (
            [json.dumps(o) for o in orders] if orders is not None
            else (SAMPLES / "orders.jsonl").read_text().splitlines()
        )
        await upsert_orders(conn, parse_orders(lines, rules), rules)
    finally:
        await conn.close()
    await create_topics(settings, partitions, 1)


async def import_orders(settings: Settings, orders: list[dict]) -> None:
    conn = await connect(settings.database_url)
    try:
        rules = await fetch_rules(conn)
        await upsert_orders(conn, parse_orders([json.dumps(o) for o in orders], rules), rules)
    finally:
        await conn.close()


def change(order_id: int, status, *, role="staff", client_id=None, command_id=None, **extra) -> dict:
    actor = {"id": f"{role}-1", "role": role}
    if client_id is not None:
        actor["client_id"] = client_id
    return {"type": "ChangeOrderStatus", "command_id": command_id or str(uuid.uuid4()), "order_id": order_id,
            "status": status, "actor": actor, **extra}


def override(items: list[tuple[int, object]], *, role="manager", command_id=None, **extra) -> dict:
    return {"type": "OverrideOrderStatuses", "command_id": command_id or str(uuid.uuid4()),
            "items": [{"order_id": o, "status": s} for o, s in items], "actor": {"id": f"{role}-1", "role": role},
            **extra}


async def produce(settings: Settings, commands: list, topic: str | None = None) -> None:
    """Publish commands (dicts become JSON; bytes go as they are), keyed like `orderstatus send`."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        for command in commands:
            if isinstance(command, (bytes, bytearray)):
                value, key = bytes(command), b"garbage"
            else:
                value = json.dumps(command).encode()
                key_value = command.get("order_id") if command.get("type") == "ChangeOrderStatus" else command.get("command_id")
                key = str(key_value).encode()
            await producer.send(topic or settings.commands_topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning, without a group, accumulating every record."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.records = []
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> "TopicReader":
        self._consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.settings.kafka_bootstrap_servers, auto_offset_reset="earliest",
            enable_auto_commit=False, group_id=None,
        )
        await self._consumer.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._consumer.stop()

    async def poll(self) -> None:
        batch = await self._consumer.getmany(timeout_ms=200)
        for messages in batch.values():
            self.records.extend(messages)

    def values(self) -> list[dict]:
        """Each record's JSON value; a record that is not a JSON object (a dead letter) reads as {}."""
        parsed = []
        for record in self.records:
            try:
                value = json.loads(record.value)
            except (ValueError, TypeError):
                value = None
            parsed.append(value if isinstance(value, dict) else {})
        return parsed

    async def wait_for(self, predicate, timeout: float = 30.0, what: str = "records"):
        deadline = time.monotonic() + timeout
        while True:
            await self.poll()
            if predicate(self.values()):
                return self.values()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; have {len(self.records)}: {self.values()[-5:]}")


async def events_for(reader: TopicReader, command_ids: set[str], timeout: float = 30.0) -> list[dict]:
    """Wait until every command id has at least one event, and return the events of those commands."""

    def done(values):
        return command_ids <= {v.get("command_id") for v in values}

    values = await reader.wait_for(done, timeout, f"events of {len(command_ids)} commands")
    return [v for v in values if v.get("command_id") in command_ids]


@contextlib.asynccontextmanager
async def running(run_service, settings: Settings, name: str):
    """Run a service's `run_*(settings, stop, ready)` in this loop; on exit stop it and check it exits 0."""
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_service(settings, stop, ready))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        waiter.cancel()
        task.result()
        raise AssertionError(f"{name} exited at start-up")
    try:
        yield task
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 60) == 0


def running_worker(settings: Settings):
    from service.worker import run_worker

    return running(run_worker, settings, "worker")


def running_notifier(settings: Settings):
    from service.notifier import run_notifier

    return running(run_notifier, settings, "notifier")


async def fetch(settings: Settings, sql: str, *args):
    conn = await connect(settings.database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()
