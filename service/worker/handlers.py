"""One handler per command. Handlers are pure: they take a domain command and the context (the
rule set, the locked orders' facts, the clock) and return what they decided (`Decided`): the outcome
label and the events to emit, applied changes among them. The batch makes it durable, so a whole poll batch can share one transaction
and handlers test without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from service.domain import rules as engine
from service.domain.commands import ChangeOrderStatus, InvalidCommand, OverrideOrderStatuses, SourceMessage
from service.domain.events import (
    ChangeRejected,
    DeadLetter,
    Emitted,
    OverrideCompleted,
    OverrideResult,
    StatusChanged,
    event_id_for,
)
from service.domain.model import Change, ChangeRequest, OrderFacts, Reason, Rejection, RuleSet


@dataclass
class Decided:
    """What a handler decided for one command (not `service.contract.outcome.Outcome`, which is what a reader
    of the events topic makes of a command's events)."""

    command_id: str
    command_type: str
    outcome: str  # applied | rejected:<reason> | partial | invalid:<reason>
    emitted: list[Emitted] = field(default_factory=list)
    traceparent: str | None = None  # the command's trace context, handed on to its events (DESIGN §11)

    @property
    def changes(self) -> list[StatusChanged]:
        return [e for e in self.emitted if isinstance(e, StatusChanged)]


@dataclass
class Context:
    """What a handler may look at: the rules, the locked orders (updated as changes apply), the clock."""

    rules: RuleSet | None
    orders: dict[int, OrderFacts]
    now: datetime
    max_batch_items: int = 50


def decision_time(source: SourceMessage, clock: datetime) -> datetime:
    """When a command is decided, as its events say (`occurred_at`): the command's own time, its Kafka
    record's timestamp, so deciding it again after a rewind (a failover that lost the last commits, issue 24)
    makes events with the same content as the first time; the clock only for a record without a timestamp."""
    if source.timestamp_ms is None:
        return clock
    return datetime.fromtimestamp(source.timestamp_ms / 1000, timezone.utc)


def _decide_one(ctx: Context, request: ChangeRequest):
    decision = engine.decide(ctx.rules, ctx.orders.get(request.order_id), request)
    if isinstance(decision, Change):
        ctx.orders[request.order_id] = engine.apply(ctx.orders[request.order_id], decision)
    return decision


def _changed(ctx: Context, change: Change, index: int, cmd: ChangeOrderStatus | OverrideOrderStatuses) -> StatusChanged:
    return StatusChanged(
        event_id=event_id_for(cmd.command_id, index), command_id=cmd.command_id, order_id=change.order_id,
        order_type=change.order_type, version=change.version, from_status=change.from_status.label(),
        to_status=change.to_status.label(), override=change.override, notify=cmd.notify, actor=cmd.actor,
        note=change.note, removed_reservations=change.removed_reservations, removed_coupons=change.removed_coupons,
        occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    )


def _rejected(ctx: Context, rejection: Rejection, index: int, cmd, order_id, requested) -> ChangeRejected:
    return ChangeRejected(
        event_id=event_id_for(cmd.command_id, index), command_id=cmd.command_id, order_id=order_id,
        requested_status=requested, reason=rejection.reason.value, message=rejection.message, actor=cmd.actor,
        occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    )


def handle_change_order_status(cmd: ChangeOrderStatus, ctx: Context) -> Decided:
    """R1–R10, R14: decide the change and emit OrderStatusChanged or OrderStatusChangeRejected."""
    request = ChangeRequest(
        order_id=cmd.order_id, status=cmd.status, actor=cmd.actor, note=cmd.note, expected_status=cmd.expected_status,
    )
    decision = _decide_one(ctx, request)
    if isinstance(decision, Change):
        return Decided(cmd.command_id, cmd.type, "applied", [_changed(ctx, decision, 0, cmd)])
    return Decided(cmd.command_id, cmd.type, f"rejected:{decision.reason.value}",
                   [_rejected(ctx, decision, 0, cmd, cmd.order_id, cmd.status)])


def _refused_whole(cmd: ChangeOrderStatus | OverrideOrderStatuses, ctx: Context, rejection: Rejection) -> Decided:
    """Nothing of the command applies: one rejection, and for a batch a compact summary (the item count
    and the reason, never a result per item: a huge batch must not make a huge event)."""
    label = f"rejected:{rejection.reason.value}"
    if isinstance(cmd, ChangeOrderStatus):
        return Decided(cmd.command_id, cmd.type, label, [_rejected(ctx, rejection, 0, cmd, cmd.order_id, cmd.status)])
    return Decided(cmd.command_id, cmd.type, label, [
        _rejected(ctx, rejection, 0, cmd, None, None),
        OverrideCompleted(
            event_id=event_id_for(cmd.command_id, 1), command_id=cmd.command_id, results=(),
            item_count=len(cmd.items), occurred_at=ctx.now, correlation_id=cmd.correlation_id,
            reason=rejection.reason.value,
        ),
    ])


def handle_unauthenticated(cmd: ChangeOrderStatus | OverrideOrderStatuses, ctx: Context, why: str,
                           key: str | None = None) -> Decided:
    """DESIGN §11: a command whose actor no valid token vouches for changes nothing. With `key` (its position,
    `@topic/partition/offset`) it is recorded under that key, never under the id it claims, so it cannot burn
    someone else's command id; its events get ids from that key and carry no actor (nothing was verified)."""
    outcome = _refused_whole(cmd, ctx, Rejection(Reason.ACTOR_NOT_AUTHENTICATED,
                                                 f"The actor is not authenticated: {why}."))
    if key is None:
        return outcome
    emitted = [replace(e, event_id=event_id_for(key, index), **({"actor": None} if hasattr(e, "actor") else {}))
               for index, e in enumerate(outcome.emitted)]
    return replace(outcome, command_id=key, emitted=emitted)


def handle_override_order_statuses(cmd: OverrideOrderStatuses, ctx: Context) -> Decided:
    """R11, R12: each item on its own, in item order; then one summary. Too many items: nothing applies."""
    if len(cmd.items) > ctx.max_batch_items:
        return _refused_whole(cmd, ctx, Rejection(
            Reason.BATCH_TOO_LARGE, f"A batch holds at most {ctx.max_batch_items} items; this one has {len(cmd.items)}."
        ))

    outcome = Decided(cmd.command_id, cmd.type, "applied")
    results: list[OverrideResult] = []
    for index, item in enumerate(cmd.items):
        request = ChangeRequest(order_id=item.order_id, status=item.status, actor=cmd.actor, note=cmd.note,
                                override=True)
        decision = _decide_one(ctx, request)
        if isinstance(decision, Change):
            outcome.emitted.append(_changed(ctx, decision, index, cmd))
            results.append(OverrideResult(order_id=item.order_id, status=item.status, success=True))
        else:
            outcome.emitted.append(_rejected(ctx, decision, index, cmd, item.order_id, item.status))
            results.append(OverrideResult(order_id=item.order_id, status=item.status, success=False,
                                          reason=decision.reason.value, error=decision.message))
    succeeded = sum(r.success for r in results)
    outcome.outcome = "applied" if succeeded == len(results) else "rejected" if succeeded == 0 else "partial"
    outcome.emitted.append(OverrideCompleted(
        event_id=event_id_for(cmd.command_id, len(cmd.items)), command_id=cmd.command_id, results=tuple(results),
        item_count=len(cmd.items), occurred_at=ctx.now, correlation_id=cmd.correlation_id,
    ))
    return outcome


def invalid_dedupe_key(invalid: InvalidCommand, source: SourceMessage) -> str:
    """A readable command id dedupes an invalid command too; otherwise its position in the topic does."""
    return invalid.command_id if invalid.command_id else f"@{source.position}"


def handle_invalid(invalid: InvalidCommand, source: SourceMessage, ctx: Context) -> Decided:
    """DESIGN §6.2: the bytes go to the DLQ as they came; a readable command id also gets a rejection."""
    outcome = Decided(invalid_dedupe_key(invalid, source), "invalid", f"invalid:{invalid.reason}",
                      [DeadLetter(source, invalid.reason, invalid.message)])
    if invalid.command_id:
        outcome.emitted.append(ChangeRejected(
            event_id=event_id_for(invalid.command_id, 0), command_id=invalid.command_id, order_id=invalid.order_id,
            requested_status=invalid.requested_status, reason=Reason.INVALID_COMMAND.value, message=invalid.message,
            actor=invalid.actor, occurred_at=ctx.now, correlation_id=invalid.correlation_id,
        ))
    return outcome


HANDLERS = {
    "ChangeOrderStatus": handle_change_order_status,
    "OverrideOrderStatuses": handle_override_order_statuses,
}
