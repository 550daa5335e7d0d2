"""`orderstatus replay`: reset an inactive consumer group's committed offsets on one topic."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from service.ops.errors import OpsError
from service.ops.ports import ConsumerGroups


@dataclass
class OffsetMove:
    partition: int
    old: int | None
    new: int


async def replay(
    groups: ConsumerGroups, group: str, topic: str, *, to_datetime: datetime | None = None, to_earliest: bool = False,
    to_offsets: dict[int, int] | None = None, dry_run: bool = False,
) -> list[OffsetMove]:
    """Move the group to the earliest offsets, the first at or after a time, or given offsets."""
    state, members = await groups.state(group)
    if members:
        raise OpsError(f"group {group} is active ({state}, {members} members); stop its consumers first")

    async with groups.offsets(group, topic) as offsets:
        partitions = offsets.partitions()
        if not partitions:
            raise OpsError(f"topic {topic} does not exist")
        if to_earliest:
            targets = await offsets.earliest(partitions)
        elif to_datetime is not None:
            found = await offsets.first_at_or_after(partitions, int(to_datetime.timestamp() * 1000))
            ends = await offsets.latest(partitions)
            # nothing at or after the time: the end, never offset 0
            targets = {p: ends[p] if found[p] is None else found[p] for p in partitions}
        else:
            unknown = set(to_offsets or {}) - set(partitions)
            if unknown:
                raise OpsError(f"topic {topic} has no partition {sorted(unknown)[0]}")
            targets = dict(to_offsets or {})
        moves = [OffsetMove(p, await offsets.committed(p), targets[p]) for p in sorted(targets)]
        if not dry_run and targets:
            await offsets.commit(targets)
        return moves
