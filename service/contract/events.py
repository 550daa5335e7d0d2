"""Wire models of the events (DESIGN §6.1) and the dead letters (§6.2): domain data in, bytes out.

`to_wire` is the one place that turns what a handler emitted into a Kafka message (topic, key,
value, headers); `parse_status_changed` reads an `OrderStatusChanged` back for the notifier."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from service.contract.commands import ActorModel
from service.contract.validation import first_error
from service.domain import events as domain
from service.domain.model import Note, StatusLabel


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StatusRefModel(_Wire):
    id: int
    code: str
    name: str


class EventNote(_Wire):
    text: str
    is_public: bool
    file_id: int | None = None


class OrderStatusChanged(_Wire):
    type: Literal["OrderStatusChanged"] = "OrderStatusChanged"
    event_id: str
    command_id: str
    order_id: int
    order_type: str
    version: int
    from_status: StatusRefModel
    to_status: StatusRefModel
    override: bool
    notify: bool
    actor: ActorModel
    note: EventNote
    removed_reservations: list[str]
    removed_coupons: list[str]
    occurred_at: datetime
    correlation_id: str | None = None


class RejectedActor(_Wire):
    """The actor as far as it could be read: an invalid command may carry a partial or odd one."""

    id: str | None = None
    role: str | None = None
    client_id: str | None = None


class OrderStatusChangeRejected(_Wire):
    type: Literal["OrderStatusChangeRejected"] = "OrderStatusChangeRejected"
    event_id: str
    command_id: str
    order_id: int | None
    requested_status: int | str | None
    reason: str
    message: str
    actor: RejectedActor | None
    occurred_at: datetime
    correlation_id: str | None = None


class OverrideResult(_Wire):
    order_id: int
    status: int | str
    success: bool
    reason: str | None = None
    error: str | None = None


class OrderStatusOverrideCompleted(_Wire):
    type: Literal["OrderStatusOverrideCompleted"] = "OrderStatusOverrideCompleted"
    event_id: str
    command_id: str
    results: list[OverrideResult]
    occurred_at: datetime
    correlation_id: str | None = None


Event = Annotated[
    Union[OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted], Field(discriminator="type")
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True)
class Topics:
    events: str
    dlq: str


@dataclass(frozen=True)
class WireMessage:
    """One Kafka message to publish, with the outbox's bookkeeping columns."""

    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: uuid.UUID | None = None
    event_type: str | None = None
    order_id: int | None = None


def event_json(event: BaseModel) -> bytes:
    """Events keep every field, null included, so consumers see the documented shape."""
    return event.model_dump_json(exclude_none=False).encode()


def cloudevent_headers(event_id: str, event_type: str, subject: str, time: datetime) -> list[tuple[str, bytes]]:
    """CloudEvents 1.0 binary-mode headers (DESIGN §6.1)."""
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", event_id.encode()),
        ("ce_type", event_type.encode()),
        ("ce_source", b"orderstatus"),
        ("ce_subject", subject.encode()),
        ("ce_time", time.isoformat().encode()),
        ("content-type", b"application/json"),
    ]


def _actor(actor) -> dict | None:
    return None if actor is None else {"id": actor.id, "role": actor.role, "client_id": actor.client_id}


def _model(event: domain.Event) -> BaseModel:
    common = {"event_id": str(event.event_id), "command_id": event.command_id, "occurred_at": event.occurred_at,
              "correlation_id": event.correlation_id}
    if isinstance(event, domain.StatusChanged):
        return OrderStatusChanged(
            **common, order_id=event.order_id, order_type=event.order_type, version=event.version,
            from_status=asdict(event.from_status), to_status=asdict(event.to_status), override=event.override,
            notify=event.notify, actor=_actor(event.actor), note=event.note.as_dict(),
            removed_reservations=list(event.removed_reservations), removed_coupons=list(event.removed_coupons),
        )
    if isinstance(event, domain.ChangeRejected):
        return OrderStatusChangeRejected(
            **common, order_id=event.order_id, requested_status=event.requested_status, reason=event.reason,
            message=event.message, actor=_actor(event.actor),
        )
    return OrderStatusOverrideCompleted(**common, results=[asdict(r) for r in event.results])


def event_key(event: domain.Event) -> str:
    """DESIGN §6.1: keyed by order id; what concerns no single order by its command id."""
    order_id = getattr(event, "order_id", None)
    return str(order_id) if order_id is not None else event.command_id


def to_wire(emitted: domain.Emitted, topics: Topics) -> WireMessage:
    if isinstance(emitted, domain.DeadLetter):
        return dead_letter(emitted, topics.dlq)
    key = event_key(emitted)
    return WireMessage(
        topic=topics.events,
        key=key.encode(),
        value=event_json(_model(emitted)),
        headers=cloudevent_headers(str(emitted.event_id), emitted.type, key, emitted.occurred_at),
        event_id=emitted.event_id,
        event_type=emitted.type,
        order_id=getattr(emitted, "order_id", None),
    )


def dead_letter(letter: domain.DeadLetter, topic: str) -> WireMessage:
    """DESIGN §6.2: the bytes as they came, with the error and the original position as headers."""
    source = letter.source
    headers = [
        *source.headers,
        ("error.reason", letter.reason.encode()),
        ("error.message", letter.message.encode("utf-8", "replace")[:2000]),
        ("original.topic", source.topic.encode()),
        ("original.partition", str(source.partition).encode()),
        ("original.offset", str(source.offset).encode()),
    ]
    return WireMessage(topic=topic, key=source.key, value=source.value or b"", headers=headers)


class Unparseable(ValueError):
    """The message is not an event we can read; the notifier logs and skips it."""


def parse_status_changed(value: bytes | None) -> domain.StatusChanged | None:
    """The OrderStatusChanged in `value`, None for any other valid event; raises Unparseable otherwise.

    Rejections and batch summaries concern no email, and event types added later belong to other
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
        event_id = uuid.UUID(event.event_id)  # the idempotency records key on it
    except ValidationError as exc:
        raise Unparseable(first_error(exc, whole="event")) from None
    except ValueError:
        raise Unparseable("event_id is not a UUID") from None
    return domain.StatusChanged(
        event_id=event_id, command_id=event.command_id, order_id=event.order_id, order_type=event.order_type,
        version=event.version, from_status=StatusLabel(**event.from_status.model_dump()),
        to_status=StatusLabel(**event.to_status.model_dump()), override=event.override, notify=event.notify,
        actor=event.actor.to_domain(),
        note=Note(event.note.text, event.note.is_public, event.note.file_id),
        removed_reservations=tuple(event.removed_reservations), removed_coupons=tuple(event.removed_coupons),
        occurred_at=event.occurred_at, correlation_id=event.correlation_id,
    )


def event_type_of(value: bytes) -> str | None:
    """The `type` of a stored event, for operator messages."""
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return None
    return data.get("type") if isinstance(data, dict) else None
