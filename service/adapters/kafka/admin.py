"""Kafka administration: topics, consumer-group state and committed offsets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.protocol.group import HeartbeatRequest

from service.adapters.errors import TopicNotCreated
from service.adapters.kafka.clients import consumer_of, learn_topic, make_admin
from service.adapters.kafka.config import KafkaSettings


def default_min_insync_replicas(replication_factor: int) -> int:
    """`min.insync.replicas` for a topic of this replication factor: 2 from three replicas on (an
    acknowledged write survives the loss of a broker, and one broker may be down without stopping writes),
    else 1 (with two replicas, 2 would stop every write while either broker is down)."""
    return 2 if replication_factor >= 3 else 1


async def create_topics(settings: KafkaSettings, partitions: int, replication_factor: int,
                        min_insync_replicas: int | None = None, timeout_s: float = 30,
                        retention_ms: int | None = None, segment_ms: int | None = None) -> dict[str, str]:
    """Create the commands, events and DLQ topics with `min.insync.replicas` set on each (None: the
    default for the replication factor); an existing topic is left as it is. A topic the broker refuses to
    create (a replication factor above the number of brokers, …) raises `TopicNotCreated` with the broker's
    reason. Returns once every partition of the three has a leader: Apache Kafka answers CreateTopics when
    the controller has decided, before the brokers' metadata shows the topic, and a client started at once
    would find none. `retention_ms`/`segment_ms`, when given, are set on each topic explicitly, so the broker
    reports them (the embedded broker reports no default retention, and `prune` needs to know it)."""
    if min_insync_replicas is None:
        min_insync_replicas = default_min_insync_replicas(replication_factor)
    admin = make_admin(settings)
    outcome: dict[str, str] = {}
    names = [settings.commands_topic, settings.events_topic, settings.dlq_topic]
    configs = {"min.insync.replicas": str(min_insync_replicas)}
    if retention_ms is not None:
        configs["retention.ms"] = str(retention_ms)
    if segment_ms is not None:
        configs["segment.ms"] = str(segment_ms)
    try:
        await admin.start()  # inside try: a failed start still closes the client
        existing = set(await admin.list_topics())
        for name in names:
            if name in existing:
                outcome[name] = "exists"
                continue
            # aiokafka returns the per-topic errors in the response instead of raising them
            response = await admin.create_topics([NewTopic(name, partitions, replication_factor,
                                                           topic_configs=configs)])
            for topic, error_code, *message in response.topic_errors:
                if error_code == TopicAlreadyExistsError.errno:
                    outcome[topic] = "exists"
                elif error_code:
                    reason = (message[0] if message else None) or for_code(error_code).__name__
                    raise TopicNotCreated(f"topic {topic} not created: {for_code(error_code).__name__}: {reason}")
                else:
                    outcome[topic] = "created"
        await _wait_for_leaders(admin, names, timeout_s)
    finally:
        await admin.close()
    return outcome


async def _wait_for_leaders(admin, names: list[str], timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        described = {entry["topic"]: entry for entry in await admin.describe_topics(names)}
        waiting = [name for name in names
                   if name not in described or described[name]["error_code"]
                   or not described[name]["partitions"]
                   or any(p["leader"] < 0 for p in described[name]["partitions"])]
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics without a leader after {timeout_s:.0f}s: {', '.join(waiting)}")
        await asyncio.sleep(0.1)


async def _describe(admin, group: str) -> tuple[str, list]:
    for response in await admin.describe_consumer_groups([group]):
        for entry in getattr(response, "groups", []):
            return entry[2], list(entry[5])
    return "Unknown", []


async def group_state(settings: KafkaSettings, group: str) -> tuple[str, int]:
    """The group's state and how many live members it has, as the coordinator describes them."""
    admin = make_admin(settings)
    try:
        await admin.start()
        state, members = await _describe(admin, group)
        if members:
            await _expire_departed_members(admin, group)
            state, members = await _describe(admin, group)
    finally:
        await admin.close()
    return state, len(members)


async def _expire_departed_members(admin, group: str) -> None:
    """Make the coordinator drop members whose session has expired.

    A consumer that stopped without a LeaveGroup stays listed until the coordinator handles a request
    for the group, and aiokafka sends none at generation 0, the first generation the embedded broker
    (tansu) hands out. A heartbeat from no member makes tansu evict the expired members; Kafka answers
    it UNKNOWN_MEMBER_ID and changes nothing. aiokafka's admin client has no public call for a raw
    group request, so this one private call (`_send_request`) is the only way, kept here alone."""
    node = await admin.find_coordinator(group)
    await admin._send_request(HeartbeatRequest(group, -1, ""), node)


async def topic_configs(settings: KafkaSettings, topics: list[str], names: tuple[str, ...]) -> dict[str, dict | None]:
    """The named configuration values of each topic as the broker reports them (a broker may report only
    what was set explicitly: a missing name is unknown, not a default); None for a topic it refused to
    describe (one that does not exist)."""
    admin = make_admin(settings)
    found: dict[str, dict | None] = {topic: None for topic in topics}
    try:
        await admin.start()
        responses = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t) for t in topics])
        for response in responses:
            for error_code, _, _, name, entries, *_ in response.resources:
                if name in found and not error_code:
                    found[name] = {entry[0]: entry[1] for entry in entries if entry[0] in names}
    finally:
        await admin.close()
    return found


class GroupOffsets:
    """A group's committed offsets on one topic, read and written without joining the group."""

    def __init__(self, consumer: AIOKafkaConsumer, topic: str) -> None:
        self.consumer = consumer
        self.topic = topic

    def partitions(self) -> list[int]:
        return sorted(self.consumer.partitions_for_topic(self.topic) or ())

    def _tps(self, partitions) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in partitions]

    async def earliest(self, partitions) -> dict[int, int]:
        found = await self.consumer.beginning_offsets(self._tps(partitions))
        return {tp.partition: offset for tp, offset in found.items()}

    async def latest(self, partitions) -> dict[int, int]:
        found = await self.consumer.end_offsets(self._tps(partitions))
        return {tp.partition: offset for tp, offset in found.items()}

    async def first_at_or_after(self, partitions, stamp_ms: int) -> dict[int, int | None]:
        """The first offset whose record's timestamp is at or after `stamp_ms`; None when there is none.

        The embedded broker answers a time after its last record with offset 0 and timestamp -1, which
        must mean "none", not "the beginning": hence the timestamp check."""
        found = await self.consumer.offsets_for_times({tp: stamp_ms for tp in self._tps(partitions)})
        return {
            tp.partition: (found[tp].offset if found.get(tp) is not None and found[tp].timestamp >= stamp_ms else None)
            for tp in self._tps(partitions)
        }

    async def committed(self, partition: int) -> int | None:
        return await self.consumer.committed(TopicPartition(self.topic, partition))

    async def commit(self, offsets: dict[int, int]) -> None:
        await self.consumer.commit({TopicPartition(self.topic, p): o for p, o in offsets.items()})


@contextlib.asynccontextmanager
async def group_offsets(settings: KafkaSettings, group: str, topic: str) -> AsyncIterator[GroupOffsets]:
    consumer = consumer_of(settings, group_id=group, enable_auto_commit=False)
    try:
        await consumer.start()
        await learn_topic(consumer, topic)
        offsets = GroupOffsets(consumer, topic)
        if offsets.partitions():
            consumer.assign(offsets._tps(offsets.partitions()))
        yield offsets
    finally:
        await consumer.stop()
