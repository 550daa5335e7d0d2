"""Throughput benchmark (`make bench`): embedded Postgres and broker, the real worker in-process.

Seeds ORDERS orders, publishes COMMANDS ChangeOrderStatus commands that alternate each order
between Confirmed and OnHold (each valid only after the previous one), then measures how long the
worker takes to make them all durable, and how long until every event is published."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from service.adapters.kafka.admin import create_topics
from service.adapters.postgres.connection import connect, migrate
from service.adapters.postgres.orders import upsert_orders
from service.adapters.postgres.rules import fetch_rules, replace_rules
from service.contract.orders_file import parse_orders
from service.contract.rules_file import load_rules_file
from service.devkit.embedded import EmbeddedBroker, EmbeddedPostgres, scratch_dir
from service.entrypoints.services import run_worker
from service.runtime.logging import configure_logging
from service.runtime.settings import Settings

SAMPLES = Path(__file__).resolve().parent.parent / "service" / "devkit" / "samples"


async def bench(orders: int, commands: int, partitions: int, max_poll: int) -> dict:
    configure_logging("WARNING", json=True)
    postgres = EmbeddedPostgres(scratch_dir("orderstatus-bench-pg-")).start()
    broker = EmbeddedBroker().start()
    try:
        await asyncio.to_thread(migrate, postgres.url)  # alembic runs its own event loop
        settings = Settings(database_url=postgres.url, kafka_bootstrap_servers=broker.bootstrap_servers,
                            kafka_enable_idempotence=False, http_port=0, kafka_max_poll_records=max_poll,
                            log_level="WARNING")
        conn = await connect(settings.database_url)
        await replace_rules(conn, load_rules_file(SAMPLES / "rules.yaml"))
        rules = await fetch_rules(conn)
        lines = [json.dumps({"order_id": 10_000 + i, "order_type": "SO", "status": "Confirmed"}) for i in range(orders)]
        await upsert_orders(conn, parse_orders(lines, rules), rules)
        await create_topics(settings, partitions, 1)

        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", linger_ms=5)
        await producer.start()
        started = time.perf_counter()
        for n in range(commands):
            order_id = 10_000 + n % orders
            step = n // orders
            expected, target = ("Confirmed", "OnHold") if step % 2 == 0 else ("OnHold", "Confirmed")
            command = {"type": "ChangeOrderStatus", "command_id": str(uuid.uuid4()), "order_id": order_id,
                       "status": target, "expected_status": expected, "actor": {"id": "bench", "role": "manager"}}
            await producer.send(settings.commands_topic, json.dumps(command).encode(), key=str(order_id).encode())
        await producer.flush()
        await producer.stop()
        produce_s = time.perf_counter() - started

        stop = asyncio.Event()
        worker = asyncio.create_task(run_worker(settings, stop))
        # the clock starts at the first durable command: group join time is not throughput
        first = durable = published = None
        while published is None:
            await asyncio.sleep(0.02)
            if worker.done():
                worker.result()
                raise RuntimeError("worker stopped")
            now = time.perf_counter()
            if durable is None:
                done = await conn.fetchval("SELECT count(*) FROM processed_commands")
                if done and first is None:
                    first = now
                if done >= commands:
                    durable = now
            elif await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0:
                published = now
        durable_s, published_s = durable - first, published - first
        stop.set()
        await worker
        applied = await conn.fetchval("SELECT count(*) FROM order_history")
        await conn.close()
        assert applied == commands, f"only {applied} of {commands} applied"
        return {
            "orders": orders, "commands": commands, "partitions": partitions, "max_poll_records": max_poll,
            "produce_s": round(produce_s, 2),
            "durable_s": round(durable_s, 2), "commands_per_s": round(commands / durable_s),
            "all_published_s": round(published_s, 2), "events_per_s": round(commands / published_s),
        }
    finally:
        broker.stop()
        postgres.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--commands", type=int, default=20_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--max-poll-records", type=int, default=500)
    args = parser.parse_args()
    result = asyncio.run(bench(args.orders, args.commands, args.partitions, args.max_poll_records))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
