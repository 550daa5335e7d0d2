"""Events as the worker publishes them, built directly, to feed the notifier without a worker."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from pydantic import BaseModel

from service.contract.events import (
    EventNote,
    OrderStatusChanged,
    OrderStatusChangeRejected,
    OrderStatusOverrideCompleted,
    OverrideResult,
    StatusRefModel,
    event_json,
)

WHEN = datetime(2025, 3, 4, 10, 11, 12, tzinfo=timezone.utc)


def changed(order_id: int, *, note: str = "Status changed.", public: bool = False, notify: bool = True,
            version: int = 1, actor: str = "staff-9") -> OrderStatusChanged:
    """An SO order moved Confirmed -> ReadyToShip by a staff member at WHEN, with fresh event and command ids."""
    return OrderStatusChanged(
        event_id=str(uuid.uuid4()), command_id=str(uuid.uuid4()), order_id=order_id, order_type="SO",
        version=version, from_status=StatusRefModel(id=2, code="Confirmed", name="Confirmed"),
        to_status=StatusRefModel(id=5, code="ReadyToShip", name="Ready to ship"), override=False, notify=notify,
        actor={"id": actor, "role": "staff"}, note=EventNote(text=note, is_public=public),
        removed_reservations=[], removed_coupons=[], occurred_at=WHEN,
    )


def as_read(event: BaseModel) -> dict:
    """The event as a reader of the topic decodes it: the worker's own serialization (`event_json`), parsed."""
    return json.loads(event_json(event))


def rejected(order_id: int, command_id: str, requested_status: int | str, reason: str, message: str,
             occurred_at: datetime = WHEN) -> OrderStatusChangeRejected:
    """A refused change of one order, with no actor (as for a command whose actor could not be read)."""
    return OrderStatusChangeRejected(event_id=str(uuid.uuid4()), command_id=command_id, order_id=order_id,
                                     requested_status=requested_status, reason=reason, message=message, actor=None,
                                     occurred_at=occurred_at)


def override_completed(command_id: str, results: list[OverrideResult], *, item_count: int | None = None,
                       reason: str | None = None, occurred_at: datetime = WHEN) -> OrderStatusOverrideCompleted:
    """The summary of an override batch: one result per item (`item_count` defaults to their number)."""
    return OrderStatusOverrideCompleted(event_id=str(uuid.uuid4()), command_id=command_id, results=results,
                                        item_count=len(results) if item_count is None else item_count,
                                        reason=reason, occurred_at=occurred_at)
