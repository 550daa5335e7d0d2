"""One handler per command. Handlers are pure: they read the rule set and the locked orders' facts
from the context and return an Outcome (changes to write, messages for the outbox); the unit of work
applies it. So a whole poll batch can share one transaction, and handlers test without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

from service import events
from service.domain import rules as engine
from service.domain.model import Actor, Change, ChangeRequest, OrderFacts, Reason, Rejection, RuleSet
from service.messages import (
    BIGINT_MAX,
    ChangeOrderStatus,
    InvalidCommand,
    OverrideOrderStatuses,
    OverrideResult,
    is_storable_text,
)
from service.outbox import OutboxMessage


@dataclass(frozen=True)
class Topics:
    events: str
    dlq: str


@dataclass(frozen=True)
class SourceMessage:
    """Where a command came from: what the DLQ headers and the offset commit need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class AppliedChange:
    change: Change
    event_id: UUID
    command_id: str
    actor: Actor
    occurred_at: datetime


@dataclass
class Outcome:
    command_id: str
    command_type: str
    outcome: str  # applied | rejected | partial | invalid
    changes: list[AppliedChange] = field(default_factory=list)
    messages: list[OutboxMessage] = field(default_factory=list)


@dataclass
class Context:
    """What a handler may look at: the rules, the locked orders (updated as changes apply), the clock."""

    rules: RuleSet
    orders: dict[int, OrderFacts]
    topics: Topics
    now: datetime
    max_batch_items: int = 50


def _decide_one(ctx: Context, request: ChangeRequest):
    decision = engine.decide(ctx.rules, ctx.orders.get(request.order_id), request)
    if isinstance(decision, Change):
        ctx.orders[request.order_id] = engine.apply(ctx.orders[request.order_id], decision)
    return decision


def _emit_change(ctx, outcome, change, event_id, cmd, actor) -> None:
    outcome.changes.append(AppliedChange(change, event_id, cmd.command_id, actor, ctx.now))
    event = events.changed(
        change, event_id=event_id, command_id=cmd.command_id, actor=actor, notify=cmd.notify,
        occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    )
    outcome.messages.append(events.to_outbox(event, ctx.topics.events, str(change.order_id), change.order_id))


def _emit_rejection(ctx, outcome, rejection, event_id, cmd, order_id, requested) -> None:
    event = events.rejected(
        rejection, event_id=event_id, command_id=cmd.command_id, order_id=order_id, requested_status=requested,
        actor=cmd.actor.to_domain().as_dict(), occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    )
    key = str(order_id) if order_id is not None else cmd.command_id
    outcome.messages.append(events.to_outbox(event, ctx.topics.events, key, order_id))


def handle_change_order_status(cmd: ChangeOrderStatus, ctx: Context) -> Outcome:
    """R1–R10, R14: decide the change and emit OrderStatusChanged or OrderStatusChangeRejected."""
    actor = cmd.actor.to_domain()
    request = ChangeRequest(
        order_id=cmd.order_id,
        status=cmd.status,
        actor=actor,
        note=cmd.note.to_domain() if cmd.note else None,
        expected_status=cmd.expected_status,
    )
    decision = _decide_one(ctx, request)
    event_id = events.event_id_for(cmd.command_id, 0)
    if isinstance(decision, Change):
        outcome = Outcome(cmd.command_id, cmd.type, "applied")
        _emit_change(ctx, outcome, decision, event_id, cmd, actor)
    else:
        outcome = Outcome(cmd.command_id, cmd.type, f"rejected:{decision.reason.value}")
        _emit_rejection(ctx, outcome, decision, event_id, cmd, cmd.order_id, cmd.status)
    return outcome


def handle_override_order_statuses(cmd: OverrideOrderStatuses, ctx: Context) -> Outcome:
    """R11, R12: each item on its own, in item order; then one summary. Too many items: nothing applies."""
    actor = cmd.actor.to_domain()
    note = cmd.note.to_domain() if cmd.note else None
    outcome = Outcome(cmd.command_id, cmd.type, "applied")
    results: list[OverrideResult] = []
    index = 0

    if len(cmd.items) > ctx.max_batch_items:
        rejection = Rejection(
            Reason.BATCH_TOO_LARGE, f"A batch holds at most {ctx.max_batch_items} items; this one has {len(cmd.items)}."
        )
        _emit_rejection(ctx, outcome, rejection, events.event_id_for(cmd.command_id, index), cmd, None, None)
        index += 1
        results = [
            OverrideResult(order_id=i.order_id, status=i.status, success=False, reason=rejection.reason.value,
                           error=rejection.message)
            for i in cmd.items
        ]
        outcome.outcome = f"rejected:{rejection.reason.value}"
    else:
        for item in cmd.items:
            request = ChangeRequest(order_id=item.order_id, status=item.status, actor=actor, note=note, override=True)
            decision = _decide_one(ctx, request)
            event_id = events.event_id_for(cmd.command_id, index)
            index += 1
            if isinstance(decision, Change):
                _emit_change(ctx, outcome, decision, event_id, cmd, actor)
                results.append(OverrideResult(order_id=item.order_id, status=item.status, success=True))
            else:
                _emit_rejection(ctx, outcome, decision, event_id, cmd, item.order_id, item.status)
                results.append(
                    OverrideResult(order_id=item.order_id, status=item.status, success=False,
                                   reason=decision.reason.value, error=decision.message)
                )
        succeeded = sum(r.success for r in results)
        outcome.outcome = "applied" if succeeded == len(results) else "rejected" if succeeded == 0 else "partial"

    summary = events.override_completed(
        results, event_id=events.event_id_for(cmd.command_id, index), command_id=cmd.command_id,
        occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    )
    outcome.messages.append(events.to_outbox(summary, ctx.topics.events, cmd.command_id, None))
    return outcome


def invalid_dedupe_key(invalid: InvalidCommand, source: SourceMessage) -> str:
    """A readable command id dedupes an invalid command too; otherwise its position in the topic does."""
    return invalid.command_id if invalid.command_id else f"@{source.position}"


def handle_invalid(invalid: InvalidCommand, source: SourceMessage, ctx: Context) -> Outcome:
    """DESIGN §6.2: the bytes go to the DLQ as they came; a readable command id also gets a rejection."""
    outcome = Outcome(invalid_dedupe_key(invalid, source), "invalid", f"invalid:{invalid.reason}")
    headers = [
        *source.headers,
        ("error.reason", invalid.reason.encode()),
        ("error.message", invalid.message.encode("utf-8", "replace")[:2000]),
        ("original.topic", source.topic.encode()),
        ("original.partition", str(source.partition).encode()),
        ("original.offset", str(source.offset).encode()),
    ]
    outcome.messages.append(
        OutboxMessage(topic=ctx.topics.dlq, key=source.key, value=source.value or b"", headers=headers)
    )
    if invalid.command_id:
        raw = invalid.raw
        # only what can be read safely goes into the rejection: the rest of the command is suspect
        order_id = raw.get("order_id") if type(raw.get("order_id")) is int and 0 < raw["order_id"] <= BIGINT_MAX else None
        status = raw.get("status")
        requested = status if type(status) is int or is_storable_text(status) else None
        raw_actor = raw.get("actor")
        actor = (
            {k: raw_actor.get(k) if is_storable_text(raw_actor.get(k)) else None for k in ("id", "role", "client_id")}
            if isinstance(raw_actor, dict) else None
        )
        event = events.rejected(
            Rejection(Reason.INVALID_COMMAND, invalid.message),
            event_id=events.event_id_for(invalid.command_id, 0), command_id=invalid.command_id,
            order_id=order_id, requested_status=requested, actor=actor, occurred_at=ctx.now,
            correlation_id=raw.get("correlation_id") if is_storable_text(raw.get("correlation_id")) else None,
        )
        key = str(order_id) if order_id is not None else invalid.command_id
        outcome.messages.append(events.to_outbox(event, ctx.topics.events, key, order_id))
    return outcome
