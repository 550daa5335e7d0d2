"""Wire models of the commands (DESIGN §5.3): pydantic at the edge, parsed into domain commands."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    AfterValidator,
    StrictBool,
    StrictStr,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from service.contract.validation import Text, first_error, is_storable_text, storable
from service.domain import commands as domain
from service.domain.model import ROLES, Actor, NoteInput

BIGINT_MAX = 2**63 - 1  # orders.order_id and order_history.file_id are bigint
INT_MAX = 2**31 - 1  # statuses.id is integer
MAX_ECHO_CHARS = 200  # what a rejection repeats of a command it could not read
MAX_MESSAGE_CHARS = 1000  # a validation message in a rejection or a DLQ header


@dataclass(frozen=True)
class InputLimits:
    """DESIGN §11: a value above `max_message_bytes` is not parsed; more override items than
    `max_wire_items` make the command invalid before any item is validated."""

    max_message_bytes: int = 1_048_576
    max_wire_items: int = 1000


StatusRefField = Annotated[
    Union[Annotated[StrictInt, Field(ge=-INT_MAX - 1, le=INT_MAX)], Annotated[Text, Field(min_length=1, max_length=100)]],
    Field(),
]
OrderId = Annotated[StrictInt, Field(gt=0, le=BIGINT_MAX)]
_ORDER_ID_TEXT = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)


def order_id_in_range(text: str) -> int | None:
    """An order id written in a URL or an XML field: ASCII digits, no sign, no `_`, no leading zero, within
    orders.order_id's bigint (1..2^63-1); None for anything else (every face answers that 422, never 500)."""
    if not isinstance(text, str) or _ORDER_ID_TEXT.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= BIGINT_MAX else None
# "@topic:partition:offset" is how invalid messages without a readable id are deduped: reserved
CommandId = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[^@]"), AfterValidator(storable)]
Role = Literal[ROLES]


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

    def to_domain(self) -> Actor:
        return Actor(id=self.id, role=self.role, client_id=self.client_id)


class NoteModel(_Wire):
    text: Text | None = Field(default=None, max_length=10_000)
    is_public: StrictBool = False
    file_id: StrictInt | None = Field(default=None, ge=-BIGINT_MAX - 1, le=BIGINT_MAX)

    def to_domain(self) -> NoteInput:
        return NoteInput(text=self.text, is_public=self.is_public, file_id=self.file_id)


class _CommandBase(_Wire):
    command_id: CommandId
    actor: ActorModel
    note: NoteModel | None = None
    notify: StrictBool = True
    correlation_id: Text | None = Field(default=None, max_length=200)
    issued_at: datetime | None = None


class ChangeOrderStatus(_CommandBase):
    """Change one order's status along the transition graph (DESIGN §5.3)."""

    type: Literal["ChangeOrderStatus"]
    order_id: OrderId
    status: StatusRefField
    expected_status: StatusRefField | None = None

    def to_domain(self) -> domain.ChangeOrderStatus:
        return domain.ChangeOrderStatus(
            command_id=self.command_id, order_id=self.order_id, status=self.status, actor=self.actor.to_domain(),
            note=self.note.to_domain() if self.note else None, notify=self.notify,
            expected_status=self.expected_status, correlation_id=self.correlation_id,
        )


class OverrideItem(_Wire):
    order_id: OrderId
    status: StatusRefField


class OverrideOrderStatuses(_CommandBase):
    """Override several orders' statuses, each item on its own (DESIGN §5.3, R11, R12)."""

    type: Literal["OverrideOrderStatuses"]
    items: list[OverrideItem] = Field(min_length=1)

    def to_domain(self) -> domain.OverrideOrderStatuses:
        return domain.OverrideOrderStatuses(
            command_id=self.command_id, items=tuple(domain.OverrideItem(i.order_id, i.status) for i in self.items),
            actor=self.actor.to_domain(), note=self.note.to_domain() if self.note else None, notify=self.notify,
            correlation_id=self.correlation_id,
        )


Command = Annotated[Union[ChangeOrderStatus, OverrideOrderStatuses], Field(discriminator="type")]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES = ("ChangeOrderStatus", "OverrideOrderStatuses")


def _echo(value: object) -> str | None:
    """A string short and clean enough to repeat in a rejection; None otherwise."""
    return value if is_storable_text(value) and 0 < len(value) <= MAX_ECHO_CHARS else None


def _described(value: object) -> str:
    """What an unreadable field held, for a message: short text as it is, anything else by its type."""
    text = _echo(value)
    return repr(text) if text is not None else f"a {type(value).__name__}"


def _invalid(reason: str, message: str, data: dict | None = None) -> domain.InvalidCommand:
    """The invalid outcome with only what can be read safely: the rest of the command is suspect."""
    message = message[:MAX_MESSAGE_CHARS]
    if data is None:
        return domain.InvalidCommand(reason, message)
    order_id = data.get("order_id")
    status = data.get("status")
    raw_actor = data.get("actor")
    actor = (
        domain.PartialActor(**{k: _echo(raw_actor.get(k)) for k in ("id", "role", "client_id")})
        if isinstance(raw_actor, dict) else None
    )
    command_id = _echo(data.get("command_id"))
    return domain.InvalidCommand(
        reason, message,
        command_id=command_id if command_id is not None and not command_id.startswith("@") else None,
        order_id=order_id if type(order_id) is int and 0 < order_id <= BIGINT_MAX else None,
        requested_status=status if (type(status) is int and -INT_MAX - 1 <= status <= INT_MAX) else _echo(status),
        actor=actor,
        correlation_id=_echo(data.get("correlation_id")),
    )


def parse_command(value: bytes | None, limits: InputLimits = InputLimits()) -> domain.Command | domain.InvalidCommand:
    """Decode one Kafka value into a domain command, or the invalid outcome that says why not.

    Total: whatever the bytes hold, the answer is one of the two, never an exception."""
    try:
        return _parse(value, limits)
    except Exception as exc:  # a parser bug must not stop the partition: the message is invalid
        return _invalid("validation_failed", f"the command could not be read: {type(exc).__name__}")


def _parse(value: bytes | None, limits: InputLimits) -> domain.Command | domain.InvalidCommand:
    if value is None:
        return _invalid("not_json", "the message has no value")
    if len(value) > limits.max_message_bytes:
        return _invalid("too_large", f"the value has {len(value)} bytes; the limit is {limits.max_message_bytes}")
    # the hot path: pydantic-core parses and validates straight from the bytes; only a message that
    # fails (rare) is decoded a second time, to say exactly why and to echo what can be read of it
    try:
        command = COMMAND_ADAPTER.validate_json(value)
    except ValidationError:
        return _explain(value, limits)
    if isinstance(command, OverrideOrderStatuses) and len(command.items) > limits.max_wire_items:
        return _explain(value, limits)
    return command.to_domain()


def _explain(value: bytes, limits: InputLimits) -> domain.InvalidCommand | domain.Command:
    """Why a value is not a valid command, step by step: JSON, an object, a known type, the wire cap, the fields."""
    try:
        data = json.loads(value)
    except RecursionError:
        return _invalid("not_json", "the value is nested too deeply")
    except ValueError as exc:  # not UTF-8, not JSON, or an integer longer than Python converts
        return _invalid("not_json", f"the value is not JSON: {exc}")
    if not isinstance(data, dict):
        return _invalid("not_json", "the value is JSON but not an object")
    kind = data.get("type")
    if kind not in COMMAND_TYPES:
        return _invalid("unknown_type", f"unknown command type {_described(kind)}", data)
    items = data.get("items")
    if kind == "OverrideOrderStatuses" and isinstance(items, list) and len(items) > limits.max_wire_items:
        return _invalid("validation_failed",
                        f"items: {len(items)} items; at most {limits.max_wire_items} are read", data)
    try:
        return COMMAND_ADAPTER.validate_python(data).to_domain()
    except ValidationError as exc:
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return _invalid("validation_failed", first_error(exc, whole="command", skip=1) + more, data)
