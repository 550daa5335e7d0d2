"""Plain data of the domain: the rule set, an order's facts, actors, requests and decisions.

No I/O and no pydantic here: the wire models live in ``service.messages`` and are translated
into these at the edge, so the rules can be tested as pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Literal

# the actor roles of DESIGN §5.1, in the order help texts list them; the one list every layer uses
ROLES: tuple[str, ...] = ("client", "staff", "manager", "system")
STAFF_ROLES = frozenset({"staff", "manager", "system"})


class Reason(StrEnum):
    """Rejection reason codes of DESIGN §6.1 (a contract: never rename)."""

    INVALID_COMMAND = "invalid_command"
    ORDER_NOT_FOUND = "order_not_found"
    STATUS_NOT_FOUND = "status_not_found"
    STATUS_NOT_AVAILABLE = "status_not_available"
    STATUS_HIDDEN = "status_hidden"
    NO_CHANGE = "no_change"
    STALE_STATUS = "stale_status"
    TRANSITION_NOT_ALLOWED = "transition_not_allowed"
    ROLE_NOT_PERMITTED = "role_not_permitted"
    CANCEL_HAS_GOODS_OUT_NOTES = "cancel_has_goods_out_notes"
    CANCEL_ORDER_INVOICED = "cancel_order_invoiced"
    CANCEL_HAS_PAYMENTS = "cancel_has_payments"
    OVERRIDE_NOT_ALLOWED = "override_not_allowed"
    BATCH_TOO_LARGE = "batch_too_large"
    ACTOR_NOT_AUTHENTICATED = "actor_not_authenticated"  # DESIGN §11


StatusRef = int | str  # a numeric id or a code name


@dataclass(frozen=True)
class Status:
    id: int
    code: str
    name: str
    order_types: frozenset[str]
    initial: bool = False
    cancelled: bool = False
    invoiced: bool = False
    hidden: bool = False
    can_override_to: bool = False

    def ref(self) -> dict:
        return self.label().as_dict()

    def label(self) -> StatusLabel:
        return StatusLabel(self.id, self.code, self.name)


@dataclass(frozen=True)
class StatusLabel:
    """A status as events name it: id, code and name."""

    id: int
    code: str
    name: str

    def as_dict(self) -> dict:
        return {"id": self.id, "code": self.code, "name": self.name}


@dataclass(frozen=True)
class Transition:
    order_type: str
    from_id: int
    to_id: int
    roles: frozenset[str]


@dataclass(frozen=True)
class RuleSet:
    """Statuses, the per-order-type transition graph and who may override; immutable once built."""

    statuses: tuple[Status, ...]
    transitions: tuple[Transition, ...]
    override_roles: frozenset[str]
    version: int = 0
    _by_id: dict[int, Status] = field(init=False, repr=False, compare=False)
    _by_code: dict[str, Status] = field(init=False, repr=False, compare=False)
    _edges: dict[tuple[str, int, int], frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", {s.id: s for s in self.statuses})
        object.__setattr__(self, "_by_code", {s.code: s for s in self.statuses})
        object.__setattr__(
            self, "_edges", {(t.order_type, t.from_id, t.to_id): t.roles for t in self.transitions}
        )

    @property
    def order_types(self) -> frozenset[str]:
        return frozenset(t for s in self.statuses for t in s.order_types)

    def status(self, ref: StatusRef | None) -> Status | None:
        """Find a status by numeric id or by code; a string of digits is taken as an id."""
        if ref is None or isinstance(ref, bool):
            return None
        if isinstance(ref, int):
            return self._by_id.get(ref)
        if ref in self._by_code:
            return self._by_code[ref]
        digits = ref.strip()
        if digits.isascii() and digits.isdigit():  # str.isdigit alone accepts "²", which int() refuses
            return self._by_id.get(int(digits))
        return None

    def edge_roles(self, order_type: str, from_id: int, to_id: int) -> frozenset[str] | None:
        """Roles allowed on the edge, or None when the graph has no such edge."""
        return self._edges.get((order_type, from_id, to_id))

    def initial_status(self, order_type: str) -> Status | None:
        return next((s for s in self.statuses if s.initial and order_type in s.order_types), None)

    def statuses_for(self, order_type: str | None = None) -> list[Status]:
        return [s for s in self.statuses if order_type is None or order_type in s.order_types]


@dataclass(frozen=True)
class Actor:
    id: str
    role: str
    client_id: str | None = None
    name: str | None = None  # a display name, only from a verified token

    def as_dict(self) -> dict:
        # client_id always present (null for internal roles): every event carries one actor shape
        return {"id": self.id, "role": self.role, "client_id": self.client_id}

    def as_recorded_dict(self) -> dict:
        """The actor as an order's history records it: `as_dict`, and its verified `name` when it has one (absent
        when not, as in the rows written before names were kept, so every nameless entry has one shape)."""
        return {**self.as_dict(), "name": self.name} if self.name else self.as_dict()


@dataclass(frozen=True)
class Principal:
    """Who a verified token says the caller is (DESIGN §11): `sub`, `role`, optional `client_id`, `name`."""

    sub: str
    role: str
    client_id: str | None = None
    name: str | None = None

    def actor(self) -> Actor:
        return Actor(id=self.sub, role=self.role, client_id=self.client_id, name=self.name)

    def mismatch(self, actor: Actor) -> str | None:
        """Why the command's actor is not this principal (None when it is): every claim must match."""
        for claim, claimed, asserted in (("sub", self.sub, actor.id), ("role", self.role, actor.role),
                                         ("client_id", self.client_id, actor.client_id)):
            if claimed != asserted:
                return f"the token's {claim} does not match the command's actor"
        return None


@dataclass(frozen=True)
class OrderFacts:
    """What the rules need to know about one order, as read inside the unit of work."""

    order_id: int
    order_type: str
    status_id: int
    version: int = 0
    client_id: str | None = None
    payments_total: Decimal = Decimal("0")
    goods_out_notes: tuple[str, ...] = ()
    reservations: tuple[str, ...] = ()
    coupons: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoteInput:
    text: str | None = None
    is_public: bool = False
    file_id: int | None = None


@dataclass(frozen=True)
class ChangeRequest:
    """One status change: a ChangeOrderStatus command or one item of an override batch."""

    order_id: int
    status: StatusRef
    actor: Actor
    note: NoteInput | None = None
    expected_status: StatusRef | None = None
    override: bool = False


@dataclass(frozen=True)
class Note:
    text: str
    is_public: bool = False
    file_id: int | None = None

    def as_dict(self) -> dict:
        return {"text": self.text, "is_public": self.is_public, "file_id": self.file_id}


@dataclass(frozen=True)
class Change:
    """An accepted change: everything the unit of work must apply, in one transaction."""

    order_id: int
    order_type: str
    from_status: Status
    to_status: Status
    version: int
    note: Note
    override: bool
    removed_reservations: tuple[str, ...] = ()
    removed_coupons: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejection:
    reason: Reason
    message: str


Decision = Change | Rejection


@dataclass(frozen=True)
class Availability:
    """R13: where an order can go next for one actor."""

    current: Status
    transitions: tuple[Status, ...]
    overrides: tuple[Status, ...]
    can_override: bool


@dataclass(frozen=True)
class Recipient:
    """One contact of an order who receives its emails (R10: clients see public notes only)."""

    email: str
    name: str | None
    kind: Literal["client", "stakeholder"]
