"""The console's dead-letter indexer (issue 21): the DLQ topic read once into `dead_letter_index`.

Listing dead letters with filters and pages must not scan the DLQ topic for each page, so the console
process runs this consumer of the DLQ topic, in a consumer group of its own, through the one consume
loop: each poll batch is upserted by (topic, partition, offset) in one statement, then its offsets are
committed. An upsert of a position indexed before writes the same row, so several console replicas
(sharing the group or not), a crash between the upsert and the commit, or a reset of the group's offsets
are all harmless. A new group starts at the earliest offset, so the whole DLQ still stored is indexed.

What is indexed comes from the record's headers as the worker writes them (DESIGN §6.2, §11): the last of
a repeated header counts, as in `dlq show`; the command id and the order id are read from the value
when it is a JSON command. Text is bounded and stripped of NUL (Postgres text cannot hold it); a letter
whose `error.reason` is missing is indexed with none."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timezone

import structlog

from service.adapters.kafka.records import topic_records
from service.adapters.postgres import dead_letter_index
from service.adapters.postgres.dead_letter_index import IndexedLetter
from service.contract.redrive import read_count
from service.domain.commands import SourceMessage
from service.runtime.consume import ConsumeLoop
from service.runtime.health import Progress
from service.runtime.metrics import Metrics
from service.runtime.retry import OutageRetry
from service.runtime.settings import Settings

log = structlog.get_logger("orderstatus.console.dlq_index")

KEY_BYTES = 256  # of the record key kept in the index (an order id or a command id, in practice)
REASON_CHARS = 200  # the worker writes at most 200 bytes of error.reason
MESSAGE_CHARS = 2000  # and of error.message
ID_CHARS = 500  # a command id longer than this is not indexed (a search by it would not find it anyway)
JSON_BYTES = 1_048_576  # values larger than the service's default message cap are not parsed
BIGINT = 2**63
PRUNE_EVERY_S = 600.0  # how often rows of letters gone with the DLQ's retention are deleted


def _text(value: bytes | str | None, limit: int) -> str | None:
    if value is None:
        return None
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return text.replace("\x00", "\ufffd")[:limit]


def _number(value: bytes | None, below: int = BIGINT) -> int | None:
    try:
        number = int((value or b"").decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return number if 0 <= number < below else None


def _command(value: bytes | None) -> dict:
    """The value as a JSON object, when it is one ({} otherwise)."""
    if not value or len(value) > JSON_BYTES:
        return {}
    try:
        data = json.loads(value)
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def _command_id(data: dict) -> str | None:
    command_id = data.get("command_id")
    if not isinstance(command_id, str) or not command_id or len(command_id) > ID_CHARS or "\x00" in command_id:
        return None
    return command_id


def _order_id(data: dict) -> int | None:
    """A change command's order id (an integer, or a string of ASCII digits, within bigint)."""
    order_id = data.get("order_id")
    if isinstance(order_id, bool):
        return None
    if isinstance(order_id, int):
        return order_id if -BIGINT <= order_id < BIGINT else None
    if isinstance(order_id, str) and order_id.isascii() and order_id.isdigit():
        return _number(order_id.encode())
    return None


def index_entry(message: SourceMessage, now: datetime | None = None) -> IndexedLetter:
    """What the index holds of one DLQ record (`now` stands in for a record without a timestamp)."""
    headers = {name: value for name, value in message.headers}
    data = _command(message.value)
    if message.timestamp_ms is not None:
        written_at = datetime.fromtimestamp(message.timestamp_ms / 1000, timezone.utc)
    else:
        written_at = now or datetime.now(timezone.utc)
    reason = _text(headers.get("error.reason"), REASON_CHARS)
    error = _text(headers.get("error.message"), MESSAGE_CHARS)
    if message.unreadable is not None and reason is None:  # the DLQ's own batch could not be read
        reason, error = "unreadable", _text(message.unreadable, MESSAGE_CHARS)
    return IndexedLetter(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        written_at=written_at,
        reason=reason,
        message=error,
        command_id=_command_id(data),
        order_id=_order_id(data),
        original_topic=_text(headers.get("original.topic"), 500),
        original_partition=_number(headers.get("original.partition"), 2**31),
        original_offset=_number(headers.get("original.offset")),
        key=None if message.key is None else bytes(message.key[:KEY_BYTES]),
        size=len(message.value or b""),
        truncated=headers.get("error.truncated") == b"true",
        redrive_count=read_count(message.headers),
    )


class IndexStrategy:
    """The consume loop's strategy: a whole poll batch is one unit, upserted in one statement."""

    max_records = 500

    def __init__(self, pool) -> None:
        self.pool = pool
        self.indexed = 0

    def units(self, batch: Sequence[SourceMessage]) -> Sequence[Sequence[SourceMessage]]:
        return [batch]

    async def make_durable(self, unit: Sequence[SourceMessage]) -> None:
        await dead_letter_index.upsert(self.pool, [index_entry(m) for m in unit])
        self.indexed += len(unit)


async def first_stored_offsets(settings: Settings, topic: str) -> dict[int, int]:
    """Per partition of `topic`, the first offset the broker still stores (read without a group)."""
    async with topic_records(settings, topic) as reader:
        partitions = reader.partitions()
        return {p: first for p, (first, _) in (await reader.bounds(partitions)).items()} if partitions else {}


class DeadLetterIndexer:
    """Indexes the DLQ topic until stopped. `consumer`: a `runtime.consumer.Consumer` in the indexer's own
    group (the console's wiring makes it, e.g. `KafkaConsumer(make_consumer(settings, group))`).
    `first_offsets` (e.g. `partial(first_stored_offsets, settings, dlq_topic)`): asked every
    PRUNE_EVERY_S, so the rows of letters the DLQ's retention removed are deleted — a listed letter can be
    read and redriven; None: never pruned."""

    def __init__(self, pool, consumer, dlq_topic: str, retry: OutageRetry, progress: Progress, metrics: Metrics,
                 first_offsets: Callable[[], Awaitable[Mapping[int, int]]] | None = None,
                 prune_every_s: float = PRUNE_EVERY_S) -> None:
        self.pool = pool
        self.topic = dlq_topic
        self.strategy = IndexStrategy(pool)
        self.loop = ConsumeLoop(consumer, dlq_topic, self.strategy, retry, progress, metrics, commit_interval_s=1.0)
        self.first_offsets = first_offsets
        self.prune_every_s = prune_every_s

    def owned(self) -> dict[str, list[int]]:
        """The DLQ partitions this indexer reads now (for the console's heartbeat)."""
        return {self.topic: sorted(self.loop.owned_partitions())}

    async def prune(self) -> int:
        """Delete the rows of letters the DLQ no longer stores; returns how many went."""
        if self.first_offsets is None:
            return 0
        return await dead_letter_index.forget_before(self.pool, self.topic, await self.first_offsets())

    async def _pruning(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                gone = await self.prune()
                if gone:
                    log.info("dead letters gone with the DLQ's retention unindexed", rows=gone)
            except Exception as exc:  # an outage: the next round tries again; indexing goes on regardless
                log.warning("dead-letter index not pruned", error=repr(exc))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.prune_every_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Join the group (backing off while the broker is away), then index until `stop`."""
        pruning = asyncio.create_task(self._pruning(stop), name="dlq-index-prune")
        try:
            await self.loop.start()
            await self.loop.run(stop)
        finally:
            pruning.cancel()
            await asyncio.gather(pruning, return_exceptions=True)
