"""The `dead_letter_index` table (issue 21): what the console lists and filters dead letters by.

One row per DLQ record, keyed by (topic, partition, offset) and upserted, so the indexer of any
console replica, or one that reads the DLQ again, writes the same row again. The letter itself stays
in Kafka: reading one in full fetches the record by its offset. Pages are newest first and keyset-paged
on (written_at, partition, offset) — a page is an index range scan wherever it starts, however many
letters there are — with a cursor that is an opaque string to the caller. Rows of letters the DLQ's
retention removed are deleted by `forget_before`. The functions take a pool or a
connection; the results are plain data."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime

MAX_PAGE = 500


@dataclass(frozen=True)
class IndexedLetter:
    """A dead letter as indexed: where and when it was written, why, and what it was."""

    topic: str
    partition: int
    offset: int
    written_at: datetime
    reason: str | None
    message: str | None
    command_id: str | None
    order_id: int | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    key: bytes | None  # the record's key, cut to KEY_BYTES
    size: int  # bytes of the value
    truncated: bool  # error.truncated: the original was cut to fit
    redrive_count: int  # redrive.count of the dead-lettered command: how often it was redriven before


_FIELDS = [f.name for f in fields(IndexedLetter)]
_SELECT = ", ".join('"offset"' if name == "offset" else "message_key AS key" if name == "key" else name
                    for name in _FIELDS)


@dataclass(frozen=True)
class Filter:
    """Which letters: every one when nothing is set. `since` inclusive, `until` exclusive."""

    reason: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    command_id: str | None = None
    order_id: int | None = None


@dataclass(frozen=True)
class Page:
    letters: list[IndexedLetter]
    next_cursor: str | None  # None: this is the last page


def encode_cursor(letter: IndexedLetter) -> str:
    """The cursor of the page after `letter` (an opaque, URL-safe string)."""
    raw = json.dumps([letter.written_at.isoformat(), letter.partition, letter.offset])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


class BadCursor(ValueError):
    """A cursor this module did not make."""


def decode_cursor(cursor: str) -> tuple[datetime, int, int]:
    """(written_at, partition, offset) of a cursor from `encode_cursor`; BadCursor for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        when, partition, offset = json.loads(raw)
        moment = datetime.fromisoformat(when)
        if moment.tzinfo is None or type(partition) is not int or type(offset) is not int:
            raise ValueError
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise BadCursor(f"not a dead-letter cursor: {cursor[:100]!r}") from None
    return moment, partition, offset


def _where(topic: str, where: Filter, args: list) -> str:
    """The SQL condition of a filter (fixed fragments; values appended to `args` as parameters)."""

    def param(value) -> str:
        args.append(value)
        return f"${len(args)}"

    clauses = [f"topic = {param(topic)}"]
    if where.reason is not None:
        clauses.append(f"reason = {param(where.reason)}")
    if where.since is not None:
        clauses.append(f"written_at >= {param(where.since)}")
    if where.until is not None:
        clauses.append(f"written_at < {param(where.until)}")
    if where.command_id is not None:
        clauses.append(f"command_id = {param(where.command_id)}")
    if where.order_id is not None:
        clauses.append(f"order_id = {param(where.order_id)}")
    return " AND ".join(clauses)


def _letter(row) -> IndexedLetter:
    return IndexedLetter(**{name: (bytes(row[name]) if name == "key" and row[name] is not None else row[name])
                            for name in _FIELDS})


async def upsert(db, letters: Sequence[IndexedLetter]) -> None:
    """Index the letters; a position indexed before is written again with what the letter says now."""
    if not letters:
        return
    rows = sorted(letters, key=lambda x: (x.topic, x.partition, x.offset))  # one lock order between replicas
    column = {name: [getattr(x, name) for x in rows] for name in _FIELDS}
    await db.execute(
        """
        INSERT INTO dead_letter_index (topic, partition, "offset", written_at, reason, message, command_id, order_id,
                                       original_topic, original_partition, original_offset, message_key, size,
                                       truncated, redrive_count)
        SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[], $4::timestamptz[], $5::text[], $6::text[],
                             $7::text[], $8::bigint[], $9::text[], $10::int[], $11::bigint[], $12::bytea[],
                             $13::int[], $14::bool[], $15::int[])
        ON CONFLICT (topic, partition, "offset") DO UPDATE
           SET written_at = EXCLUDED.written_at, reason = EXCLUDED.reason, message = EXCLUDED.message,
               command_id = EXCLUDED.command_id, order_id = EXCLUDED.order_id,
               original_topic = EXCLUDED.original_topic, original_partition = EXCLUDED.original_partition,
               original_offset = EXCLUDED.original_offset, message_key = EXCLUDED.message_key,
               size = EXCLUDED.size, truncated = EXCLUDED.truncated, redrive_count = EXCLUDED.redrive_count
        """,
        *(column[name] for name in _FIELDS),
    )


async def page(db, topic: str, where: Filter = Filter(), limit: int = 50, cursor: str | None = None) -> Page:
    """One page of the letters that match, newest first (by Kafka's time, then partition and offset);
    `cursor` is the previous page's `next_cursor`. Raises BadCursor for a cursor not made here."""
    limit = max(1, min(limit, MAX_PAGE))
    args: list = []
    condition = _where(topic, where, args)
    if cursor is not None:
        when, partition, offset = decode_cursor(cursor)
        args += [when, partition, offset]
        condition += f' AND (written_at, partition, "offset") < (${len(args) - 2}, ${len(args) - 1}, ${len(args)})'
    args.append(limit + 1)
    rows = await db.fetch(
        f'SELECT {_SELECT} FROM dead_letter_index WHERE {condition} '
        f'ORDER BY written_at DESC, partition DESC, "offset" DESC LIMIT ${len(args)}',
        *args,
    )
    letters = [_letter(r) for r in rows[:limit]]
    return Page(letters=letters, next_cursor=encode_cursor(letters[-1]) if len(rows) > limit else None)


async def get(db, topic: str, partition: int, offset: int) -> IndexedLetter | None:
    """The indexed letter at one position; None when it is not indexed (yet)."""
    row = await db.fetchrow(
        f'SELECT {_SELECT} FROM dead_letter_index WHERE topic = $1 AND partition = $2 AND "offset" = $3',
        topic, partition, offset,
    )
    return None if row is None else _letter(row)


async def get_many(db, topic: str, positions: Sequence[tuple[int, int]]) -> dict[tuple[int, int], IndexedLetter]:
    """The indexed letters at these positions, by (partition, offset); positions not indexed are absent."""
    rows = await db.fetch(
        f'SELECT {_SELECT} FROM dead_letter_index WHERE topic = $1 AND (partition, "offset") IN '
        '(SELECT * FROM unnest($2::int[], $3::bigint[]))',
        topic, [p for p, _ in positions], [o for _, o in positions],
    )
    return {(r["partition"], r["offset"]): _letter(r) for r in rows}


async def count(db, topic: str, where: Filter = Filter()) -> int:
    """How many letters match."""
    args: list = []
    return await db.fetchval(f"SELECT count(*) FROM dead_letter_index WHERE {_where(topic, where, args)}", *args)


async def counts_by_reason(db, topic: str, where: Filter = Filter()) -> dict[str | None, int]:
    """How many letters match, per `error.reason` (None: a record without one), most first."""
    args: list = []
    rows = await db.fetch(
        f"SELECT reason, count(*)::int AS n FROM dead_letter_index WHERE {_where(topic, where, args)} "
        "GROUP BY reason ORDER BY n DESC, reason",
        *args,
    )
    return {r["reason"]: r["n"] for r in rows}


async def positions(db, topic: str, where: Filter = Filter(), limit: int | None = None) -> list[tuple[int, int]]:
    """The (partition, offset) of every letter that matches, in partition and offset order (a redrive of
    all that match a filter reads them from Kafka by these positions)."""
    args: list = []
    condition = _where(topic, where, args)
    bound = ""
    if limit is not None:
        args.append(limit)
        bound = f" LIMIT ${len(args)}"
    rows = await db.fetch(
        f'SELECT partition, "offset" FROM dead_letter_index WHERE {condition} ORDER BY partition, "offset"{bound}',
        *args,
    )
    return [(r["partition"], r["offset"]) for r in rows]


async def forget_before(db, topic: str, first_offsets: Mapping[int, int]) -> int:
    """Delete the rows of letters the topic no longer stores: per partition, those below its first offset
    still stored (the DLQ's retention removed them, so they can be neither read nor redriven). Partitions
    not named are left alone. Returns how many rows went."""
    if not first_offsets:
        return 0
    partitions = sorted(first_offsets)
    status = await db.execute(
        """
        DELETE FROM dead_letter_index d
         USING unnest($2::int[], $3::bigint[]) AS f(partition, first_offset)
         WHERE d.topic = $1 AND d.partition = f.partition AND d."offset" < f.first_offset
        """,
        topic, partitions, [first_offsets[p] for p in partitions],
    )
    return int(status.split()[-1])
