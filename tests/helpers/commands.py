"""Commands as producers send them (DESIGN §5.3), as plain dicts, and as the worker receives them."""

from __future__ import annotations

import json
import uuid

from service.domain.commands import SourceMessage


def change(order_id: int, status, *, role="staff", client_id=None, command_id=None, **extra) -> dict:
    """A ChangeOrderStatus by an actor `<role>-1`, with a fresh command id unless one is given."""
    actor = {"id": f"{role}-1", "role": role}
    if client_id is not None:
        actor["client_id"] = client_id
    return {"type": "ChangeOrderStatus", "command_id": command_id or str(uuid.uuid4()), "order_id": order_id,
            "status": status, "actor": actor, **extra}


def override(items: list[tuple[int, object]], *, role="manager", command_id=None, **extra) -> dict:
    """An OverrideOrderStatuses of (order id, status) items by an actor `<role>-1`."""
    return {"type": "OverrideOrderStatuses", "command_id": command_id or str(uuid.uuid4()),
            "items": [{"order_id": o, "status": s} for o, s in items], "actor": {"id": f"{role}-1", "role": role},
            **extra}


def source_messages(commands: list[dict], topic: str = "commands", partition: int = 0,
                    first_offset: int = 0) -> list[SourceMessage]:
    """The commands as one partition's poll batch (JSON values keyed by order id), offsets counting up."""
    return [SourceMessage(topic, partition, offset, str(c.get("order_id")).encode(), json.dumps(c).encode())
            for offset, c in enumerate(commands, first_offset)]
