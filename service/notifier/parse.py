"""Which messages on the events topic the notifier acts on (DESIGN §6.1)."""

from __future__ import annotations

import json
from uuid import UUID

from pydantic import ValidationError

from service.messages import OrderStatusChanged


class Unparseable(ValueError):
    """The message is not an event we can read; it is logged and skipped."""


def parse_notifiable(value: bytes | None) -> OrderStatusChanged | None:
    """The OrderStatusChanged in `value`, None for any other valid event; raises Unparseable otherwise.

    Rejections and batch summaries send no email, and event types added later belong to other
    subscribers, so only a malformed message or a malformed OrderStatusChanged is an error."""
    try:
        data = json.loads(value) if value is not None else None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Unparseable(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise Unparseable("not an event object")
    if data["type"] != "OrderStatusChanged":
        return None
    try:
        event = OrderStatusChanged.model_validate(data)
        UUID(event.event_id)  # the idempotency records key on it
    except ValidationError as exc:
        first = exc.errors()[0]
        raise Unparseable(f"{'.'.join(map(str, first['loc'])) or 'event'}: {first['msg']}") from None
    except ValueError:
        raise Unparseable("event_id is not a UUID") from None
    return event
