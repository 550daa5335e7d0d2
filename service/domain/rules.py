"""The rules engine: pure functions from (rule set, order facts, request) to a decision.

Order of checks (first failure wins), chosen so the answer never leaks more than the actor may
know: access first (R4: a hidden order looks missing), then the target status (R1–R3), then
compare-and-set and no-op (R14), then the graph or override permission (R5/R11), then the
cancel guards (R6).
"""

from __future__ import annotations

from decimal import Decimal

from service.domain.model import (
    Actor,
    Availability,
    Change,
    ChangeRequest,
    Decision,
    Note,
    OrderFacts,
    STAFF_ROLES,
    Reason,
    Rejection,
    RuleSet,
    Status,
)


def can_access(actor: Actor, order: OrderFacts) -> bool:
    """R4: clients see only their own orders; internal roles see all."""
    if actor.role in STAFF_ROLES:
        return True
    return actor.role == "client" and actor.client_id is not None and actor.client_id == order.client_id


def generated_note_text(from_status: Status, to_status: Status, actor: Actor, override: bool) -> str:
    """R8's text when the command gave none. It names the actor by role (and by the display name a
    verified token carried), never by its id: the note is shown in emails, and an id may be self-asserted."""
    verb = "overridden" if override else "changed"
    who = f"{actor.name} ({actor.role})" if actor.name else actor.role
    return f"Status {verb} from {from_status.name} to {to_status.name} by {who}."


def decide(rules: RuleSet, order: OrderFacts | None, request: ChangeRequest) -> Decision:
    """Decide one change (R1–R14): the change to apply, or the rejection and its reason."""
    actor = request.actor
    if order is None or not can_access(actor, order):
        return Rejection(Reason.ORDER_NOT_FOUND, f"Order {request.order_id} does not exist or you do not have access to it.")

    target = rules.status(request.status)
    if target is None:
        return Rejection(Reason.STATUS_NOT_FOUND, f"Status {request.status!r} does not exist.")
    if order.order_type not in target.order_types:
        return Rejection(
            Reason.STATUS_NOT_AVAILABLE,
            f"Status {target.code} is not available to orders of type {order.order_type}.",
        )
    if target.hidden:
        return Rejection(Reason.STATUS_HIDDEN, f"Status {target.code} is hidden.")

    current = rules.status(order.status_id)
    if current is None:  # the rule set no longer knows the order's status: report, do not crash
        current = Status(order.status_id, str(order.status_id), str(order.status_id), frozenset())
    if request.expected_status is not None:
        expected = rules.status(request.expected_status)
        if expected is None or expected.id != current.id:
            return Rejection(
                Reason.STALE_STATUS,
                f"Expected status {request.expected_status!r} but the order is {current.code}.",
            )
    if target.id == current.id:
        return Rejection(Reason.NO_CHANGE, f"Order {order.order_id} is already {current.code}.")

    permission = _override_permission if request.override else _transition_permission
    refused = permission(rules, order, current, target, actor)
    if refused is not None:
        return refused

    if target.cancelled:
        refused = _cancel_guard(order, current)
        if refused is not None:
            return refused

    note_in = request.note
    text = note_in.text if note_in is not None and note_in.text else None
    note = Note(
        text=text or generated_note_text(current, target, actor, request.override),
        is_public=note_in.is_public if note_in is not None else False,
        file_id=note_in.file_id if note_in is not None else None,
    )
    return Change(
        order_id=order.order_id,
        order_type=order.order_type,
        from_status=current,
        to_status=target,
        version=order.version + 1,
        note=note,
        override=request.override,
        removed_reservations=order.reservations if target.cancelled else (),
        removed_coupons=order.coupons if target.cancelled else (),
    )


def _transition_permission(
    rules: RuleSet, order: OrderFacts, current: Status, target: Status, actor: Actor
) -> Rejection | None:
    """R5: a normal change follows an edge of the type's graph that allows the actor's role."""
    roles = rules.edge_roles(order.order_type, current.id, target.id)
    if roles is None:
        return Rejection(
            Reason.TRANSITION_NOT_ALLOWED,
            f"{order.order_type} orders cannot go from {current.code} to {target.code}.",
        )
    if actor.role not in roles:
        return Rejection(
            Reason.ROLE_NOT_PERMITTED,
            f"Role {actor.role} may not move an order from {current.code} to {target.code}.",
        )
    return None


def _override_permission(
    rules: RuleSet, order: OrderFacts, current: Status, target: Status, actor: Actor
) -> Rejection | None:
    """R11: an override skips the graph but needs an override role and an override-able target."""
    if actor.role not in rules.override_roles:
        return Rejection(Reason.ROLE_NOT_PERMITTED, f"Role {actor.role} may not override order statuses.")
    if not target.can_override_to:
        return Rejection(Reason.OVERRIDE_NOT_ALLOWED, f"Orders cannot be overridden to status {target.code}.")
    return None


def _cancel_guard(order: OrderFacts, current: Status) -> Rejection | None:
    """R6: only an order with no goods out, not invoiced and with zero payments can be cancelled."""
    if order.goods_out_notes:
        return Rejection(
            Reason.CANCEL_HAS_GOODS_OUT_NOTES,
            f"Order {order.order_id} has goods-out notes: {', '.join(order.goods_out_notes)}.",
        )
    if current.invoiced:
        return Rejection(Reason.CANCEL_ORDER_INVOICED, f"Order {order.order_id} is invoiced ({current.code}).")
    if order.payments_total != Decimal(0):
        return Rejection(
            Reason.CANCEL_HAS_PAYMENTS, f"Order {order.order_id} has payments totalling {order.payments_total}."
        )
    return None


def apply(order: OrderFacts, change: Change) -> OrderFacts:
    """The order's facts after a change: lets a batch decide several items on one order in turn."""
    return OrderFacts(
        order_id=order.order_id,
        order_type=order.order_type,
        status_id=change.to_status.id,
        version=change.version,
        client_id=order.client_id,
        payments_total=order.payments_total,
        goods_out_notes=order.goods_out_notes,
        reservations=tuple(r for r in order.reservations if r not in change.removed_reservations),
        coupons=tuple(c for c in order.coupons if c not in change.removed_coupons),
    )


def availability(rules: RuleSet, order: OrderFacts | None, actor: Actor) -> Availability | None:
    """R13: the statuses this actor could move the order to right now (None: no such order for them).

    Each candidate is run through ``decide`` so the list never offers a change that would be rejected.
    """
    if order is None or not can_access(actor, order):
        return None
    current = rules.status(order.status_id)
    if current is None:
        current = Status(order.status_id, str(order.status_id), str(order.status_id), frozenset())

    def allowed(target: Status, override: bool) -> bool:
        request = ChangeRequest(order.order_id, target.id, actor, override=override)
        return isinstance(decide(rules, order, request), Change)

    candidates = rules.statuses_for(order.order_type)
    transitions = tuple(s for s in candidates if allowed(s, override=False))
    can_override = actor.role in rules.override_roles
    overrides = tuple(s for s in candidates if can_override and allowed(s, override=True))
    return Availability(current=current, transitions=transitions, overrides=overrides, can_override=can_override)
