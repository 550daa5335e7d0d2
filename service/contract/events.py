"""Wire models of the events (DESIGN §6.1) and the dead letters (§6.2): domain data in, bytes out.

`to_wire` is the one place that turns what a handler emitted into a Kafka message (topic, key,
value, headers); `parse_status_changed` reads an `OrderStatusChanged` back for the notifier."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import to_json

from service.contract.commands import BIGINT_MAX, INT_MAX
from service.contract.headers import Header, Headers
from service.contract.json_text import parse_json
from service.contract.keys import message_key
from service.contract.validation import first_error, is_storable_text
from service.domain import events as domain
from service.domain.model import Actor, Note, StatusLabel


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StatusRefModel(_Wire):
    id: int = Field(ge=-INT_MAX - 1, le=INT_MAX)
    code: str = Field(max_length=100)
    name: str = Field(max_length=200)


class EventNote(_Wire):
    text: str = Field(max_length=10_000)
    is_public: bool
    file_id: int | None = Field(default=None, ge=-BIGINT_MAX - 1, le=BIGINT_MAX)


class EventActor(_Wire):
    """Who made the change. `name` is a display name, present only when a verified token carried one."""

    id: str = Field(max_length=200)
    role: str = Field(max_length=20)
    client_id: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)


class OrderStatusChanged(_Wire):
    type: Literal["OrderStatusChanged"] = "OrderStatusChanged"
    event_id: str
    command_id: str = Field(max_length=200)
    order_id: int = Field(gt=0, le=BIGINT_MAX)
    order_type: str = Field(max_length=100)
    version: int = Field(ge=0, le=INT_MAX)
    from_status: StatusRefModel
    to_status: StatusRefModel
    override: bool
    notify: bool
    actor: EventActor
    note: EventNote
    removed_reservations: list[str] = Field(max_length=10_000)
    removed_coupons: list[str] = Field(max_length=10_000)
    occurred_at: datetime
    correlation_id: str | None = Field(default=None, max_length=200)


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
    results: list[OverrideResult] = Field(
        description="One result per item, in item order; empty when the whole batch was rejected (see reason).")
    occurred_at: datetime
    correlation_id: str | None = None
    item_count: int = Field(description="How many items the command held.")
    reason: str | None = Field(
        default=None, description="Set when the whole batch was rejected (batch_too_large); null otherwise.")


Event = Annotated[
    Union[OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted], Field(discriminator="type")
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


@dataclass(frozen=True)
class Topics:
    """Where the worker's output goes, and how large one message there may be."""

    events: str
    dlq: str
    max_message_bytes: int = 1_048_576


@dataclass(frozen=True)
class WireMessage:
    """One Kafka message to publish, with the outbox's bookkeeping columns."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers = field(default_factory=list)
    event_id: uuid.UUID | None = None
    event_type: str | None = None
    order_id: int | None = None
    # the Kafka timestamp (ms) of the command that caused it: the relay measures end-to-end latency from it
    source_timestamp_ms: int | None = None
    shard: int = 0  # the commands partition it came from: the relay publishes shard by shard

    @property
    def size(self) -> int:
        """Bytes of key, value and headers, plus the record overhead of each header."""
        return (len(self.key or b"") + len(self.value)
                + sum(len(name.encode("utf-8", "replace")) + len(value or b"") + HEADER_OVERHEAD
                      for name, value in self.headers))


# record framing beyond the raw bytes: varints and attributes per record and per header, kept generous
RECORD_OVERHEAD = 512
HEADER_OVERHEAD = 16
# an upper bound of an event's headers without its key (8 headers of a few dozen bytes, their overhead)
CLOUDEVENT_HEADERS_BYTES = 1024
# headers of a dead letter's original that are kept: what fits in this share of the limit
ORIGINAL_HEADERS_SHARE = 16


class MessageTooLarge(ValueError):
    """An event larger than the topic takes: its command fails (and is dead-lettered) instead of the relay."""


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


def _named_actor(actor: Actor) -> dict:
    return {**_actor(actor), "name": actor.name}


def _wire_dict(event: domain.Event) -> dict:
    """The event as the models of this module serialise it (same fields, same order), built directly:
    the worker's hot path skips constructing a model only to dump it (a test checks the bytes match)."""
    head = {"type": event.type, "event_id": str(event.event_id), "command_id": event.command_id}
    tail = {"occurred_at": event.occurred_at, "correlation_id": event.correlation_id}
    if isinstance(event, domain.StatusChanged):
        note = event.note
        return {
            **head, "order_id": event.order_id, "order_type": event.order_type, "version": event.version,
            "from_status": event.from_status.as_dict(), "to_status": event.to_status.as_dict(),
            "override": event.override, "notify": event.notify, "actor": _named_actor(event.actor),
            "note": {"text": note.text, "is_public": note.is_public, "file_id": note.file_id},
            "removed_reservations": list(event.removed_reservations), "removed_coupons": list(event.removed_coupons),
            **tail,
        }
    if isinstance(event, domain.ChangeRejected):
        return {**head, "order_id": event.order_id, "requested_status": event.requested_status,
                "reason": event.reason, "message": event.message, "actor": _actor(event.actor), **tail}
    results = [{"order_id": r.order_id, "status": r.status, "success": r.success, "reason": r.reason,
                "error": r.error} for r in event.results]
    return {**head, "results": results, **tail, "item_count": event.item_count, "reason": event.reason}


def event_key(event: domain.Event) -> str:
    """DESIGN §6.1: keyed by order id; what concerns no single order by its command id (`contract.keys`)."""
    return message_key(getattr(event, "order_id", None), event.command_id).decode()


TRACEPARENT = "traceparent"  # W3C trace context (DESIGN §11)


def to_wire(emitted: domain.Emitted, topics: Topics, traceparent: str | None = None, *, shard: int = 0,
            source_timestamp_ms: int | None = None) -> WireMessage:
    """The Kafka message of an event or a dead letter, with the command's `traceparent` when it has one,
    for outbox shard `shard`; an event carries its command's Kafka timestamp. Never larger than
    `topics.max_message_bytes`."""
    if isinstance(emitted, domain.DeadLetter):
        return replace(dead_letter(emitted, topics.dlq, topics.max_message_bytes, traceparent), shard=shard)
    key = event_key(emitted)
    trace = [(TRACEPARENT, traceparent.encode())] if traceparent else []
    message = WireMessage(
        topic=topics.events,
        key=key.encode(),
        value=to_json(_wire_dict(emitted)),
        headers=cloudevent_headers(str(emitted.event_id), emitted.type, key, emitted.occurred_at) + trace,
        event_id=emitted.event_id,
        event_type=emitted.type,
        order_id=getattr(emitted, "order_id", None),
        source_timestamp_ms=source_timestamp_ms,
        shard=shard,
    )
    # the exact size only near the limit: our headers (CloudEvents, a traceparent) take less than
    # CLOUDEVENT_HEADERS_BYTES beside the key, which appears in them once more
    bound = len(message.value) + 2 * len(message.key) + CLOUDEVENT_HEADERS_BYTES + RECORD_OVERHEAD
    if bound <= topics.max_message_bytes:
        return message
    if message.size + RECORD_OVERHEAD > topics.max_message_bytes:
        raise MessageTooLarge(
            f"{emitted.type} {emitted.event_id} has {message.size} bytes; the limit is {topics.max_message_bytes}")
    return message


def _is_ours(name: str) -> bool:
    return name.startswith(("error.", "original."))


def dead_letter(letter: domain.DeadLetter, topic: str, max_bytes: int, traceparent: str | None = None) -> WireMessage:
    """DESIGN §6.2: the bytes as they came, with the error and the original position as headers.

    Headers named like ours (`error.*`, `original.*`) are dropped from the copy, so a producer cannot
    forge them. What cannot fit is cut (DESIGN §11): the original's headers beyond their share of the
    limit are dropped, and the key and the value keep their first bytes, with `error.truncated: true`
    and `original.size` (the value's size) saying so."""
    source = letter.source
    ours: list[Header] = [
        ("error.reason", letter.reason.encode("utf-8", "replace")[:200]),
        ("error.message", letter.message.encode("utf-8", "replace")[:2000]),
        ("original.topic", source.topic.encode("utf-8", "replace")),
        ("original.partition", str(source.partition).encode()),
        ("original.offset", str(source.offset).encode()),
    ]
    kept: list[Header] = []
    room = max_bytes // ORIGINAL_HEADERS_SHARE
    for name, value in source.headers:
        cost = len(name.encode("utf-8", "replace")) + len(value or b"") + HEADER_OVERHEAD
        # a name Postgres text cannot hold (NUL) could not be stored in the outbox: such a header goes
        if not _is_ours(name) and is_storable_text(name) and cost <= room:
            kept.append((name, value))
            room -= cost
    if traceparent:  # the command's span, in the trace the original named (if any)
        kept = [(name, value) for name, value in kept if name != TRACEPARENT] + [(TRACEPARENT, traceparent.encode())]
    headers = kept + ours
    key, value = source.key, source.value or b""
    message = WireMessage(topic=topic, key=key, value=value, headers=headers)
    if message.size + RECORD_OVERHEAD <= max_bytes:
        return message
    headers = headers + [("error.truncated", b"true"), ("original.size", str(len(value)).encode())]
    key = (key or b"")[:256] if key is not None else None
    budget = max_bytes - RECORD_OVERHEAD - WireMessage(topic, key, b"", headers).size
    return WireMessage(topic=topic, key=key, value=value[:max(budget, 0)], headers=headers)


class Unparseable(ValueError):
    """The message is not an event we can read; the notifier logs and skips it."""


def parse_status_changed(value: bytes | None, max_bytes: int = 1_048_576) -> domain.StatusChanged | None:
    """The OrderStatusChanged in `value`, None for any other valid event; raises Unparseable otherwise.

    Rejections and batch summaries concern no email, and event types added later belong to other
    subscribers, so only a malformed message or a malformed OrderStatusChanged is an error. Total:
    whatever the bytes hold, no other exception comes out."""
    if value is not None and len(value) > max_bytes:
        raise Unparseable(f"the value has {len(value)} bytes; the limit is {max_bytes}")
    try:
        return _status_changed(value)
    except Unparseable:
        raise
    except Exception as exc:
        raise Unparseable(f"the event could not be read: {type(exc).__name__}") from None


def _status_changed(value: bytes | None) -> domain.StatusChanged | None:
    try:
        data = parse_json(value) if value is not None else None
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, too deep, an integer too long
        raise Unparseable(f"not JSON: {str(exc)[:200]}") from None
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
        actor=Actor(event.actor.id, event.actor.role, event.actor.client_id, event.actor.name),
        note=Note(event.note.text, event.note.is_public, event.note.file_id),
        removed_reservations=tuple(event.removed_reservations), removed_coupons=tuple(event.removed_coupons),
        occurred_at=event.occurred_at, correlation_id=event.correlation_id,
    )


def event_type_of(value: bytes) -> str | None:
    """The `type` of a stored event, for operator messages."""
    try:
        data = parse_json(value)
    except (ValueError, RecursionError):
        return None
    return data.get("type") if isinstance(data, dict) else None
