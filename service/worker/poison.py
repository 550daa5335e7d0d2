"""Poison isolation: a batch that fails for a reason that is not an outage (a bug, data the database refuses)
is redone one message per unit of work, so the single poisonous message is isolated and dead-lettered with
reason `processing_failed` — never a crash loop. Outages propagate: the caller waits and retries the same
batch, nothing is dead-lettered for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import structlog

from service.adapters.errors import PositionGap
from service.contract.redrive import Redrive
from service.domain.commands import InvalidCommand, SourceMessage
from service.runtime.faults import is_outage, is_timeout
from service.worker.batch import BatchResult, add_outcome, first_positions, next_positions, process_batch
from service.worker.claims import authenticate, parse
from service.worker.config import BatchConfig
from service.worker.handlers import Context, handle_invalid
from service.worker.ports import UnitOfWork

log = structlog.get_logger("orderstatus.worker")


async def process_isolating_poison(sources: Sequence[SourceMessage], uow_factory: Callable[[], UnitOfWork],
                                   config: BatchConfig) -> BatchResult:
    """Try the batch in one transaction; on a failure that is no outage, one message per transaction.

    A message that still fails on its own (or whose transaction times out `config.timeout_tries` times on its
    own) is dead-lettered with reason `processing_failed`."""
    try:
        return await process_batch(sources, uow_factory, config)
    except Exception as exc:
        if is_outage(exc) or isinstance(exc, PositionGap):  # not the message's fault
            raise
        log.warning("batch failed, isolating messages", error=repr(exc), size=len(sources))
    result = BatchResult(outcomes=[], duplicates=0)
    for source in sources:
        alone = await _process_alone(source, uow_factory, config)
        result.outcomes.extend(alone.outcomes)
        result.duplicates += alone.duplicates
        result.skipped += alone.skipped
        result.shards |= alone.shards
    return result


async def _process_alone(source: SourceMessage, uow_factory: Callable[[], UnitOfWork],
                         config: BatchConfig) -> BatchResult:
    for attempt in range(1, config.timeout_tries + 1):
        try:
            return await process_batch([source], uow_factory, config)
        except Exception as exc:
            if is_outage(exc) or isinstance(exc, PositionGap):
                raise
            if is_timeout(exc) and attempt < config.timeout_tries:
                log.warning("message timed out on its own, trying again", error=repr(exc), attempt=attempt,
                            offset=source.offset, partition=source.partition)
                continue
            log.error("message failed on its own, dead-lettering", error=repr(exc), offset=source.offset,
                      partition=source.partition)
            poison = InvalidCommand("processing_failed", f"{type(exc).__name__}: {exc}"[:500])
            break
    try:
        redrive = authenticate(parse(source, config.limits), config.check_actor).redrive
        return await _dead_letter(source, poison, uow_factory, config, redrive)
    except Exception as exc:
        if is_outage(exc) or isinstance(exc, PositionGap):  # not the message's fault
            raise
        # the last resort must not crash-loop the partition: record the skip if even that works, count it
        log.error("dead letter failed; message skipped", error=repr(exc), offset=source.offset,
                  partition=source.partition, topic=source.topic)
        return await _record_skip(source, uow_factory)


async def _dead_letter(source: SourceMessage, poison: InvalidCommand, uow_factory: Callable[[], UnitOfWork],
                       config: BatchConfig, redrive: Redrive | None) -> BatchResult:
    """Only the DLQ copy (keyed by the message's position so a replay does not copy it twice). `redrive` is the
    message's redrive as far as it counts (an unauthenticated message's headers do not)."""
    dlq = config.topics.dlq
    async with uow_factory() as uow:
        key = f"@{source.position}"
        keys = [(key, "poison", source.position)]
        # a failed redrive is spent too: it is back in the DLQ
        if redrive is not None:
            keys.append((redrive.key(dlq), "redrive", source.position))
        new = await uow.claim(keys)
        outcomes = []
        shards: set[int] = set()
        if key in new:
            ctx = Context(rules=None, orders={}, now=datetime.now(timezone.utc))
            outcome = handle_invalid(poison, source, ctx)
            shards = add_outcome(uow, outcome, config.topics, source)
            outcomes.append(outcome)
        if redrive is not None and redrive.key(dlq) in new:
            uow.add(redrive.key(dlq), f"redrive:{outcomes[0].outcome}" if outcomes else "redrive:duplicate", [], [])
        uow.advance(next_positions([source]), first_positions([source]))
        await uow.commit()
    return BatchResult(outcomes=outcomes, duplicates=0 if outcomes else 1, shards=shards)


async def _record_skip(source: SourceMessage, uow_factory: Callable[[], UnitOfWork]) -> BatchResult:
    try:
        async with uow_factory() as uow:
            if await uow.claim([(f"@{source.position}", "skipped", source.position)]):
                uow.add(f"@{source.position}", "skipped", [], [])
            uow.advance(next_positions([source]))  # past it: the next message must not find a gap (issue 24)
            await uow.commit()
    except Exception as exc:
        if is_outage(exc) or isinstance(exc, PositionGap):  # not the message's fault
            raise
        log.error("skipped message could not be recorded either", error=repr(exc), offset=source.offset,
                  partition=source.partition)
    return BatchResult(outcomes=[], duplicates=0, skipped=1)
