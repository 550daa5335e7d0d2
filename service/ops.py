"""Operator tools: publish commands, reset a group's offsets, republish stored events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.group import HeartbeatRequest

from service.adapters.kafka import client_options, make_admin, make_producer
from service.settings import Settings


class OpsError(RuntimeError):
    """A refusal with a one-line explanation for the operator."""


def prepare_command(line: str, number: int, validate: bool) -> tuple[bytes, bytes, dict]:
    """Turn one JSON text into (key, value, command); a missing command_id is generated."""
    from service.messages import InvalidCommand, parse_command

    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise OpsError(f"command {number}: not valid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise OpsError(f"command {number}: must be a JSON object")
    data.setdefault("command_id", str(uuid.uuid4()))
    value = json.dumps(data).encode()
    if validate:
        try:
            parse_command(value)
        except InvalidCommand as exc:
            raise OpsError(f"command {number}: {exc.message} (use --no-validate to send it anyway)") from None
    key = data.get("order_id") if data.get("type") == "ChangeOrderStatus" else data.get("command_id")
    return str(key).encode(), value, data


async def send_commands(settings: Settings, prepared: list[tuple[bytes, bytes, dict]]) -> list[dict]:
    producer = make_producer(settings)
    try:
        await producer.start()  # inside try: a failed start still closes the client
        futures = [await producer.send(settings.commands_topic, value=v, key=k) for k, v, _ in prepared]
        sent = []
        for (_, _, data), future in zip(prepared, futures):
            meta = await future
            sent.append({"command_id": data["command_id"], "type": data.get("type"), "partition": meta.partition,
                         "offset": meta.offset})
        return sent
    finally:
        await producer.stop()


@dataclass
class OffsetMove:
    partition: int
    old: int | None
    new: int


async def _group_members(admin, group: str) -> tuple[str, list]:
    """The group's state and members as the coordinator describes them."""
    for response in await admin.describe_consumer_groups([group]):
        for entry in getattr(response, "groups", []):
            return entry[2], list(entry[5])
    return "Unknown", []


async def replay(
    settings: Settings, group: str, topic: str, *, to_datetime: datetime | None = None, to_earliest: bool = False,
    to_offsets: dict[int, int] | None = None, dry_run: bool = False,
) -> list[OffsetMove]:
    """Reset an inactive consumer group's committed offsets on one topic."""
    admin = make_admin(settings)
    try:
        await admin.start()
        state, members = await _group_members(admin, group)
        if members:
            # A consumer that stopped without a LeaveGroup stays listed until the coordinator handles a
            # request for the group (aiokafka sends none at generation 0, the first generation the embedded
            # broker hands out). A heartbeat from no member makes tansu evict members whose session
            # expired; Kafka answers it UNKNOWN_MEMBER_ID and changes nothing. Then look again.
            node = await admin.find_coordinator(group)
            await admin._send_request(HeartbeatRequest(group, -1, ""), node)
            state, members = await _group_members(admin, group)
    finally:
        await admin.close()
    if members:
        raise OpsError(f"group {group} is active ({state}, {len(members)} members); stop its consumers first")

    consumer = AIOKafkaConsumer(**client_options(settings), group_id=group, enable_auto_commit=False)
    try:
        await consumer.start()
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise OpsError(f"topic {topic} does not exist")
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        if to_earliest:
            targets = await consumer.beginning_offsets(tps)
        elif to_datetime is not None:
            stamp = int(to_datetime.timestamp() * 1000)
            found = await consumer.offsets_for_times({tp: stamp for tp in tps})
            ends = await consumer.end_offsets(tps)
            # a record at or after the time has a timestamp at or after it: the embedded broker answers a time
            # after its last record with offset 0 and timestamp -1, which must mean "none", not "the beginning"
            targets = {tp: (found[tp].offset if found.get(tp) is not None and found[tp].timestamp >= stamp
                            else ends[tp]) for tp in tps}
        else:
            unknown = set(to_offsets or {}) - set(partitions)
            if unknown:
                raise OpsError(f"topic {topic} has no partition {sorted(unknown)[0]}")
            tps = [tp for tp in tps if tp.partition in (to_offsets or {})]
            targets = {tp: to_offsets[tp.partition] for tp in tps}
        moves = []
        for tp in tps:
            old = await consumer.committed(tp)
            moves.append(OffsetMove(tp.partition, old, targets[tp]))
        if not dry_run and targets:
            await consumer.commit({tp: targets[tp] for tp in tps})
        return moves
    finally:
        await consumer.stop()


async def republish(settings: Settings, pool_or_conn, since: datetime, order_id: int | None) -> int:
    """Publish stored events again, byte for byte (same event ids), in their original order."""
    from service.outbox import publish_rows

    rows = await pool_or_conn.fetch(
        """
        SELECT id, topic, message_key, payload, headers FROM outbox
         WHERE topic = $1 AND created_at >= $2 AND ($3::bigint IS NULL OR order_id = $3)
         ORDER BY id
        """,
        settings.events_topic, since, order_id,
    )
    if not rows:
        return 0
    producer = make_producer(settings)
    try:
        await producer.start()
        await publish_rows(producer, rows)
    finally:
        await producer.stop()
    return len(rows)
