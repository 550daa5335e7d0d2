"""Where a consumer starts on an assigned partition (issue 24, DESIGN §12 "Progress"): the database's
position when it is behind Kafka's committed offset, Kafka's otherwise.

Each consumer writes its position in the transaction of the work it covers, before it commits the offset to
Kafka, so in normal running the database is at or ahead of Kafka. It is behind only when the database lost
commits Kafka's offsets had already counted (a failover to an asynchronous standby, a restore from a backup):
then the consumer starts from the database's position and the messages between are read, and decided, again
— one log line and `orderstatus_consumer_rewound_total` say how many. Where Kafka is behind (a commit not
sent before a crash, or an operator's `orderstatus replay`) its offset stands, as before; where the database
has no position (before the first batch after the upgrade) Kafka's is used. Where Kafka has no committed
offset the consumer's reset policy (earliest) stands, whatever the database holds: the group's offsets of a
topic go only with the topic (deleted and made again, or a broker that keeps its log in memory, as the dev
stack's), and a position from the topic's earlier life would skip the new one's first messages; reading from
the start instead only meets duplicates, which the consumers drop."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

import structlog

from service.runtime.consumer import Consumer, Partition
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry

log = structlog.get_logger("orderstatus.consuming")


class PositionStore(Protocol):
    async def read(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """The database's next offset of each given partition that has one."""

    async def advance(self, next_offsets: Mapping[tuple[str, int], int],
                      first_offsets: Mapping[tuple[str, int], int]) -> None:
        """Move the positions forward after a batch; PositionGap (nothing written) when one is behind the
        batch's first offset of its partition."""

    async def bridge(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        """Move the positions forward past offsets that hold no records (no gap check)."""


def starting_offsets(database: Mapping[Partition, int], kafka: Mapping[Partition, int | None],
                     ) -> tuple[dict[Partition, int], dict[Partition, int]]:
    """(the offsets to seek to, and per rewound partition how many messages will be processed again).
    A partition that Kafka or the database has no offset of is left where the consumer puts it."""
    seek: dict[Partition, int] = {}
    rewound: dict[Partition, int] = {}
    for partition, position in database.items():
        committed = kafka.get(partition)
        if committed is not None and position < committed:
            seek[partition] = position
            rewound[partition] = committed - position
    return seek, rewound


class DatabasePositions:
    """The consume loop's policy for the database's positions. On assignment it seeks each partition whose
    database position is behind Kafka's committed offset back to it (a database outage is waited out here, the
    rebalance waiting with it: starting from Kafka's offset instead would skip what the database lost). The
    positions are written by the consumer's units of work (the worker), or, `written_by_loop`, by the loop after
    each batch (the notifier, whose records are not one transaction). `store.bridge` moves a position past
    offsets that hold no records (see `ConsumeLoop.rewind`)."""

    def __init__(self, store: PositionStore, consumer: Consumer, retry: OutageRetry, metrics: Metrics,
                 written_by_loop: bool = False) -> None:
        self.store = store
        self.consumer = consumer
        self.retry = retry
        self.metrics = metrics
        self.written_by_loop = written_by_loop

    async def on_assigned(self, assigned: set[Partition]) -> None:
        if not assigned:
            return
        async for attempt in self.retry("postgres"):
            with attempt:
                found = await self.store.read(assigned)
        self.retry.resumed()
        database = {Partition(*where): offset for where, offset in found.items()}
        kafka = {p: await self.consumer.committed_offset(p) for p in database}
        seek, rewound = starting_offsets(database, kafka)
        self.consumer.seek(seek)
        for p, again in sorted(rewound.items()):
            log.warning("the database is behind Kafka's committed offset: these messages will be processed again",
                        topic=p.topic, partition=p.partition, database_offset=database[p], kafka_offset=kafka[p],
                        again=again)
            self.metrics.consumer_rewound.labels(self.metrics.service, p.topic, str(p.partition)).inc(again)
