"""The commit policy of the consume loop (the arroyo way).

Offsets are remembered as `offset + 1` only once the messages' outcome is durable, committed after a
batch when the last commit is at least an interval old, whenever a poll comes back empty, and for the
revoked partitions when a rebalance takes them away. Processing never overlaps `getmany()`, so at
revocation nothing is in flight: what is pending is what is done. When a poll comes back empty, every
record the consumer returned is durable, so each partition is committed up to the consumer's position,
which is past the records the client skips without returning them (a transactional producer's commit
markers, aborted records): those never reach `done`, and a partition ending in one would show a lag of
1 for ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

from service.adapters.errors import CommitRefused
from service.runtime.consumer import Consumer, Partition
from service.runtime.faults import is_outage
from service.runtime.health import Progress

log = structlog.get_logger("orderstatus.consuming")


class OffsetCommitter:
    def __init__(self, consumer: Consumer, progress: Progress, interval_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.consumer = consumer
        self.progress = progress
        self.interval_s = interval_s
        self.clock = clock  # seconds, monotonic: what the interval is measured with (a fake one in tests)
        self.pending: dict[Partition, int] = {}
        self.committed: dict[Partition, int] = {}  # what this consumer committed last, per partition
        self._committed_at = float("-inf")

    def done(self, tp: Partition, last_offset: int) -> None:
        """The message at `last_offset` (and all before it on `tp`) is durable."""
        self.pending[tp] = last_offset + 1

    async def commit_due(self) -> None:
        """Commit what is pending if the last commit is at least the interval old."""
        if self.clock() - self._committed_at >= self.interval_s:
            await self.commit()

    async def commit_idle(self) -> None:
        """After an empty poll: commit what is pending and each fetched partition up to the consumer's
        position (nothing returned is left unprocessed, and what lies below the position and was never
        returned is no message to process). Only a position past this consumer's last commit is sent."""
        assigned = self.consumer.assignment()
        self.committed = {tp: o for tp, o in self.committed.items() if tp in assigned}
        for tp in assigned:
            # position() below awaits, and a rebalance may revoke a partition meanwhile: the client asserts
            # on a revoked one (this check and highwater() run with no await between them)
            if tp not in self.consumer.assignment():
                continue
            if self.consumer.highwater(tp) is None:  # not fetched yet: the position may still be resetting
                continue
            try:
                position = await asyncio.wait_for(self.consumer.position(tp), 1.0)
            except Exception:  # revoked meanwhile, or the broker unreachable: the next idle poll tries again
                continue
            # position 0 skipped nothing: committing it would only make an empty partition look consumed
            if position > max(self.pending.get(tp, -1), self.committed.get(tp, -1), 0):
                self.pending[tp] = position
        await self.commit()

    async def commit(self, only: set[Partition] | None = None) -> None:
        offsets = {tp: o for tp, o in self.pending.items() if only is None or tp in only}
        if not offsets:
            return
        if only is None:
            self._committed_at = self.clock()  # attempted: a failing commit is not retried every batch
        try:
            await self.consumer.commit(offsets)
            self.committed.update(offsets)
            self.progress.committed()
        except CommitRefused as exc:
            # the group moved on: the new owner re-reads from the last commit, and the consumers dedupe
            log.warning("offset commit refused after rebalance", error=str(exc))
        except Exception as exc:
            if not is_outage(exc):
                raise
            log.warning("offset commit failed, will retry with the next commit", error=str(exc))
            return
        for tp, offset in offsets.items():
            if self.pending.get(tp) == offset:
                del self.pending[tp]


class CommitOnRevoke:
    """The rebalance callbacks of the consume loop: commit what is done of the revoked partitions before
    they go (a commit after the rebalance would be refused)."""

    def __init__(self, committer: OffsetCommitter,
                 start_from: Callable[[set[Partition]], Awaitable[None]] | None = None) -> None:
        self.committer = committer
        self.start_from = start_from  # where newly assigned partitions start (`positions.DatabasePositions`)

    async def on_revoked(self, revoked: set[Partition]) -> None:
        await self.committer.commit(only=set(revoked))
        log.info("partitions revoked", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in revoked))

    async def on_assigned(self, assigned: set[Partition]) -> None:
        log.info("partitions assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
        if self.start_from is not None:
            await self.start_from(assigned)
