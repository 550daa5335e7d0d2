"""Outcome events of DESIGN §6.1 built from domain decisions, ready for the outbox."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from service.domain.model import Actor, Change, Rejection
from service.messages import (
    OrderStatusChanged,
    OrderStatusChangeRejected,
    OrderStatusOverrideCompleted,
    OverrideResult,
    cloudevent_headers,
    event_json,
)
from service.outbox import OutboxMessage

_EVENT_NAMESPACE = uuid.UUID("8a0f3c1e-2b4d-4e59-9f7a-6c1d2e3f4a5b")


def event_id_for(command_id: str, index: int) -> uuid.UUID:
    """Deterministic: the n-th event of a command always has the same id, whoever emits it."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{command_id}/{index}")


def to_outbox(event: BaseModel, topic: str, key: str, order_id: int | None) -> OutboxMessage:
    return OutboxMessage(
        topic=topic,
        key=key.encode(),
        value=event_json(event),
        headers=cloudevent_headers(event.event_id, event.type, key, event.occurred_at),
        event_id=uuid.UUID(event.event_id),
        event_type=event.type,
        order_id=order_id,
    )


def changed(
    change: Change, *, event_id: uuid.UUID, command_id: str, actor: Actor, notify: bool,
    occurred_at: datetime, correlation_id: str | None,
) -> OrderStatusChanged:
    return OrderStatusChanged(
        event_id=str(event_id),
        command_id=command_id,
        order_id=change.order_id,
        order_type=change.order_type,
        version=change.version,
        from_status=change.from_status.ref(),
        to_status=change.to_status.ref(),
        override=change.override,
        notify=notify,
        actor=actor.as_dict(),
        note=change.note.as_dict(),
        removed_reservations=list(change.removed_reservations),
        removed_coupons=list(change.removed_coupons),
        occurred_at=occurred_at,
        correlation_id=correlation_id,
    )


def rejected(
    rejection: Rejection, *, event_id: uuid.UUID, command_id: str, order_id: int | None,
    requested_status: int | str | None, actor: dict | None, occurred_at: datetime, correlation_id: str | None,
) -> OrderStatusChangeRejected:
    return OrderStatusChangeRejected(
        event_id=str(event_id),
        command_id=command_id,
        order_id=order_id,
        requested_status=requested_status,
        reason=rejection.reason.value,
        message=rejection.message,
        actor=actor,
        occurred_at=occurred_at,
        correlation_id=correlation_id,
    )


def override_completed(
    results: list[OverrideResult], *, event_id: uuid.UUID, command_id: str, occurred_at: datetime,
    correlation_id: str | None,
) -> OrderStatusOverrideCompleted:
    return OrderStatusOverrideCompleted(
        event_id=str(event_id), command_id=command_id, results=results, occurred_at=occurred_at,
        correlation_id=correlation_id,
    )
