"""Commands decided again after a rewind, checked against what the events topic already holds (issue 24).

After a failover that lost commits the worker reads the lost commands again and decides them on the state the
database really has. For the commands of one partition that comes out the same by construction (event ids
from the command, times from its record, the same order on the same state). An override batch is keyed by its
command id and changes orders whose own commands live on other partitions, so after a rewind of several
partitions the interleaving can differ, and with it a re-emitted event's content (a version, a from-status)
under the same event id. This module finds every such difference: once the rewound window is decided again,
it reads the events topic from the first re-decided command's time on and compares each event found there
with the event decided again under the same id. A difference is logged (error, with the event and command
ids), counted in `orderstatus_redecided_conflicts_total` and shown in the worker's `/status`. Nothing is
silently different; an operator decides which version stands (the database's is the one later changes
follow)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from service.contract.events import Topics, to_wire
from service.domain.commands import SourceMessage
from service.domain.events import DeadLetter

log = structlog.get_logger("orderstatus.worker")

KEEP = 100  # conflicts kept for /status (all are logged and counted)


class PublishedEvents(Protocol):
    async def since(self, stamp_ms: int) -> list[tuple[str, bytes]]:
        """(event id, value) of every event on the topic whose timestamp is at or after `stamp_ms`."""


@dataclass(frozen=True)
class Conflict:
    event_id: str
    command_id: str | None
    published: bytes
    decided_again: bytes


def conflicts(decided_again: Mapping[str, tuple[str | None, bytes]],
              published: Iterable[tuple[str, bytes]]) -> list[Conflict]:
    """The events on the topic whose id was decided again with other content (each id once)."""
    found: dict[str, Conflict] = {}
    for event_id, value in published:
        again = decided_again.get(event_id)
        if again is not None and again[1] != value and event_id not in found:
            found[event_id] = Conflict(event_id, again[0], value, again[1])
    return list(found.values())


class RedecidedCheck:
    """Collects the events of the commands decided again in a rewound window and, once the window is done,
    compares them with the events topic. Without a `published` reader it only says it could not check."""

    def __init__(self, published: PublishedEvents | None, topics: Topics, metrics) -> None:
        self.published = published
        self.topics = topics
        self.metrics = metrics
        self.windows: dict[tuple[str, int], int] = {}  # partition -> the offset the rewound window ends at
        self.events: dict[str, tuple[str | None, bytes]] = {}
        self.since_ms: int | None = None
        self.checked = 0  # events compared so far
        self.found: list[Conflict] = []
        self.conflict_count = 0
        self.tasks: set[asyncio.Task] = set()

    def rewound(self, windows: Mapping[tuple[str, int], tuple[int, int]]) -> None:
        """Partitions read again from the first offset up to the second (exclusive)."""
        for where, (_, end) in windows.items():
            if end > 0:
                self.windows[where] = max(end, self.windows.get(where, 0))

    def note(self, unit: Sequence[SourceMessage], outcomes) -> None:
        """A durable unit and its outcomes: kept while a window is open; the check starts once every window is
        passed."""
        if not self.windows:
            return
        inside = [s for s in unit if (s.topic, s.partition) in self.windows
                  and s.offset < self.windows[(s.topic, s.partition)]]
        if inside:
            stamps = [s.timestamp_ms for s in inside if s.timestamp_ms is not None]
            if stamps:
                self.since_ms = min(stamps + ([self.since_ms] if self.since_ms is not None else []))
            for outcome in outcomes:
                for event in outcome.emitted:
                    if not isinstance(event, DeadLetter):
                        self.events[str(event.event_id)] = (outcome.command_id, to_wire(event, self.topics).value)
        for s in unit:
            where = (s.topic, s.partition)
            if where in self.windows and s.offset >= self.windows[where] - 1:
                del self.windows[where]
        if not self.windows and self.events:
            events, since, self.events, self.since_ms = self.events, self.since_ms, {}, None
            task = asyncio.create_task(self.check(events, since), name="redecided-check")
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def check(self, events: dict[str, tuple[str | None, bytes]], since_ms: int | None) -> list[Conflict]:
        if self.published is None or since_ms is None:
            log.warning("commands decided again after a rewind were not compared with the events topic",
                        events=len(events))
            return []
        try:
            found = conflicts(events, await self.published.since(since_ms))
        except Exception as exc:  # never stops the worker; say so
            log.error("commands decided again could not be compared with the events topic", error=repr(exc),
                      events=len(events))
            return []
        self.checked += len(events)
        for conflict in found:
            log.error("an event decided again after a rewind differs from the one on the events topic",
                      event_id=conflict.event_id, command_id=conflict.command_id)
            self.metrics.redecided_conflicts.labels(self.metrics.service).inc()
        self.conflict_count += len(found)
        self.found = (self.found + found)[-KEEP:]
        log.info("commands decided again after a rewind compared with the events topic", events=len(events),
                 conflicts=len(found))
        return found

    def status(self) -> dict:
        return {"checked_events": self.checked, "conflicts": self.conflict_count,
                "recent_conflicts": [{"event_id": c.event_id, "command_id": c.command_id} for c in self.found[-10:]],
                "window_open": bool(self.windows)}
