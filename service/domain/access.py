"""Who may see what: the one access policy of every reader (issue 22 part 4). Pure, stdlib only.

Every face that shows orders, history entries, outcome events or commands asks here — the read API
(`queries/http.py` through `adapters/postgres/views.py`), the gateway (`gateway/app.py`), the operator
console (`console/`) and the CLI. Nothing else decides it.

A reader is a `Viewer`, made once per request:

* `viewer_of(principal_or_actor)` — a verified caller (or a command's actor): its role, id and client id.
* `OPERATOR` — someone on the machine with the database at hand (the CLI; the read API with
  `ORDERSTATUS_READ_API_OPEN`, a dev setup): sees everything.
* `ANONYMOUS` — a request without a token where none is required (the read API with `ACTOR_AUTH` off or
  optional): sees any order, as a client sees it (public notes, actors by role, no internal refs).
  `tokenless_viewer(open_reads)` picks between these two: the read API's one named knob.

The rules (stable names; the console imports them):

* `may_see_order(viewer, order)` — R4: staff, manager and system see every order; a client only the
  orders of its own `client_id`; a role that is none of these, nothing. OPERATOR and ANONYMOUS see every
  order (ANONYMOUS only in its redacted form, see `shown`).
* `may_see_internal(viewer)` — private notes, actors beyond their role, reservation refs and coupon
  codes: staff and above, and OPERATOR. Never a client, never ANONYMOUS.
* `may_see_actor_name(viewer)` — an actor's verified display name (a history entry's `actor.name`, kept only
  from a verified token) beside its role: every signed-in viewer who may see the entry, a client too, as the
  emails name the actor to every recipient (`notifier/rendering.actor_phrase`: "Sam (staff)"); never ANONYMOUS,
  who reads any order without being one of its recipients.
* `shown(viewer, record)` — a history entry or an outcome event as the viewer may see it (a copy; the
  record is untouched).
* `may_see_command(viewer, events)` — a command's outcome (GET /commands/{id}, the answer to a retried
  request): staff and above see every command; anyone else only a command it issued (an event's actor id
  is the viewer's id).
* `may_use_console(viewer)` / `may_act_in_console(viewer)` — DESIGN §12: staff reads, manager and system
  also act (redrive, retry, resend); a client has no access; neither has ANONYMOUS or a bare OPERATOR
  (the console always signs its users in).

Where the faces differ, on purpose (kept as they were before this module; each a named rule here):

1. Orders are owned by their client (`may_see_order`, R4); commands by their issuer (`may_see_command`).
   A client therefore sees, in an order's history, a change staff made on its order, but not that
   staff command's outcome by command id: a command id is the issuer's handle, and an outcome event of a
   refused command may name no order a client could be checked against.
2. Only the read API serves requests without a token (`tokenless_viewer`); the gateway and the console
   always need one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from service.domain.model import STAFF_ROLES, Actor, OrderFacts, Principal
from service.domain.rules import can_access

# the roles that act in the operator console (DESIGN §12); staff only reads there
CONSOLE_ACTING_ROLES = frozenset({"manager", "system"})
# what a record holds that only staff and above may see, beside a private note and the actor beyond its role
INTERNAL_REFS = ("removed_reservations", "removed_coupons")


@dataclass(frozen=True)
class Viewer:
    """Who reads. `role` None: no verified caller (OPERATOR when `trusted`, else ANONYMOUS)."""

    role: str | None
    id: str | None = None
    client_id: str | None = None
    trusted: bool = False  # on the machine: the CLI, a dev read API (ORDERSTATUS_READ_API_OPEN)


OPERATOR = Viewer(role=None, trusted=True)
ANONYMOUS = Viewer(role=None)


def viewer_of(who: Principal | Actor) -> Viewer:
    """The viewer of a verified principal (its `sub` is its id) or of an actor."""
    ident = who.sub if isinstance(who, Principal) else who.id
    return Viewer(role=who.role, id=ident, client_id=who.client_id)


def tokenless_viewer(open_reads: bool) -> Viewer:
    """The read API's reader of a request without a token: OPERATOR when `open_reads`
    (ORDERSTATUS_READ_API_OPEN, a dev setup), else ANONYMOUS (public facts only)."""
    return OPERATOR if open_reads else ANONYMOUS


def _staff(viewer: Viewer) -> bool:
    return viewer.role in STAFF_ROLES


def may_see_order(viewer: Viewer, order: OrderFacts) -> bool:
    """R4 for a reader: see `rules.can_access` (staff and above all orders, a client its own);
    OPERATOR and ANONYMOUS every order."""
    if viewer.role is None:
        return True
    return can_access(Actor(id=viewer.id or "", role=viewer.role, client_id=viewer.client_id), order)


def may_see_internal(viewer: Viewer) -> bool:
    """Private notes, full actors, reservation refs and coupon codes: staff and above, and OPERATOR."""
    return viewer.trusted or _staff(viewer)


def may_see_actor_name(viewer: Viewer) -> bool:
    """An actor's verified name: any signed-in viewer of the entry (the emails name the actor to the order's
    client too) and OPERATOR; not ANONYMOUS (a tokenless reader of any order is none of its recipients)."""
    return viewer.trusted or viewer.role is not None


def shown(viewer: Viewer, record: Mapping) -> dict:
    """A history entry or an outcome event as `viewer` may see it. For a viewer without `may_see_internal`:
    the actor (when an object) reduced to its role (and its verified name, when it has one and
    `may_see_actor_name`), a note that is not public replaced by None, and the
    internal refs that are present emptied. Always a new dict."""
    seen = dict(record)
    if may_see_internal(viewer):
        return seen
    actor = seen.get("actor")
    if isinstance(actor, Mapping):
        seen["actor"] = {"role": actor.get("role")}
        if actor.get("name") and may_see_actor_name(viewer):
            seen["actor"]["name"] = actor["name"]
    note = seen.get("note")
    if isinstance(note, Mapping) and not note.get("is_public"):
        seen["note"] = None
    for internal in INTERNAL_REFS:
        if internal in seen:
            seen[internal] = []
    return seen


def may_see_command(viewer: Viewer, events: Iterable[Mapping]) -> bool:
    """A command's outcome: staff and above (and OPERATOR) every command; anyone else only one it issued,
    i.e. one of its events names the viewer's id as actor. A command with no events is nobody's but staff's."""
    if may_see_internal(viewer):
        return True
    if viewer.id is None:
        return False
    return any(isinstance(e.get("actor"), Mapping) and e["actor"].get("id") == viewer.id for e in events)


def may_use_console(viewer: Viewer) -> bool:
    """DESIGN §12: staff, manager and system read in the console; a client (or no role) has no access."""
    return _staff(viewer)


def may_act_in_console(viewer: Viewer) -> bool:
    """DESIGN §12: manager and system also act in the console (redrive, retry, resend); staff only reads."""
    return viewer.role in CONSOLE_ACTING_ROLES
