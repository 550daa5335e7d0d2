"""`orderstatus lag`: per consumer group and partition, the committed offset, the end and the lag.

Read without joining the groups (a consumer of the group that only assigns partitions), so it never
triggers a rebalance of the running worker or notifier. The running processes export the same
numbers, as their consumers see them, as `orderstatus_consumer_lag{service,topic,partition}`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from service.ops.errors import OpsError
from service.ops.ports import ConsumerGroups


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed here (it would start at the beginning)
    end: int
    lag: int


async def group_lag(groups: ConsumerGroups, group: str, topic: str) -> list[PartitionLag]:
    async with groups.offsets(group, topic) as offsets:
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


async def lag(groups: ConsumerGroups, watched: Sequence[tuple[str, str]]) -> list[PartitionLag]:
    """Each (group, topic) watched, in turn: the worker's group on the commands topic and the notifier's on the
    events topic, as the entrypoints name them."""
    return [row for group, topic in watched for row in await group_lag(groups, group, topic)]
