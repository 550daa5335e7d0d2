"""Wire models of the commands (DESIGN §5.3): pydantic at the edge, parsed into domain commands."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictInt, TypeAdapter, ValidationError, model_validator

from service.contract.validation import Text, first_error, is_storable_text
from service.domain import commands as domain
from service.domain.model import ROLES, Actor, NoteInput

BIGINT_MAX = 2**63 - 1  # orders.order_id and order_history.file_id are bigint

StatusRefField = Annotated[Union[StrictInt, Annotated[Text, Field(min_length=1, max_length=100)]], Field()]
OrderId = Annotated[StrictInt, Field(gt=0, le=BIGINT_MAX)]
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
    is_public: bool = False
    file_id: StrictInt | None = Field(default=None, ge=-BIGINT_MAX - 1, le=BIGINT_MAX)

    def to_domain(self) -> NoteInput:
        return NoteInput(text=self.text, is_public=self.is_public, file_id=self.file_id)


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


def _readable(value: object) -> str | None:
    return value if is_storable_text(value) and 0 < len(value) <= 200 else None


def _invalid(reason: str, message: str, data: dict | None = None) -> domain.InvalidCommand:
    """The invalid outcome with only what can be read safely: the rest of the command is suspect."""
    if data is None:
        return domain.InvalidCommand(reason, message)
    order_id = data.get("order_id")
    status = data.get("status")
    raw_actor = data.get("actor")
    actor = (
        domain.PartialActor(**{k: raw_actor.get(k) if is_storable_text(raw_actor.get(k)) else None
                               for k in ("id", "role", "client_id")})
        if isinstance(raw_actor, dict) else None
    )
    return domain.InvalidCommand(
        reason, message,
        command_id=_readable(data.get("command_id")),
        order_id=order_id if type(order_id) is int and 0 < order_id <= BIGINT_MAX else None,
        requested_status=status if type(status) is int or is_storable_text(status) else None,
        actor=actor,
        correlation_id=data.get("correlation_id") if is_storable_text(data.get("correlation_id")) else None,
    )


def parse_command(value: bytes | None) -> domain.Command | domain.InvalidCommand:
    """Decode one Kafka value into a domain command, or the invalid outcome that says why not."""
    if value is None:
        return _invalid("not_json", "the message has no value")
    try:
        data = json.loads(value)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        return _invalid("not_json", f"the value is not JSON: {exc}")
    if not isinstance(data, dict):
        return _invalid("not_json", "the value is JSON but not an object")
    if data.get("type") not in COMMAND_TYPES:
        return _invalid("unknown_type", f"unknown command type {str(data.get('type'))[:100]!r}", data)
    try:
        return COMMAND_ADAPTER.validate_python(data).to_domain()
    except ValidationError as exc:
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        return _invalid("validation_failed", first_error(exc, whole="command", skip=1) + more, data)
