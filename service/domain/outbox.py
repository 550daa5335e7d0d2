"""The outbox as plain data, and its one ordering rule (DESIGN §7.4).

A stored message waits in a line: its shard, topic and key (an order's events share one). The rule that
keeps an order's events in order when the broker refuses one for good: **a refused row holds back the
later rows of its line** — they are parked behind it, never sent past it, until an operator releases it
(`orderstatus outbox retry`), and then they go back in line with it. A row without a key is in no line:
nothing holds it back and it holds nothing back.

Written once, here, and followed by every place that needs it: the relay's sender
(`service.adapters.kafka.publishing.publish_each`: what not to send after a refusal), the relay's round
(`service.worker.relay_round.settle_round`: what to park behind what), and the in-memory outbox store of
the tests. The Postgres store still says it in SQL (the `behind` column of a round's query, the line
`outbox retry` moves); its contract test checks that SQL against `held_back`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# a row's line: (shard, topic, key)
Line = tuple[int, str, bytes]


@dataclass(frozen=True)
class StoredMessage:
    """An outbox row as the relay sends it."""

    id: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    source_time: datetime | None = None  # the command's Kafka timestamp (end-to-end latency)
    shard: int = 0


@dataclass(frozen=True)
class Parking:
    """Why a row is parked: refused itself (`held_behind` None), or held behind the parked row of its line."""

    id: int
    reason: str
    held_behind: int | None = None


@dataclass(frozen=True)
class OutboxStats:
    backlog: int  # rows the relay has still to publish (parked ones and those held behind them not counted)
    oldest_age_s: float | None  # age of the oldest of them
    parked: int  # rows the broker refused (the rows held behind them not counted)


def line_of(message: StoredMessage) -> Line | None:
    """The line a row waits in (its shard, topic and key), or None: a row without a key is in none."""
    return None if message.key is None else (message.shard, message.topic, message.key)


@dataclass
class HeldLines:
    """The lines a refused row holds back: line -> that row (the first refused of the line)."""

    heads: dict[Line, int] = field(default_factory=dict)

    @classmethod
    def of(cls, refused: Iterable[StoredMessage]) -> HeldLines:
        """The lines these refused rows hold back, each behind its first (lowest id) refused row."""
        lines = cls()
        for message in sorted(refused, key=lambda m: m.id):
            lines.refuse(message)
        return lines

    def refuse(self, message: StoredMessage) -> None:
        """`message` was refused: the later rows of its line wait behind it (an earlier refusal stays the head)."""
        line = line_of(message)
        if line is not None:
            self.heads.setdefault(line, message.id)

    def behind(self, message: StoredMessage) -> int | None:
        """The refused row `message` has to wait behind, or None: nothing holds it back."""
        line = line_of(message)
        return None if line is None else self.heads.get(line)


def held_back(rows: Iterable[StoredMessage], parked: Iterable[StoredMessage]) -> dict[int, int]:
    """Which of `rows` wait behind a parked row: row id -> the first parked row of its line. `parked` are
    the rows refused and parked themselves (not the rows held behind them)."""
    lines = HeldLines.of(parked)
    held = {row.id: lines.behind(row) for row in rows}
    return {row_id: behind for row_id, behind in held.items() if behind is not None}

