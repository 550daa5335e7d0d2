"""What the service emits (DESIGN §6), as plain data: outcome events and dead letters.

Handlers return these; `service.contract.events` turns them into wire bytes and headers, and
parses an `OrderStatusChanged` back into a `StatusChanged` for the notifier."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from service.domain.commands import PartialActor, SourceMessage
from service.domain.model import Actor, Note, StatusLabel, StatusRef

_EVENT_NAMESPACE = uuid.UUID("8a0f3c1e-2b4d-4e59-9f7a-6c1d2e3f4a5b")


def event_id_for(command_id: str, index: int) -> uuid.UUID:
    """Deterministic: the n-th event of a command always has the same id, whoever emits it."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{command_id}/{index}")


@dataclass(frozen=True)
class StatusChanged:
    """An applied change: the history note, the outbox event and the notifier's input."""

    event_id: uuid.UUID
    command_id: str
    order_id: int
    order_type: str
    version: int
    from_status: StatusLabel
    to_status: StatusLabel
    override: bool
    notify: bool
    actor: Actor
    note: Note
    removed_reservations: tuple[str, ...]
    removed_coupons: tuple[str, ...]
    occurred_at: datetime
    correlation_id: str | None = None
    type: str = "OrderStatusChanged"


@dataclass(frozen=True)
class ChangeRejected:
    event_id: uuid.UUID
    command_id: str
    order_id: int | None
    requested_status: StatusRef | None
    reason: str
    message: str
    actor: Actor | PartialActor | None
    occurred_at: datetime
    correlation_id: str | None = None
    type: str = "OrderStatusChangeRejected"


@dataclass(frozen=True)
class OverrideResult:
    order_id: int
    status: StatusRef
    success: bool
    reason: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class OverrideCompleted:
    """The batch summary: a result per item, or none and the reason when the whole batch was refused."""

    event_id: uuid.UUID
    command_id: str
    results: tuple[OverrideResult, ...]
    item_count: int
    occurred_at: datetime
    correlation_id: str | None = None
    reason: str | None = None
    type: str = "OrderStatusOverrideCompleted"


Event = StatusChanged | ChangeRejected | OverrideCompleted


@dataclass(frozen=True)
class DeadLetter:
    """A message copied byte for byte to the DLQ (DESIGN §6.2), with why."""

    source: SourceMessage
    reason: str
    message: str


Emitted = Event | DeadLetter
