"""`orderstatus dlq list|show|redrive`: look at dead letters and send them back after a fix (DESIGN §6.2, §11).

A redrive sends a dead letter's original key and value back to its `original.topic`, with the
original's own headers and `redrive.count` / `redrive.dlq-offset` / `redrive.dlq-partition`. The worker
processes it once: a command recorded as invalid is taken over and decided again, a command that
applied or was rejected stays a duplicate, and a second redrive of the same DLQ record (or a replay of
the commands topic) does nothing. So a redrive is safe to repeat. A dead letter that was cut to fit
the DLQ (`error.truncated`) cannot be redriven: its original bytes are lost; nor can an `unreadable` one
(a record batch the worker could not decompress), which holds none of them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from service.adapters.kafka.records import Record, TopicRecords
from service.contract.redrive import read_count, redrive_headers, why_unredrivable
from service.ops.errors import OpsError
from service.ops.printing import printable
from service.runtime.auth import TOKEN_HEADER

MAX_ECHO = 200  # characters of a command id shown in a listing
WINDOW = 100  # redriven records in flight before their acknowledgements are awaited


@dataclass(frozen=True)
class DeadLetter:
    """A DLQ record and what its headers say."""

    record: Record
    reason: str | None
    message: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    command_id: str | None
    truncated: bool
    redrive_count: int

    @property
    def position(self) -> str:
        return f"{self.record.partition}:{self.record.offset}"

    @property
    def size(self) -> int:
        return len(self.record.value or b"")

    @property
    def when(self) -> datetime:
        return datetime.fromtimestamp(self.record.timestamp_ms / 1000, timezone.utc)

    @property
    def original_position(self) -> str:
        if self.original_topic is None:
            return "-"
        return f"{self.original_topic}:{self.original_partition}:{self.original_offset}"

    def unredrivable(self) -> str | None:
        """Why this record cannot be redriven; None when it can."""
        return why_unredrivable(self.original_topic, self.truncated, self.reason)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _int(value: bytes | None) -> int | None:
    try:
        return int(value.decode("ascii")) if value is not None else None
    except (UnicodeDecodeError, ValueError):
        return None


def _command_id(value: bytes | None) -> str | None:
    """The command id of a JSON command, when it can be read (shown as printable text, bounded)."""
    if not value or len(value) > 1_048_576:
        return None
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return None
    command_id = data.get("command_id") if isinstance(data, dict) else None
    return printable(command_id.encode(), MAX_ECHO) if isinstance(command_id, str) and command_id else None


def read_letter(record: Record) -> DeadLetter:
    """What a DLQ record's headers say (the last of a repeated header counts, as the worker writes ours last)."""
    headers = {name: value for name, value in record.headers}
    return DeadLetter(
        record=record,
        reason=_text(headers.get("error.reason")),
        message=_text(headers.get("error.message")),
        original_topic=_text(headers.get("original.topic")),
        original_partition=_int(headers.get("original.partition")),
        original_offset=_int(headers.get("original.offset")),
        command_id=_command_id(record.value),
        truncated=headers.get("error.truncated") == b"true",
        redrive_count=read_count(record.headers),
    )


def render(letter: DeadLetter, max_bytes: int) -> list[str]:
    """`dlq show`: the position, the headers one per line, then the key and the value, printed safely."""
    record = letter.record
    lines = [
        f"position: {record.topic}:{letter.position}",
        f"time: {letter.when.isoformat()}",
        f"size: {letter.size} bytes",
        "headers:",
    ]
    for name, value in record.headers:
        shown = "(null)" if value is None else printable(value, max_bytes)
        if name == TOKEN_HEADER and value is not None:  # a token is a credential: never printed (issue 23)
            shown = f"(redacted, {len(value)} bytes)"
        lines.append(f"  {printable(name.encode('utf-8', 'replace'), 200)}: {shown}")
    lines.append("key: " + ("(null)" if record.key is None else printable(record.key, max_bytes)))
    lines.append("value: " + ("(null)" if record.value is None else printable(record.value, max_bytes)))
    if letter.unredrivable():
        lines.append(f"cannot be redriven: {letter.unredrivable()}")
    return lines


SUMMARY_HEADER = "\t".join(("POSITION", "WRITTEN", "REASON", "ORIGINAL", "COMMAND_ID", "SIZE", "NOTES"))


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 dead letter`, `2 dead letters`."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def summary_line(letter: DeadLetter) -> str:
    """`dlq list`: offset, time, reason, original position, command id, size (and redrives so far)."""
    parts = [
        letter.position,
        letter.when.isoformat(timespec="milliseconds"),
        printable((letter.reason or "-").encode(), 100),
        printable(letter.original_position.encode(), 300),
        letter.command_id or "-",
        f"{letter.size} bytes",
    ]
    notes = []
    if letter.redrive_count:
        notes.append(f"redriven {letter.redrive_count}x")
    if letter.truncated:
        notes.append("truncated")
    parts.append(", ".join(notes) or "-")  # one NOTES column, so every line has the header's columns
    return "\t".join(parts)


@dataclass(frozen=True)
class Selection:
    """Which dead letters: explicit positions, or every one matching the filters (all when none is set)."""

    positions: tuple[tuple[int, int], ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = None
    limit: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        when = letter.record.timestamp_ms
        return ((self.since is None or when >= _ms(self.since)) and (self.until is None or when <= _ms(self.until))
                and (self.reason is None or letter.reason == self.reason))


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def parse_position(text: str, partitions: list[int]) -> tuple[int, int]:
    """`PARTITION:OFFSET`, or a bare `OFFSET` when the DLQ has one partition."""
    try:
        if ":" in text:
            partition, offset = (int(x) for x in text.split(":"))
        else:
            partition, offset = None, int(text)
    except ValueError:
        raise OpsError(f"not a DLQ position (PARTITION:OFFSET or OFFSET): {text!r}") from None
    if partition is None:
        if len(partitions) != 1:
            raise OpsError(f"the DLQ has {len(partitions)} partitions: give PARTITION:OFFSET, not {text!r}")
        partition = partitions[0]
    if partition not in partitions or offset < 0:
        raise OpsError(f"no such DLQ position: {text} (partitions {', '.join(map(str, partitions)) or 'none'})")
    return partition, offset


async def ranges(reader: TopicRecords, selection: Selection) -> dict[int, tuple[int, int]]:
    """The offsets to scan per partition: all that is stored, narrowed by --since/--until."""
    partitions = reader.partitions()
    if not partitions:
        raise OpsError(f"topic {reader.topic} does not exist")
    spans = await reader.bounds(partitions)
    if selection.since is not None:
        starts = await reader.first_at_or_after(partitions, _ms(selection.since))
        spans = {p: (spans[p][1] if starts[p] is None else max(starts[p], spans[p][0]), spans[p][1])
                 for p in partitions}
    if selection.until is not None:
        ends = await reader.first_at_or_after(partitions, _ms(selection.until) + 1)
        spans = {p: (spans[p][0], spans[p][1] if ends[p] is None else min(ends[p], spans[p][1])) for p in partitions}
    return spans


def scan_size(spans: dict[int, tuple[int, int]]) -> int:
    """How many records a scan of these ranges reads (the length of a progress bar)."""
    return sum(max(end - start, 0) for start, end in spans.values())


async def letters(reader: TopicRecords, selection: Selection,
                  spans: dict[int, tuple[int, int]] | None = None,
                  scanned: Callable[[int], None] = lambda n: None) -> AsyncIterator[DeadLetter]:
    """The selected dead letters in partition and offset order (`scanned(n)` counts records read)."""
    found = 0
    if selection.positions:  # every one is found before the first is handed out: all or nothing
        records = []
        for partition, offset in selection.positions:
            record = await reader.get(partition, offset)
            scanned(1)
            if record is None:
                raise OpsError(f"no dead letter at {reader.topic}:{partition}:{offset} (never written, or "
                               "deleted by the topic's retention)")
            records.append(record)
        for record in records:
            yield read_letter(record)
        return
    spans = spans if spans is not None else await ranges(reader, selection)
    for partition, (start, end) in sorted(spans.items()):
        async for record in reader.read(partition, start, end):
            scanned(1)
            letter = read_letter(record)
            if not selection.matches(letter):
                continue
            yield letter
            found += 1
            if selection.limit is not None and found >= selection.limit:
                return


@dataclass(frozen=True)
class Redriven:
    letter: DeadLetter
    topic: str
    partition: int | None  # where it went (None in a dry run)
    offset: int | None
    count: int  # its redrive.count


@dataclass(frozen=True)
class Skipped:
    letter: DeadLetter
    why: str


class Pace:
    """At most `rate` sends per second (none when rate is None)."""

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self.sent = 0
        self.started = time.monotonic()

    async def wait(self) -> None:
        if self.rate:
            delay = self.started + self.sent / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        self.sent += 1


async def redrive(reader: TopicRecords, producer, selection: Selection, *, dry_run: bool = False,
                  rate: float | None = None, spans: dict[int, tuple[int, int]] | None = None,
                  scanned: Callable[[int], None] = lambda n: None) -> AsyncIterator[Redriven | Skipped]:
    """Send the selected dead letters back, in DLQ order, each result once the broker acknowledged it."""
    pace = Pace(rate)
    in_flight: list[tuple[DeadLetter, str, int, object]] = []

    async def settle() -> AsyncIterator[Redriven]:
        for letter, topic, count, future in in_flight:
            meta = await future
            yield Redriven(letter, topic, meta.partition, meta.offset, count)
        in_flight.clear()

    async for letter in letters(reader, selection, spans, scanned):
        why = letter.unredrivable()
        if why is not None:
            yield Skipped(letter, why)
            continue
        record = letter.record
        headers = redrive_headers(record.headers, record.partition, record.offset)
        count = letter.redrive_count + 1
        if dry_run:
            yield Redriven(letter, letter.original_topic, None, None, count)
            continue
        await pace.wait()
        future = await producer.send(letter.original_topic, value=record.value, key=record.key, headers=headers)
        in_flight.append((letter, letter.original_topic, count, future))
        if len(in_flight) >= WINDOW or rate:
            async for done in settle():
                yield done
    async for done in settle():
        yield done
