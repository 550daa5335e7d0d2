"""From a poll batch of Kafka records to durable outcomes: parse at the edge, dedupe, lock, decide, write.

`process_batch` makes the whole batch durable in one unit of work. If that fails for a reason that
is not an outage (a bug, data the database refuses), `process_isolating_poison` redoes the batch one
message per unit of work so the single poisonous message is isolated and dead-lettered — never a
crash loop."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Protocol

import structlog

from service.contract.commands import InputLimits, parse_command
from service.contract.events import Topics, to_wire
from service.domain.commands import ChangeOrderStatus, Command, InvalidCommand, OverrideOrderStatuses, SourceMessage
from service.runtime.faults import is_outage, is_timeout
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


class UnitOfWork(Protocol):
    """The port the batch writes through (Postgres in production, a fake in the service-layer tests)."""

    async def __aenter__(self) -> "UnitOfWork": ...
    async def __aexit__(self, *exc) -> None: ...
    async def rules(self): ...
    async def claim(self, keys) -> set[str]: ...
    async def lock_orders(self, order_ids) -> dict: ...
    def add(self, command_id: str, outcome: str, changes, messages) -> None: ...
    async def commit(self) -> None: ...


@dataclass
class Parsed:
    source: SourceMessage
    command: Command | None
    invalid: InvalidCommand | None

    @property
    def dedupe_key(self) -> str:
        return self.command.command_id if self.command else invalid_dedupe_key(self.invalid, self.source)

    @property
    def kind(self) -> str:
        return self.command.type if self.command else "invalid"

    def order_ids(self) -> list[int]:
        if isinstance(self.command, ChangeOrderStatus):
            return [self.command.order_id]
        if isinstance(self.command, OverrideOrderStatuses):
            return [item.order_id for item in self.command.items]
        return []


def parse(source: SourceMessage, limits: InputLimits) -> Parsed:
    parsed = parse_command(source.value, limits)
    if isinstance(parsed, InvalidCommand):
        return Parsed(source, None, parsed)
    return Parsed(source, parsed, None)


@dataclass
class BatchResult:
    outcomes: list[Outcome]
    duplicates: int
    skipped: int = 0  # messages not even the dead-letter path could record (logged, counted)


def _add(uow: UnitOfWork, outcome: Outcome, topics: Topics) -> None:
    uow.add(outcome.command_id, outcome.outcome, outcome.changes, [to_wire(e, topics) for e in outcome.emitted])


# who acts: (the message's headers, the command's actor) -> the actor to act as, or why it may not
ActorCheck = Callable[[Sequence[tuple[str, bytes | None]], Actor], "Actor | str"]


def trust_the_command(headers, actor: Actor) -> Actor:
    """`ORDERSTATUS_ACTOR_AUTH=off`: the first-wave behaviour, the command's actor as it says."""
    return actor


def _handle(p: Parsed, ctx: Context, check_actor: ActorCheck) -> Outcome:
    if p.command is None:
        return handle_invalid(p.invalid, p.source, ctx)
    verdict = check_actor(p.source.headers, p.command.actor)
    if isinstance(verdict, str):
        return handle_unauthenticated(p.command, ctx, verdict)
    command = p.command if verdict == p.command.actor else replace(p.command, actor=verdict)
    return HANDLERS[command.type](command, ctx)


async def process_batch(
    sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork], topics: Topics, max_batch_items: int,
    limits: InputLimits = InputLimits(), check_actor: ActorCheck = trust_the_command,
) -> BatchResult:
    """Make the outcome of every message durable in one transaction (messages in the given order)."""
    parsed = [parse(s, limits) for s in sources]
    async with uow_factory() as uow:
        rules = await uow.rules()
        new = await uow.claim((p.dedupe_key, p.kind, p.source.position) for p in parsed)
        fresh: list[Parsed] = []
        for p in parsed:  # a command id repeated inside one batch counts once: the first wins
            if p.dedupe_key in new:
                new.discard(p.dedupe_key)
                fresh.append(p)
        orders = await uow.lock_orders(oid for p in fresh for oid in p.order_ids())
        ctx = Context(rules=rules, orders=orders, now=datetime.now(timezone.utc), max_batch_items=max_batch_items)
        outcomes = []
        for p in fresh:
            with structlog.contextvars.bound_contextvars(
                command_id=p.dedupe_key, partition=p.source.partition, offset=p.source.offset,
                order_id=getattr(p.command, "order_id", None),
            ):
                outcome = _handle(p, ctx, check_actor)
                if p.command is not None:
                    log.info("command processed", type=p.kind, outcome=outcome.outcome)
                else:
                    log.warning("command dead-lettered", outcome=outcome.outcome, error=p.invalid.message)
            _add(uow, outcome, topics)
            outcomes.append(outcome)
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=len(parsed) - len(fresh))


async def process_isolating_poison(
    sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork], topics: Topics, max_batch_items: int,
    limits: InputLimits = InputLimits(), timeout_tries: int = 3, check_actor: ActorCheck = trust_the_command,
) -> BatchResult:
    """Try the batch in one transaction; on a failure that is no outage, one message per transaction.

    A message that still fails on its own (or whose transaction times out `timeout_tries` times on its
    own) is dead-lettered with reason `processing_failed`. Outages propagate: the caller waits and
    retries the same batch, nothing is dead-lettered for them."""
    try:
        return await process_batch(sources, uow_factory, topics, max_batch_items, limits, check_actor)
    except Exception as exc:
        if is_outage(exc):
            raise
        log.warning("batch failed, isolating messages", error=repr(exc), size=len(sources))
    result = BatchResult(outcomes=[], duplicates=0)
    for source in sources:
        alone = await _process_alone(source, uow_factory, topics, max_batch_items, limits, timeout_tries, check_actor)
        result.outcomes.extend(alone.outcomes)
        result.duplicates += alone.duplicates
        result.skipped += alone.skipped
    return result


async def _process_alone(source: SourceMessage, uow_factory, topics: Topics, max_batch_items: int,
                         limits: InputLimits, timeout_tries: int, check_actor: ActorCheck) -> BatchResult:
    for attempt in range(1, timeout_tries + 1):
        try:
            return await process_batch([source], uow_factory, topics, max_batch_items, limits, check_actor)
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
        return await _dead_letter(source, poison, uow_factory, topics)
    except Exception as exc:
        if is_outage(exc):
            raise
        # the last resort must not crash-loop the partition: record the skip if even that works, count it
        log.error("dead letter failed; message skipped", error=repr(exc), offset=source.offset,
                  partition=source.partition, topic=source.topic)
        return await _record_skip(source, uow_factory)


async def _dead_letter(source: SourceMessage, poison: InvalidCommand, uow_factory, topics: Topics) -> BatchResult:
    """Only the DLQ copy (keyed by the message's position so a replay does not copy it twice)."""
    async with uow_factory() as uow:
        key = f"@{source.position}"
        new = await uow.claim([(key, "poison", source.position)])
        outcomes = []
        if new:
            ctx = Context(rules=None, orders={}, now=datetime.now(timezone.utc))
            outcome = handle_invalid(poison, source, ctx)
            _add(uow, outcome, topics)
            outcomes.append(outcome)
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=0 if outcomes else 1)


async def _record_skip(source: SourceMessage, uow_factory) -> BatchResult:
    try:
        async with uow_factory() as uow:
            await uow.claim([(f"@{source.position}", "skipped", source.position)])
            uow.add(f"@{source.position}", "skipped", [], [])
            await uow.commit()
    except Exception as exc:
        if is_outage(exc):
            raise
        log.error("skipped message could not be recorded either", error=repr(exc), offset=source.offset,
                  partition=source.partition)
    return BatchResult(outcomes=[], duplicates=0, skipped=1)
