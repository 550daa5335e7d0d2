"""From a poll batch of Kafka records to durable outcomes: parse at the edge, dedupe, lock, decide, write.

`process_batch` makes the whole batch durable in one unit of work. If that fails for a reason that
is not an outage (a bug, data the database refuses), `process_isolating_poison` redoes the batch one
message per unit of work so the single poisonous message is isolated and dead-lettered — never a
crash loop.

A redriven dead letter (DESIGN §11, headers `redrive.*`) has one chance: its redrive key (the DLQ
record it came from) is claimed first, so a redrive sent twice or replayed with the commands topic
does nothing the second time. A redriven command whose id was recorded as invalid takes that record
over and is processed once more, under fresh event ids; a command id that applied or was rejected
stays a duplicate, so a redrive never applies a command twice."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Protocol

import structlog

from service.adapters.errors import ClaimLost
from service.contract.commands import InputLimits, parse_command
from service.contract.events import Topics, to_wire
from service.contract.redrive import Redrive, read_redrive
from service.domain.commands import ChangeOrderStatus, Command, InvalidCommand, OverrideOrderStatuses, SourceMessage
from service.domain.events import DeadLetter
from service.runtime import tracing
from service.runtime.faults import is_outage, is_timeout
from service.runtime.tracing import traceparent_of
from service.domain.model import Actor
from service.worker.handlers import (
    HANDLERS,
    Context,
    Outcome,
    handle_invalid,
    handle_unauthenticated,
    invalid_dedupe_key,
)

log = structlog.get_logger("orderstatus.worker")

CLAIM_TRIES = 3  # a redo sees the commands it lost as duplicates, so a second try is all it takes


class UnitOfWork(Protocol):
    """The port the batch writes through (Postgres in production, a fake in the service-layer tests)."""

    async def __aenter__(self) -> "UnitOfWork": ...
    async def __aexit__(self, *exc) -> None: ...
    async def rules(self): ...
    async def claim(self, keys) -> set[str]: ...
    async def take_over_invalid(self, keys) -> set[str]: ...
    async def lock_orders(self, order_ids) -> dict: ...
    def add(self, command_id: str, outcome: str, changes, messages) -> None: ...
    async def commit(self) -> None: ...


@dataclass
class Parsed:
    source: SourceMessage
    command: Command | None
    invalid: InvalidCommand | None
    redrive: Redrive | None = None
    refused: str | None = None  # why the actor check refused it: then it is recorded under its position
    actor: Actor | None = None  # the actor to act as, once the check passed

    @property
    def dedupe_key(self) -> str:
        if self.refused is not None:
            return f"@{self.source.position}"
        return self.command.command_id if self.command else invalid_dedupe_key(self.invalid, self.source)

    @property
    def kind(self) -> str:
        if self.refused is not None:
            return "unauthenticated"
        return self.command.type if self.command else "invalid"

    def order_ids(self) -> list[int]:
        if isinstance(self.command, ChangeOrderStatus):
            return [self.command.order_id]
        if isinstance(self.command, OverrideOrderStatuses):
            return [item.order_id for item in self.command.items]
        return []


def parse(source: SourceMessage, limits: InputLimits) -> Parsed:
    redrive = read_redrive(source.headers)
    if source.unreadable is not None:  # the Kafka client could not decompress its batch: no bytes to read
        return Parsed(source, None, InvalidCommand("unreadable", source.unreadable), redrive)
    parsed = parse_command(source.value, limits)
    if isinstance(parsed, InvalidCommand):
        return Parsed(source, None, parsed, redrive)
    return Parsed(source, parsed, None, redrive)


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    duplicates: int
    skipped: int = 0  # messages not even the dead-letter path could record (logged, counted)
    shards: set[int] = field(default_factory=set)  # the outbox shards it wrote rows to: the relay's next work


# an order id -> the commands partition its commands go to (its key's), None while unknown
OrderShard = Callable[[int], "int | None"]


def no_order_shard(order_id: int) -> None:
    return None


def _add(uow: UnitOfWork, outcome: Outcome, topics: Topics, source: SourceMessage | None = None,
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


# who acts: (the message's headers, the command's actor, (its command id, its value)) -> the actor to act as,
# or why it may not (a token bound to a command counts only on that command id and value)
ActorCheck = Callable[[Sequence[tuple[str, bytes | None]], Actor, tuple[str, "bytes | None"]], "Actor | str"]


def trust_the_command(headers, actor: Actor, command=None) -> Actor:
    """`ORDERSTATUS_ACTOR_AUTH=off`: the first-wave behaviour, the command's actor as it says."""
    return actor


def authenticate(p: Parsed, check_actor: ActorCheck) -> Parsed:
    """The actor check, before anything is claimed (issue 23): a refused command keeps nothing it claims —
    its `redrive.*` headers count for nothing and it is recorded under its position, not its id. With
    `ACTOR_AUTH=required` an unparseable message's token is checked too: without a valid one its claimed
    command id and actor are dropped (dead-lettered under its position, no rejection in its name)."""
    if p.command is not None:
        verdict = check_actor(p.source.headers, p.command.actor, (p.command.command_id, p.source.value))
        if isinstance(verdict, str):
            return replace(p, refused=verdict, redrive=None)
        return replace(p, actor=verdict)
    token_refusal = getattr(check_actor, "token_refusal", None)
    why = token_refusal(p.source.headers) if token_refusal is not None else None
    if why is None:
        return p
    return replace(p, redrive=None, invalid=replace(p.invalid, command_id=None, actor=None))


def _handle(p: Parsed, ctx: Context) -> Outcome:
    if p.command is None:
        return handle_invalid(p.invalid, p.source, ctx)
    if p.refused is not None:
        return handle_unauthenticated(p.command, ctx, p.refused, key=p.dedupe_key)
    command = p.command if p.actor is None or p.actor == p.command.actor else replace(p.command, actor=p.actor)
    return HANDLERS[command.type](command, ctx)


async def process_batch(
    sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork], topics: Topics, max_batch_items: int,
    limits: InputLimits = InputLimits(), check_actor: ActorCheck = trust_the_command,
    order_shard: OrderShard = no_order_shard,
) -> BatchResult:
    """Make the outcome of every message durable in one transaction (messages in the given order).

    A claim lost to a concurrent worker (a rebalance hands a partition over while its old owner still
    holds a batch of it) rolls the transaction back; the batch is redone at once and finds those commands
    recorded, as duplicates."""
    parsed = [authenticate(parse(s, limits), check_actor) for s in sources]
    for attempt in range(1, CLAIM_TRIES + 1):
        try:
            with tracing.span("transaction", messages=len(sources)):
                return await _in_one_transaction(parsed, uow_factory, topics, max_batch_items, order_shard)
        except ClaimLost as lost:
            if attempt == CLAIM_TRIES:
                raise
            log.info("a concurrent worker recorded commands of this batch first; redoing it",
                     command_ids=lost.args[0] if lost.args else None)
    raise AssertionError("unreachable")


async def _in_one_transaction(parsed: list[Parsed], uow_factory, topics: Topics, max_batch_items: int,
                              order_shard: OrderShard) -> BatchResult:
    async with uow_factory() as uow:
        rules = await uow.rules()
        live = await _unspent_redrives(uow, parsed, topics)
        new = await uow.claim((p.dedupe_key, p.kind, p.source.position) for p in live)
        retaken = await _take_over_invalid(uow, [p for p in live if p.redrive and p.dedupe_key not in new])
        fresh: list[Parsed] = []
        again: set[int] = set()  # the fresh ones processed once more after a redrive (by id())
        for p in live:  # a command id repeated inside one batch counts once: the first wins
            if p.dedupe_key in new:
                new.discard(p.dedupe_key)
                fresh.append(p)
            elif p.redrive is not None and p.dedupe_key in retaken:  # only a redrive gets the record back
                retaken.discard(p.dedupe_key)
                fresh.append(p)
                again.add(id(p))
            elif p.redrive is not None:  # the command applied or was rejected before: a duplicate
                uow.add(p.redrive.key(topics.dlq), "redrive:duplicate", [], [])
        orders = await uow.lock_orders(oid for p in fresh for oid in p.order_ids())
        ctx = Context(rules=rules, orders=orders, now=datetime.now(timezone.utc), max_batch_items=max_batch_items)
        outcomes = []
        shards: set[int] = set()
        for p in fresh:
            where = {"command_id": p.dedupe_key, "partition": p.source.partition, "offset": p.source.offset}
            with tracing.span("command", traceparent_of(p.source.headers), **where) as traceparent:
                outcome = _handle(p, ctx)
            outcome.traceparent = traceparent
            if id(p) in again:
                outcome = _under_fresh_ids(outcome, p.redrive.key(topics.dlq))
            # the fields go with the two log lines only (binding context variables per command costs more)
            redriven = {} if p.redrive is None else {"redrive_count": p.redrive.count, "retaken": id(p) in again}
            if p.command is not None:
                log.info("command processed", type=p.kind, outcome=outcome.outcome,
                         order_id=getattr(p.command, "order_id", None), **where, **redriven)
            else:
                log.warning("command dead-lettered", outcome=outcome.outcome, error=p.invalid.message, **where,
                            **redriven)
            shards |= _add(uow, outcome, topics, p.source, order_shard)
            if p.redrive is not None:
                uow.add(p.redrive.key(topics.dlq), f"redrive:{outcome.outcome}", [], [])
            outcomes.append(outcome)
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=len(parsed) - len(fresh), shards=shards)


async def _unspent_redrives(uow: UnitOfWork, parsed: list[Parsed], topics: Topics) -> list[Parsed]:
    """The batch without the redrives already spent: each DLQ record's redrive key is claimed once, so a
    redrive sent twice, or replayed with the commands topic, is a duplicate whatever its command id."""
    redriven = [p for p in parsed if p.redrive is not None]
    if not redriven:
        return parsed
    unspent = await uow.claim((p.redrive.key(topics.dlq), "redrive", p.source.position) for p in redriven)
    live = []
    for p in parsed:
        if p.redrive is None:
            live.append(p)
        elif p.redrive.key(topics.dlq) in unspent:
            unspent.discard(p.redrive.key(topics.dlq))
            live.append(p)
    return live


async def _take_over_invalid(uow: UnitOfWork, redriven: list[Parsed]) -> set[str]:
    """The command ids of redriven commands that were recorded as invalid, now reclaimed to be processed
    once more (a rules or limits fix may make them valid); any other record keeps them duplicates."""
    if not redriven:
        return set()
    return await uow.take_over_invalid((p.dedupe_key, p.kind, p.source.position) for p in redriven)


def _under_fresh_ids(outcome: Outcome, salt: str) -> Outcome:
    """The outcome of a command processed once more after a redrive: its events get ids of their own,
    derived from the usual ones and the redrive (still deterministic), so no subscriber takes them for
    the events of the earlier attempt."""
    emitted = [e if isinstance(e, DeadLetter) else replace(e, event_id=uuid.uuid5(e.event_id, salt))
               for e in outcome.emitted]
    return replace(outcome, emitted=emitted)


async def process_isolating_poison(
    sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork], topics: Topics, max_batch_items: int,
    limits: InputLimits = InputLimits(), timeout_tries: int = 3, check_actor: ActorCheck = trust_the_command,
    order_shard: OrderShard = no_order_shard,
) -> BatchResult:
    """Try the batch in one transaction; on a failure that is no outage, one message per transaction.

    A message that still fails on its own (or whose transaction times out `timeout_tries` times on its
    own) is dead-lettered with reason `processing_failed`. Outages propagate: the caller waits and
    retries the same batch, nothing is dead-lettered for them."""
    try:
        return await process_batch(sources, uow_factory, topics, max_batch_items, limits, check_actor, order_shard)
    except Exception as exc:
        if is_outage(exc):
            raise
        log.warning("batch failed, isolating messages", error=repr(exc), size=len(sources))
    result = BatchResult(outcomes=[], duplicates=0)
    for source in sources:
        alone = await _process_alone(source, uow_factory, topics, max_batch_items, limits, timeout_tries, check_actor,
                                     order_shard)
        result.outcomes.extend(alone.outcomes)
        result.duplicates += alone.duplicates
        result.skipped += alone.skipped
        result.shards |= alone.shards
    return result


async def _process_alone(source: SourceMessage, uow_factory, topics: Topics, max_batch_items: int,
                         limits: InputLimits, timeout_tries: int, check_actor: ActorCheck,
                         order_shard: OrderShard) -> BatchResult:
    for attempt in range(1, timeout_tries + 1):
        try:
            return await process_batch([source], uow_factory, topics, max_batch_items, limits, check_actor,
                                       order_shard)
        except Exception as exc:
            if is_outage(exc):
                raise
            if is_timeout(exc) and attempt < timeout_tries:
                log.warning("message timed out on its own, trying again", error=repr(exc), attempt=attempt,
                            offset=source.offset, partition=source.partition)
                continue
            log.error("message failed on its own, dead-lettering", error=repr(exc), offset=source.offset,
                      partition=source.partition)
            poison = InvalidCommand("processing_failed", f"{type(exc).__name__}: {exc}"[:500])
            break
    try:
        return await _dead_letter(source, poison, uow_factory, topics,
                                  authenticate(parse(source, limits), check_actor).redrive)
    except Exception as exc:
        if is_outage(exc):
            raise
        # the last resort must not crash-loop the partition: record the skip if even that works, count it
        log.error("dead letter failed; message skipped", error=repr(exc), offset=source.offset,
                  partition=source.partition, topic=source.topic)
        return await _record_skip(source, uow_factory)


async def _dead_letter(source: SourceMessage, poison: InvalidCommand, uow_factory, topics: Topics,
                       redrive: Redrive | None) -> BatchResult:
    """Only the DLQ copy (keyed by the message's position so a replay does not copy it twice). `redrive` is the
    message's redrive as far as it counts (an unauthenticated message's headers do not)."""
    async with uow_factory() as uow:
        key = f"@{source.position}"
        keys = [(key, "poison", source.position)]
        # a failed redrive is spent too: it is back in the DLQ
        if redrive is not None:
            keys.append((redrive.key(topics.dlq), "redrive", source.position))
        new = await uow.claim(keys)
        outcomes = []
        shards: set[int] = set()
        if key in new:
            ctx = Context(rules=None, orders={}, now=datetime.now(timezone.utc))
            outcome = handle_invalid(poison, source, ctx)
            shards = _add(uow, outcome, topics, source)
            outcomes.append(outcome)
        if redrive is not None and redrive.key(topics.dlq) in new:
            uow.add(redrive.key(topics.dlq), f"redrive:{outcomes[0].outcome}" if outcomes else "redrive:duplicate",
                    [], [])
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=0 if outcomes else 1, shards=shards)


async def _record_skip(source: SourceMessage, uow_factory) -> BatchResult:
    try:
        async with uow_factory() as uow:
            if await uow.claim([(f"@{source.position}", "skipped", source.position)]):
                uow.add(f"@{source.position}", "skipped", [], [])
                await uow.commit()
    except Exception as exc:
        if is_outage(exc):
            raise
        log.error("skipped message could not be recorded either", error=repr(exc), offset=source.offset,
                  partition=source.partition)
    return BatchResult(outcomes=[], duplicates=0, skipped=1)
