"""The two commands of DESIGN §5.3 and the invalid-message outcome, as plain data.

`service.contract.commands` parses wire bytes into these; handlers take them and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.domain.model import Actor, NoteInput, StatusRef


@dataclass(frozen=True)
class SourceMessage:
    """Where a command came from: what the DLQ headers and the offset commit need."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None  # the record's Kafka timestamp (end-to-end latency starts here)
    # why the record could not be read at all (its batch did not decompress): key and value are then None
    unreadable: str | None = None

    @property
    def position(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"


@dataclass(frozen=True)
class ChangeOrderStatus:
    """Change one order's status along the transition graph."""

    command_id: str
    order_id: int
    status: StatusRef
    actor: Actor
    note: NoteInput | None = None
    notify: bool = True
    expected_status: StatusRef | None = None
    correlation_id: str | None = None
    type: str = "ChangeOrderStatus"


@dataclass(frozen=True)
class OverrideItem:
    order_id: int
    status: StatusRef


@dataclass(frozen=True)
class OverrideOrderStatuses:
    """Override several orders' statuses, each item on its own (R11, R12)."""

    command_id: str
    items: tuple[OverrideItem, ...]
    actor: Actor
    note: NoteInput | None = None
    notify: bool = True
    correlation_id: str | None = None
    type: str = "OverrideOrderStatuses"


Command = ChangeOrderStatus | OverrideOrderStatuses


@dataclass(frozen=True)
class PartialActor:
    """The actor of an invalid command as far as it could be read safely (any field may be missing)."""

    id: str | None = None
    role: str | None = None
    client_id: str | None = None


@dataclass(frozen=True)
class InvalidCommand:
    """A message that is not a valid command (DESIGN §6.2), with what could be read from it safely.

    `reason` is the DLQ's `error.reason` (not_json | unknown_type | validation_failed | too_large |
    unreadable | processing_failed); the other fields are echoed in the rejection when `command_id` is known."""

    reason: str
    message: str
    command_id: str | None = None
    order_id: int | None = None
    requested_status: StatusRef | None = None
    actor: PartialActor | None = None
    correlation_id: str | None = None
