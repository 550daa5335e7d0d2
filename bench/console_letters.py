"""The console scenario's dead letters: real records on the DLQ topic, built by the contract the worker writes
them with (`service.contract.events.dead_letter`: the original's bytes, its headers, `error.reason`,
`error.message`, `original.topic/partition/offset`), stamped over the last week — a denser last hour for the
Health chart — so the console's own indexer has something true to read.

Reasons in the worker's proportions of a bad week: validation_failed, unknown_type, not_json (garbage bytes),
processing_failed and too_large; the JSON ones name a command id and an order id (the index reads both)."""

from __future__ import annotations

import json
import random
import time

from aiokafka import AIOKafkaProducer

from service.contract.events import dead_letter
from service.contract.keys import order_key
from service.domain.commands import SourceMessage
from service.domain.events import DeadLetter

REASONS = (  # reason, share (of 100), error.message
    ("validation_failed", 50, "status: field required; expected_status: not a status code"),
    ("unknown_type", 20, "unknown command type 'ChangeOrderStatusV9'"),
    ("not_json", 12, "Expecting value: line 1 column 1 (char 0)"),
    ("processing_failed", 13, "the command failed 5 times: asyncpg.exceptions.CheckViolationError"),
    ("too_large", 5, "the command has 1,200,000 bytes; the limit is 1,048,576"),
)
WEEK_S = 7 * 24 * 3600
LAST_HOUR_SHARE = 0.02  # of the letters, written in the last hour


def _reason(n: int) -> tuple[str, str]:
    slot = n % 100
    for reason, share, message in REASONS:
        if slot < share:
            return reason, message
        slot -= share
    raise AssertionError("shares add up to 100")


def letter(n: int, order_id: int, commands_topic: str, dlq_topic: str, now_ms: int, rng: random.Random):
    """The n-th dead letter (its wire message) and its Kafka timestamp."""
    reason, message = _reason(n)
    command_id = f"dlq-{n:07d}-{rng.getrandbits(32):08x}"
    body = {"type": "ChangeOrderStatus" if reason != "unknown_type" else "ChangeOrderStatusV9",
            "command_id": command_id, "order_id": order_id, "actor": {"id": f"staff-{n % 50}", "role": "staff"},
            "note": {"text": "please ship with the blue courier", "is_public": n % 2 == 0}}
    if reason != "validation_failed":
        body["status"] = "Dispatched"
    value = (b"\x00\x01garbage " + command_id.encode()) if reason == "not_json" else json.dumps(body).encode()
    traceparent = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01".encode()
    source = SourceMessage(topic=commands_topic, partition=n % 6, offset=1_000_000 + n, key=order_key(order_id),
                           value=value, headers=(("traceparent", traceparent), ("source", b"gateway")))
    wire = dead_letter(DeadLetter(source=source, reason=reason, message=message), dlq_topic, 1_048_576)
    age_s = rng.random() * 3600 if rng.random() < LAST_HOUR_SHARE else rng.random() * WEEK_S
    return wire, now_ms - int(age_s * 1000)


async def produce_letters(bootstrap_servers: str, commands_topic: str, dlq_topic: str, count: int,
                          order_ids: tuple[int, int], partitions: int, seed: int = 21) -> dict:
    """`count` dead letters on `dlq_topic`, spread over its partitions; returns how long it took."""
    rng = random.Random(seed)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, linger_ms=50, max_batch_size=1_048_576,
                                acks="all", enable_idempotence=False)
    started = time.monotonic()
    now_ms = int(time.time() * 1000)
    first, last = order_ids
    await producer.start()
    try:
        pending = []
        for n in range(count):
            wire, timestamp_ms = letter(n, rng.randint(first, last), commands_topic, dlq_topic, now_ms, rng)
            pending.append(await producer.send(dlq_topic, wire.value, key=wire.key, headers=list(wire.headers),
                                               partition=n % partitions, timestamp_ms=timestamp_ms))
            if len(pending) >= 5_000:
                for future in pending:
                    await future
                pending.clear()
        for future in pending:
            await future
    finally:
        await producer.stop()
    return {"letters": count, "produce_s": round(time.monotonic() - started, 1)}
