"""From a poll batch of Kafka records to durable outcomes: claim, lock, decide, write — one unit of work.

`process_batch` makes the whole batch durable in one transaction: the claims step (`claims.py`) says which
messages are fresh, their orders are locked and read, each is decided by its pure handler and its outcome
written with its outbox messages. If that fails for a reason that is not an outage, `poison.py` redoes the
batch one message per unit of work. A redriven command processed once more (its invalid record taken over)
gets fresh event ids."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

import structlog

from service.adapters.errors import ClaimLost
from service.contract.events import Topics, to_wire
from service.domain.commands import SourceMessage
from service.domain.events import DeadLetter
from service.runtime import tracing
from service.runtime.tracing import traceparent_of
from service.worker.claims import Parsed, authenticate, claim, parse
from service.worker.config import BatchConfig, OrderShard, no_order_shard
from service.worker.handlers import (
    HANDLERS,
    Context,
    Decided,
    decision_time,
    handle_invalid,
    handle_unauthenticated,
)
from service.worker.ports import UnitOfWork

log = structlog.get_logger("orderstatus.worker")

CLAIM_TRIES = 3  # a redo sees the commands it lost as duplicates, so a second try is all it takes


@dataclass
class BatchResult:
    outcomes: list[Decided]
    duplicates: int
    skipped: int = 0  # messages not even the dead-letter path could record (logged, counted)
    shards: set[int] = field(default_factory=set)  # the outbox shards it wrote rows to: the relay's next work


def next_positions(sources: Iterable[SourceMessage]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the offset after the last of these messages — the consumer's position once
    their outcomes are durable, written in the same transaction (issue 24)."""
    positions: dict[tuple[str, int], int] = {}
    for source in sources:
        where = (source.topic, source.partition)
        positions[where] = max(source.offset + 1, positions.get(where, 0))
    return positions


def first_positions(sources: Iterable[SourceMessage]) -> dict[tuple[str, int], int]:
    """Per (topic, partition): the offset of the first of these messages. A database position behind it is a
    gap — commits the database lost — and the unit of work raises PositionGap instead of committing."""
    positions: dict[tuple[str, int], int] = {}
    for source in sources:
        where = (source.topic, source.partition)
        positions[where] = min(source.offset, positions.get(where, source.offset))
    return positions


def add_outcome(uow: UnitOfWork, outcome: Decided, topics: Topics, source: SourceMessage | None = None,
                order_shard: OrderShard = no_order_shard) -> set[int]:
    """The outcome into the unit of work. Its messages go to an outbox shard, published by the worker that
    owns the commands partition of the same number: an order's events to its order's shard (the partition
    its commands are keyed to), wherever the command came from, so one relay publishes all of them in
    order — an override's items included; the rest to the command's partition. Its events carry the
    command's Kafka timestamp (end-to-end latency). Returns the shards of its messages."""
    if source is None:
        messages = [to_wire(e, topics, outcome.traceparent) for e in outcome.emitted]
    else:
        messages = []
        for e in outcome.emitted:
            order_id = getattr(e, "order_id", None)
            shard = None if order_id is None else order_shard(order_id)
            messages.append(to_wire(e, topics, outcome.traceparent,
                                    shard=source.partition if shard is None else shard,
                                    source_timestamp_ms=source.timestamp_ms))
    uow.add(outcome.command_id, outcome.outcome, outcome.changes, messages)
    return {m.shard for m in messages}


def _handle(p: Parsed, ctx: Context) -> Decided:
    if p.command is None:
        return handle_invalid(p.invalid, p.source, ctx)
    if p.refused is not None:
        return handle_unauthenticated(p.command, ctx, p.refused, key=p.dedupe_key)
    command = p.command if p.actor is None or p.actor == p.command.actor else replace(p.command, actor=p.actor)
    return HANDLERS[command.type](command, ctx)


async def process_batch(sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork],
                        config: BatchConfig) -> BatchResult:
    """Make the outcome of every message durable in one transaction (messages in the given order).

    A claim lost to a concurrent worker (a rebalance hands a partition over while its old owner still
    holds a batch of it) rolls the transaction back; the batch is redone at once and finds those commands
    recorded, as duplicates."""
    parsed = [authenticate(parse(s, config.limits), config.check_actor) for s in sources]
    for attempt in range(1, CLAIM_TRIES + 1):
        try:
            with tracing.span("transaction", messages=len(sources)):
                return await _in_one_transaction(parsed, uow_factory, config)
        except ClaimLost as lost:
            if attempt == CLAIM_TRIES:
                raise
            log.info("a concurrent worker recorded commands of this batch first; redoing it",
                     command_ids=lost.args[0] if lost.args else None)
    raise AssertionError("unreachable")


async def _in_one_transaction(parsed: list[Parsed], uow_factory: Callable[[], UnitOfWork],
                              config: BatchConfig) -> BatchResult:
    topics = config.topics
    async with uow_factory() as uow:
        rules = await uow.rules()
        claimed = await claim(uow, parsed, topics)
        for redrive_key in claimed.spent_on_duplicates:
            uow.add(redrive_key, "redrive:duplicate", [], [])
        orders = await uow.lock_orders(oid for f in claimed.fresh for oid in f.parsed.order_ids())
        clock = datetime.now(timezone.utc)
        ctx = Context(rules=rules, orders=orders, now=clock, max_batch_items=config.max_batch_items)
        outcomes = []
        shards: set[int] = set()
        for p, retaken in ((f.parsed, f.retaken) for f in claimed.fresh):
            ctx.now = decision_time(p.source, clock)  # decided again after a rewind: the same events (issue 24)
            where = {"command_id": p.dedupe_key, "partition": p.source.partition, "offset": p.source.offset}
            with tracing.span("command", traceparent_of(p.source.headers), **where) as traceparent:
                outcome = _handle(p, ctx)
            outcome.traceparent = traceparent
            if retaken:
                outcome = _under_fresh_ids(outcome, p.redrive.key(topics.dlq))
            # the fields go with the two log lines only (binding context variables per command costs more)
            redriven = {} if p.redrive is None else {"redrive_count": p.redrive.count, "retaken": retaken}
            if p.command is not None:
                log.info("command processed", type=p.kind, outcome=outcome.outcome,
                         order_id=getattr(p.command, "order_id", None), **where, **redriven)
            else:
                log.warning("command dead-lettered", outcome=outcome.outcome, error=p.invalid.message, **where,
                            **redriven)
            shards |= add_outcome(uow, outcome, topics, p.source, config.order_shard)
            if p.redrive is not None:
                uow.add(p.redrive.key(topics.dlq), f"redrive:{outcome.outcome}", [], [])
            outcomes.append(outcome)
        uow.advance(next_positions(p.source for p in parsed), first_positions(p.source for p in parsed))
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=len(parsed) - len(claimed.fresh), shards=shards)


def _under_fresh_ids(outcome: Decided, salt: str) -> Decided:
    """The outcome of a command processed once more after a redrive: its events get ids of their own,
    derived from the usual ones and the redrive (still deterministic), so no subscriber takes them for
    the events of the earlier attempt."""
    emitted = [e if isinstance(e, DeadLetter) else replace(e, event_id=uuid.uuid5(e.event_id, salt))
               for e in outcome.emitted]
    return replace(outcome, emitted=emitted)
