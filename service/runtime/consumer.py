"""The consumer the consume loop and the commit policy need: a port, typed, with no Kafka client's types.

Modelled on arroyo's `backends/abstract.py` (its `Consumer`): subscribe with assignment and revocation
callbacks, poll, the assignment, each partition's position, commit, pause and resume. Where this one
differs, on purpose: it is asynchronous (the callbacks are awaited, as aiokafka awaits its rebalance
listener); `poll` returns a batch of `SourceMessage`s, already read at the edge, rather than one message;
offsets are committed as given (the commit policy in `offsets.py` stages them) rather than staged in the
consumer; and it answers what the commit policy asks after an empty poll (`highwater`: was the partition
fetched yet). A commit the group no longer takes raises `CommitRefused`; an outage raises whatever
`runtime.faults.is_outage` recognises. The aiokafka implementation is `adapters/kafka/consumer.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import NamedTuple, Protocol

from service.domain.commands import SourceMessage


class Partition(NamedTuple):
    """One partition of one topic (equal to, and hashed as, any other (topic, partition) pair)."""

    topic: str
    partition: int


# told the partitions a rebalance assigns to, or revokes from, this consumer (awaited by the consumer)
RebalanceCallback = Callable[[set[Partition]], Awaitable[None]]


class Consumer(Protocol):
    def subscribe(self, topics: Sequence[str], on_assigned: RebalanceCallback,
                  on_revoked: RebalanceCallback) -> None:
        """Join the group for `topics`; the callbacks run inside the poll that rebalances (commit on revoke)."""

    async def start(self) -> None:
        """Connect; raises an outage while the broker is away, `AccessRefused` when it refuses this process."""

    async def stop(self) -> None:
        """Leave the group and close; never raises (what was not committed is redelivered and deduped)."""

    async def poll(self, timeout_s: float, max_records: int) -> Sequence[SourceMessage]:
        """At most `max_records` messages of the assigned partitions, in order per partition; empty after
        `timeout_s` with nothing new. A record the client could not read comes with `unreadable` set."""

    def assignment(self) -> set[Partition]:
        """The partitions assigned to this consumer now."""

    def partitions_for(self, topic: str) -> set[int] | None:
        """The partition numbers of `topic` as the consumer's metadata knows them (None before it does)."""

    def highwater(self, partition: Partition) -> int | None:
        """The partition's end as of the last fetch (None: not fetched yet). `partition` must be assigned."""

    async def position(self, partition: Partition) -> int:
        """The offset of the next message the consumer would return. `partition` must be assigned."""

    async def committed_offset(self, partition: Partition) -> int | None:
        """The group's committed offset of the partition (None: none committed)."""

    def seek(self, offsets: Mapping[Partition, int]) -> None:
        """Read each partition from the given offset on (assigned partitions only)."""

    async def commit(self, offsets: Mapping[Partition, int]) -> None:
        """Commit each partition's next offset; `CommitRefused` when the group moved on (a rebalance)."""

    def pause(self, partitions: Sequence[Partition]) -> None:
        """Stop fetching the partitions (backpressure) until resumed or reassigned."""

    def resume(self, partitions: Sequence[Partition]) -> None:
        """Fetch the paused partitions again."""

    def paused(self) -> set[Partition]:
        """The partitions paused now."""
