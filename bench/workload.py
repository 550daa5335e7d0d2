"""The command stream and how it is produced.

Every bench command is a `ChangeOrderStatus` that moves its order between Confirmed and OnHold with
`expected_status` set, so each one is valid only after the previous command of its order: applied out
of order or twice, it is rejected, and the verification sees it. Command ids are deterministic, so
every scenario (and the naive baseline) gets exactly the same commands."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaProducer

from service.contract.keys import order_key

FIRST_ORDER = 10_000  # bench orders; warm-up orders are 1..partitions


@dataclass(frozen=True)
class Command:
    command_id: str
    order_id: int
    key: bytes
    value: bytes


def _command(command_id: str, order_id: int, step: int) -> Command:
    expected, target = ("Confirmed", "OnHold") if step % 2 == 0 else ("OnHold", "Confirmed")
    body = {"type": "ChangeOrderStatus", "command_id": command_id, "order_id": order_id, "status": target,
            "expected_status": expected, "actor": {"id": "bench", "role": "manager"}}
    return Command(command_id, order_id, order_key(order_id), json.dumps(body).encode())


def bench_orders(orders: int) -> list[int]:
    return [FIRST_ORDER + i for i in range(orders)]


def dependent_commands(orders: int, count: int) -> list[Command]:
    """`count` commands round-robin over `orders` orders: command n is step n // orders of its order."""
    return [_command(f"bench-{n:07d}", FIRST_ORDER + n % orders, n // orders) for n in range(count)]


def warmup_orders(partitions: int) -> list[int]:
    return list(range(1, partitions + 1))


def warmup_commands(partitions: int) -> list[tuple[int, Command]]:
    """One command per partition (sent to that partition explicitly), so every worker of the group has
    fetched, decided, written and published once before the clock starts."""
    return [(p, _command(f"warmup-{p}", order_id, 0)) for p, order_id in enumerate(warmup_orders(partitions))]


def make_producer(bootstrap_servers: str) -> AIOKafkaProducer:
    # the bench's own producer: acks=all like the service's, idempotence off (the embedded broker)
    return AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all", enable_idempotence=False,
                            linger_ms=5, max_batch_size=256 * 1024)


async def produce_warmup(producer: AIOKafkaProducer, topic: str, partitions: int) -> None:
    futures = [await producer.send(topic, c.value, key=c.key, partition=p) for p, c in warmup_commands(partitions)]
    await asyncio.gather(*futures)


@dataclass
class Produced:
    started: float  # time.time() of the first send
    finished: float  # time.time() when the last was acknowledged

    @property
    def seconds(self) -> float:
        return self.finished - self.started


async def produce_fast(producer: AIOKafkaProducer, topic: str, commands: list[Command]) -> Produced:
    """As fast as the producer takes them (each record is stamped with CreateTime at send)."""
    started = time.time()
    futures = [await producer.send(topic, c.value, key=c.key) for c in commands]
    await asyncio.gather(*futures)
    return Produced(started, time.time())


async def produce_steady(producer: AIOKafkaProducer, topic: str, commands: list[Command], rate: float) -> Produced:
    """At a steady `rate` commands/s: every millisecond tick sends what is due by then."""
    started = time.time()
    t0 = time.monotonic()
    futures = []
    sent = 0
    while sent < len(commands):
        due = min(len(commands), int((time.monotonic() - t0) * rate) + 1)
        while sent < due:
            c = commands[sent]
            futures.append(await producer.send(topic, c.value, key=c.key))
            sent += 1
        await asyncio.sleep(0.001)
    await asyncio.gather(*futures)
    return Produced(started, time.time())
