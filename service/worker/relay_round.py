"""One publishing round of the outbox relay: lock a round of rows, send them, settle what the broker said.
No scheduling (`service.worker.relay`), no metrics or logs (`service.worker.relay_metrics`): the round
returns a `RoundReport` and the caller tells the world.

Each round reads the rows after each shard's cursor and, once the broker has acknowledged them, moves
the cursor past them: one update per round, not one per row. A row the broker refuses for good (too
large, invalid topic) is parked and publishing goes on with the next rows; the later rows of its line
are parked behind it (the rule: `service.domain.outbox`), so an order's events never overtake one
another. When an outage stops a round, the cursor stops before the first row not sent and rows
acknowledged after it are marked one by one, so nothing acknowledged is sent twice. A topic this
worker's user may not write is no row's fault: the round stops there as on an outage."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from service.adapters.errors import AccessRefused
from service.adapters.kafka.publishing import SENT, publish_each
from service.domain.outbox import HeldLines, Parking, StoredMessage
from service.runtime import tracing
from service.runtime.faults import is_outage
from service.worker.ports import Producer
from service.worker.relay_store import OutboxStore

Result = str | BaseException | None  # SENT, the refusal, or None: not sent


@dataclass
class Settled:
    through: int | None  # the new cursor: every row up to it is published or parked
    published: list[int]
    published_beyond: list[int]  # published after a row left unsettled (an outage): marked one by one
    parked: list[Parking]


def settle_round(rows: Sequence[StoredMessage], held: dict[int, int], results: dict) -> Settled:
    """What a round settled in one shard, row by row in id order: sent rows are published; refused rows
    are parked, and so are the rows held behind a parked row (one parked before, or one refused earlier in
    this round); a row an outage or a refused ACL left unsent stops the cursor before it."""
    through: int | None = None
    published: list[int] = []
    parked: list[Parking] = []
    refused = HeldLines()
    in_line = True  # every row so far is settled: the cursor may follow
    for row in rows:
        result = results.get(row.id)
        behind = held.get(row.id)
        if behind is None and result is None:
            behind = refused.behind(row)
        if behind is not None:
            parked.append(Parking(row.id, f"held behind parked row {behind}", behind))
        elif result == SENT:
            published.append(row.id)
        elif isinstance(result, BaseException) and not unsent(result):
            parked.append(Parking(row.id, f"{type(result).__name__}: {result}"[:1000]))
            refused.refuse(row)
        else:  # not sent: an outage or a refused ACL stopped the round
            in_line = False
            continue
        if in_line:
            through = row.id
    beyond = [i for i in published if through is None or i > through]
    return Settled(through, published, beyond, parked)


def unsent(exc: BaseException) -> bool:
    """The row was not published, through no fault of its own: an outage, or a refused ACL."""
    return is_outage(exc) or isinstance(exc, AccessRefused)


def _by_shard(rows: Sequence[StoredMessage]) -> dict[int, list[StoredMessage]]:
    grouped: dict[int, list[StoredMessage]] = {}
    for row in rows:
        grouped.setdefault(row.shard, []).append(row)
    return grouped


@dataclass
class RoundReport:
    """What one round did."""

    sending: list[StoredMessage] = field(default_factory=list)  # the rows it sent (not those held behind)
    results: list[Result] = field(default_factory=list)  # what the broker said, one per row sent
    published: int = 0
    parked: int = 0  # refused, or held behind a refused row
    held: dict[int, int] = field(default_factory=dict)  # rows held behind rows parked in earlier rounds
    more: set[int] = field(default_factory=set)  # shards whose part was cut: go on with them

    @property
    def settled(self) -> int:
        return self.published + self.parked

    @property
    def refused(self) -> list[tuple[StoredMessage, BaseException]]:
        """The rows the broker refused for good (parked now), with why."""
        return [(row, result) for row, result in zip(self.sending, self.results)
                if isinstance(result, BaseException) and not unsent(result)]

    @property
    def outage(self) -> BaseException | None:
        return next((r for r in self.results if isinstance(r, BaseException) and is_outage(r)), None)

    @property
    def access_refused(self) -> AccessRefused | None:
        return next((r for r in self.results if isinstance(r, AccessRefused)), None)


async def publish_round(store: OutboxStore, producer: Producer, shards: Sequence[int], limit: int,
                        max_bytes: int) -> RoundReport | None:
    """Publish one round of the shards (those another relay does not hold) and record it; None when other
    relays hold every one of them. The round is recorded even when an outage stopped it (see `outage`)."""
    async with store.lock_round(limit, list(shards), max_bytes) as batch:
        if batch is None:
            return None
        if not batch.rows:
            return RoundReport()
        held = batch.held
        sending = [row for row in batch.rows if row.id not in held]
        with tracing.span("publish", rows=len(sending)):
            results = await publish_each(producer, sending, unsent)
        by_id = dict(zip((row.id for row in sending), results))
        through: dict[int, int] = {}
        published_beyond: list[int] = []
        parked: list[Parking] = []
        published = 0
        for shard, rows in _by_shard(batch.rows).items():
            settled = settle_round(rows, held, by_id)
            if settled.through is not None:
                through[shard] = settled.through
            published_beyond += settled.published_beyond
            parked += settled.parked
            published += len(settled.published)
        await batch.settle(through, published_beyond, parked)
    return RoundReport(sending, results, published, len(parked), held, batch.more)
