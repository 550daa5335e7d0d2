"""Events as the worker publishes them, built directly, to feed the notifier without a worker."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from service.contract.events import EventNote, OrderStatusChanged, StatusRefModel

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
