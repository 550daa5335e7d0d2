"""When the output reaches the outside: each event a reader reads and each email the sink receives,
stamped on arrival, and the largest pause between them around a moment of the test (a fault, a
rebalance). Measurements to print, never to time a test by."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass

from service.notifier.rendering import EVENT_ID_HEADER
from tests.helpers.topics import TopicReader


@dataclass(frozen=True)
class Arrival:
    at: float  # time.monotonic() when the reader got it
    value: dict
    partition: int
    create_time_s: float  # the record's CreateTime (wall clock), set by the producer that sent it


class Arrivals:
    """Polls a TopicReader (and the SMTP sink, when given) until stopped, stamping what arrives."""

    def __init__(self, reader: TopicReader, sink=None) -> None:
        self.reader = reader
        self.sink = sink
        self.events: list[Arrival] = []
        self.mails: list[tuple[float, str]] = []  # (arrival, event id)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.poll()

    async def poll(self) -> None:
        seen = len(self.reader.records)
        await self.reader.poll()  # returns as soon as records are there, else after 0.2 s
        now = time.monotonic()
        for record in self.reader.records[seen:]:
            try:
                value = json.loads(record.value)
            except (TypeError, ValueError):
                value = {}
            self.events.append(Arrival(now, value if isinstance(value, dict) else {}, record.partition,
                                       record.timestamp / 1000))
        if self.sink is not None:
            messages = self.sink.messages
            self.mails += [(now, m[EVENT_ID_HEADER]) for m in messages[len(self.mails):]]
        if len(self.reader.records) == seen:
            await asyncio.sleep(0.02)

    def values(self) -> list[dict]:
        return [a.value for a in self.events]

    def command_ids(self) -> set[str]:
        return {a.value.get("command_id") for a in self.events}


def largest_gap(times: list[float], start: float, end: float) -> float:
    """The largest gap between consecutive times (arrivals) that overlaps [start, end]."""
    ordered = sorted(times)
    return max((b - a for a, b in zip(ordered, ordered[1:]) if b >= start and a <= end), default=0.0)


def wall_clock(monotonic: float) -> float:
    """A time.monotonic() mark on the wall clock, to compare it with records' CreateTime."""
    return monotonic + (time.time() - time.monotonic())
