"""Wire models of DESIGN §5.3 and §6: pydantic at the edge, translated to and from the domain."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.domain import model as domain

BIGINT_MAX = 2**63 - 1  # orders.order_id and order_history.file_id are bigint


def storable(value: str) -> str:
    """Refuse text Postgres cannot store, so it is an invalid command, not a failed transaction."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return value


def is_storable_text(value: object) -> bool:
    try:
        return isinstance(value, str) and storable(value) is value
    except ValueError:
        return False


Text = Annotated[StrictStr, AfterValidator(storable)]
StatusRefField = Annotated[Union[StrictInt, Annotated[Text, Field(min_length=1, max_length=100)]], Field()]
OrderId = Annotated[StrictInt, Field(gt=0, le=BIGINT_MAX)]
Role = Literal["client", "staff", "manager", "system"]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ActorModel(_Wire):
    id: Text = Field(min_length=1, max_length=200)
    role: Role
    client_id: Text | None = Field(default=None, max_length=200)

    @model_validator(mode="after")
    def _client_has_client_id(self) -> "ActorModel":
        if self.role == "client" and not self.client_id:
            raise ValueError("an actor with role client needs a client_id")
        return self

    def to_domain(self) -> domain.Actor:
        return domain.Actor(id=self.id, role=self.role, client_id=self.client_id)


class NoteModel(_Wire):
    text: Text | None = Field(default=None, max_length=10_000)
    is_public: bool = False
    file_id: StrictInt | None = Field(default=None, ge=-BIGINT_MAX - 1, le=BIGINT_MAX)

    def to_domain(self) -> domain.NoteInput:
        return domain.NoteInput(text=self.text, is_public=self.is_public, file_id=self.file_id)


class _CommandBase(_Wire):
    command_id: Text = Field(min_length=1, max_length=200)
    actor: ActorModel
    note: NoteModel | None = None
    notify: bool = True
    correlation_id: Text | None = Field(default=None, max_length=200)
    issued_at: datetime | None = None


class ChangeOrderStatus(_CommandBase):
    """Change one order's status along the transition graph (DESIGN §5.3)."""

    type: Literal["ChangeOrderStatus"]
    order_id: OrderId
    status: StatusRefField
    expected_status: StatusRefField | None = None


class OverrideItem(_Wire):
    order_id: OrderId
    status: StatusRefField


class OverrideOrderStatuses(_CommandBase):
    """Override several orders' statuses, each item on its own (DESIGN §5.3, R11, R12)."""

    type: Literal["OverrideOrderStatuses"]
    items: list[OverrideItem] = Field(min_length=1)


Command = Annotated[Union[ChangeOrderStatus, OverrideOrderStatuses], Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES = ("ChangeOrderStatus", "OverrideOrderStatuses")


class InvalidCommand(Exception):
    """A message that is not a valid command; carries what the DLQ headers and the rejection need."""

    def __init__(self, reason: str, message: str, command_id: str | None = None, raw: Any = None) -> None:
        super().__init__(message)
        self.reason = reason  # not_json | unknown_type | validation_failed
        self.message = message
        self.command_id = command_id
        self.raw = raw if isinstance(raw, dict) else {}


def parse_command(value: bytes | None) -> ChangeOrderStatus | OverrideOrderStatuses:
    """Decode one Kafka value into a command or raise InvalidCommand (never anything else)."""
    if value is None:
        raise InvalidCommand("not_json", "the message has no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InvalidCommand("not_json", f"the value is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidCommand("not_json", "the value is JSON but not an object")
    raw_id = data.get("command_id")
    command_id = raw_id if is_storable_text(raw_id) and 0 < len(raw_id) <= 200 else None
    if data.get("type") not in COMMAND_TYPES:
        raise InvalidCommand("unknown_type", f"unknown command type {str(data.get('type'))[:100]!r}", command_id, data)
    try:
        return COMMAND_ADAPTER.validate_python(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "command"
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidCommand("validation_failed", f"{where}: {first['msg']}{more}", command_id, data) from None


# ---------------------------------------------------------------- events (DESIGN §6.1)


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
