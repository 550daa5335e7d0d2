"""`orderstatus lag`: per consumer group and partition, the committed offset, the end and the lag.

Read without joining the groups (a consumer of the group that only assigns partitions), so it never
triggers a rebalance of the running worker or notifier. The running processes export the same
numbers, as their consumers see them, as `orderstatus_consumer_lag{service,topic,partition}`."""

from __future__ import annotations

from dataclasses import dataclass

from service.adapters.kafka.admin import group_offsets
from service.ops.errors import OpsError
from service.runtime.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here (it would start at the beginning)
    end: int
    lag: int


async def group_lag(settings: Settings, group: str, topic: str) -> list[PartitionLag]:
    async with group_offsets(settings, group, topic) as offsets:
        partitions = offsets.partitions()
        if not partitions:
            raise OpsError(f"topic {topic} does not exist")
        firsts = await offsets.earliest(partitions)
        ends = await offsets.latest(partitions)
        found = []
        for p in partitions:
            committed = await offsets.committed(p)
            # a committed offset past the reported end means the end is at least there (the embedded broker
            # reports the last batch's base offset + 1); on Kafka the committed offset never passes the end
            end = max(ends[p], committed or 0)
            start = committed if committed is not None else firsts[p]
            found.append(PartitionLag(group, topic, p, committed, end, max(end - start, 0)))
        return found


async def lag(settings: Settings) -> list[PartitionLag]:
    """The worker's group on the commands topic and the notifier's on the events topic."""
    return [*await group_lag(settings, settings.worker_group, settings.commands_topic),
            *await group_lag(settings, settings.notifier_group, settings.events_topic)]
