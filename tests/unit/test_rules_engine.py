"""The pure rules engine (DESIGN §2, R1–R14): `decide`, `availability`, `apply`.

No I/O: a small rule set is built right here, so these tests do not depend on the sample file.

The graph used throughout (SO unless noted; roles on each edge):

    Draft -> Confirmed      staff, manager, system       Draft -> Cancelled      client, staff, manager
    Confirmed -> Cancelled  client, staff, manager       Confirmed -> OnHold     staff, manager
    Confirmed -> Shipped    staff, manager, system       Confirmed -> Archived   manager (Archived is hidden)
    OnHold -> Confirmed     manager                      Shipped -> Invoiced     staff, manager, system
    Invoiced -> Cancelled   manager                      Invoiced -> Completed   staff, manager
    PO: Draft -> Confirmed  staff, manager               PO: Confirmed -> Draft  staff
    PO: Confirmed -> Received staff

Overrides: roles manager and system; targets OnHold, Cancelled, Archived (hidden) are `can_override_to`.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from service.domain.model import (
    Actor,
    Availability,
    Change,
    ChangeRequest,
    NoteInput,
    OrderFacts,
    Reason,
    Rejection,
    RuleSet,
    Status,
    Transition,
)
from service.domain.rules import apply, availability, can_access, decide

# ---------------------------------------------------------------- the rule set of this module

DRAFT, CONFIRMED, ONHOLD, SHIPPED, CANCELLED, INVOICED, COMPLETED, ARCHIVED, RECEIVED = 1, 2, 3, 4, 21, 30, 31, 40, 50
SO_AND_PO = frozenset({"SO", "PO"})
SO = frozenset({"SO"})

STATUSES = (
    Status(DRAFT, "Draft", "Draft", SO_AND_PO, initial=True),
    Status(CONFIRMED, "Confirmed", "Confirmed", SO_AND_PO),
    Status(ONHOLD, "OnHold", "On hold", SO, can_override_to=True),
    Status(SHIPPED, "Shipped", "Shipped", SO),
    Status(CANCELLED, "Cancelled", "Cancelled", SO, cancelled=True, can_override_to=True),
    Status(INVOICED, "Invoiced", "Invoiced", SO, invoiced=True),
    Status(COMPLETED, "Completed", "Completed", SO),
    Status(ARCHIVED, "Archived", "Archived", SO, hidden=True, can_override_to=True),
    Status(RECEIVED, "Received", "Received", frozenset({"PO"})),
)

INTERNAL = frozenset({"staff", "manager", "system"})


def _edge(order_type: str, src: int, dst: int, *roles: str) -> Transition:
    return Transition(order_type, src, dst, frozenset(roles))


TRANSITIONS = (
    _edge("SO", DRAFT, CONFIRMED, "staff", "manager", "system"),
    _edge("SO", DRAFT, CANCELLED, "client", "staff", "manager"),
    _edge("SO", CONFIRMED, CANCELLED, "client", "staff", "manager"),
    _edge("SO", CONFIRMED, ONHOLD, "staff", "manager"),
    _edge("SO", CONFIRMED, SHIPPED, "staff", "manager", "system"),
    _edge("SO", CONFIRMED, ARCHIVED, "manager"),
    _edge("SO", ONHOLD, CONFIRMED, "manager"),
    _edge("SO", SHIPPED, INVOICED, "staff", "manager", "system"),
    _edge("SO", INVOICED, CANCELLED, "manager"),
    _edge("SO", INVOICED, COMPLETED, "staff", "manager"),
    _edge("PO", DRAFT, CONFIRMED, "staff", "manager"),
    _edge("PO", CONFIRMED, DRAFT, "staff"),
    _edge("PO", CONFIRMED, RECEIVED, "staff"),
)

RULES = RuleSet(statuses=STATUSES, transitions=TRANSITIONS, override_roles=frozenset({"manager", "system"}), version=7)
NO_OVERRIDES = dataclasses.replace(RULES, override_roles=frozenset())

CLIENT = Actor("u-1", "client", "c-1")
OTHER_CLIENT = Actor("u-2", "client", "c-2")
ANONYMOUS_CLIENT = Actor("u-3", "client", None)
STAFF = Actor("s-1", "staff")
MANAGER = Actor("m-1", "manager")
SYSTEM = Actor("sys", "system")
STRANGER = Actor("x-1", "guest", "c-1")  # a role the service does not know
ACTORS = {"client": CLIENT, "staff": STAFF, "manager": MANAGER, "system": SYSTEM}


def order(status_id: int = CONFIRMED, **changes) -> OrderFacts:
    """Order 1029 of client c-1 at version 3, no payments, goods out, reservations or coupons unless given."""
    base = OrderFacts(order_id=1029, order_type="SO", status_id=status_id, version=3, client_id="c-1")
    return dataclasses.replace(base, **changes)


def request(status, actor: Actor = STAFF, **kwargs) -> ChangeRequest:
    return ChangeRequest(order_id=1029, status=status, actor=actor, **kwargs)


def status(status_id: int) -> Status:
    found = RULES.status(status_id)
    assert found is not None
    return found


def change_of(decision) -> Change:
    assert isinstance(decision, Change), f"expected a change, got {decision!r}"
    return decision


# ---------------------------------------------------------------- every rejection, one table

REJECTIONS = [
    # R4: access (a hidden order looks exactly like a missing one)
    pytest.param(None, request(CANCELLED, STAFF), Reason.ORDER_NOT_FOUND, id="R4-missing-order-staff"),
    pytest.param(None, request(CANCELLED, CLIENT), Reason.ORDER_NOT_FOUND, id="R4-missing-order-client"),
    pytest.param(order(), request(CANCELLED, OTHER_CLIENT), Reason.ORDER_NOT_FOUND, id="R4-other-clients-order"),
    pytest.param(order(), request(CANCELLED, ANONYMOUS_CLIENT), Reason.ORDER_NOT_FOUND, id="R4-client-without-client-id"),
    pytest.param(order(client_id=None), request(CANCELLED, CLIENT), Reason.ORDER_NOT_FOUND, id="R4-order-without-client"),
    pytest.param(order(), request(CANCELLED, STRANGER), Reason.ORDER_NOT_FOUND, id="R4-unknown-role"),
    pytest.param(order(), request(999, OTHER_CLIENT), Reason.ORDER_NOT_FOUND, id="R4-checked-before-status"),
    # R1: the target exists
    pytest.param(order(), request(999), Reason.STATUS_NOT_FOUND, id="R1-unknown-id"),
    pytest.param(order(), request("Nope"), Reason.STATUS_NOT_FOUND, id="R1-unknown-code"),
    pytest.param(order(), request("999"), Reason.STATUS_NOT_FOUND, id="R1-unknown-digit-string"),
    pytest.param(order(), request("cancelled"), Reason.STATUS_NOT_FOUND, id="R1-codes-are-case-sensitive"),
    pytest.param(order(), request(""), Reason.STATUS_NOT_FOUND, id="R1-empty-string"),
    pytest.param(order(), request("-21"), Reason.STATUS_NOT_FOUND, id="R1-negative-digit-string"),
    pytest.param(order(), request("²"), Reason.STATUS_NOT_FOUND, id="R1-unicode-superscript-digit"),
    pytest.param(order(), request(True), Reason.STATUS_NOT_FOUND, id="R1-bool-is-not-an-id"),
    # R2: available to the order's type
    pytest.param(order(), request(RECEIVED), Reason.STATUS_NOT_AVAILABLE, id="R2-po-status-on-so-by-id"),
    pytest.param(order(), request("Received"), Reason.STATUS_NOT_AVAILABLE, id="R2-po-status-on-so-by-code"),
    pytest.param(
        order(order_type="PO"), request(ONHOLD, MANAGER, override=True), Reason.STATUS_NOT_AVAILABLE,
        id="R2-holds-for-overrides",
    ),
    # R3: not hidden (even with an edge to it, even by override)
    pytest.param(order(), request(ARCHIVED, MANAGER), Reason.STATUS_HIDDEN, id="R3-hidden-despite-edge"),
    pytest.param(order(), request("Archived", MANAGER, override=True), Reason.STATUS_HIDDEN, id="R3-holds-for-overrides"),
    # R14: no change, compare-and-set
    pytest.param(order(), request(CONFIRMED), Reason.NO_CHANGE, id="R14-same-status-by-id"),
    pytest.param(order(), request("Confirmed"), Reason.NO_CHANGE, id="R14-same-status-by-code"),
    pytest.param(order(), request(CONFIRMED, MANAGER, override=True), Reason.NO_CHANGE, id="R14-same-status-override"),
    pytest.param(order(), request(CANCELLED, expected_status="Draft"), Reason.STALE_STATUS, id="R14-stale-by-code"),
    pytest.param(order(), request(CANCELLED, expected_status=DRAFT), Reason.STALE_STATUS, id="R14-stale-by-id"),
    pytest.param(order(), request(CANCELLED, expected_status="1"), Reason.STALE_STATUS, id="R14-stale-by-digits"),
    pytest.param(order(), request(CANCELLED, expected_status="Nope"), Reason.STALE_STATUS, id="R14-unknown-expected"),
    pytest.param(
        order(), request(CONFIRMED, expected_status="Draft"), Reason.STALE_STATUS, id="R14-stale-wins-over-no-change"
    ),
    pytest.param(
        order(), request(ONHOLD, MANAGER, override=True, expected_status=SHIPPED), Reason.STALE_STATUS,
        id="R14-stale-holds-for-overrides",
    ),
    # R5: the graph and its roles
    pytest.param(order(DRAFT), request(SHIPPED), Reason.TRANSITION_NOT_ALLOWED, id="R5-no-edge"),
    pytest.param(order(), request(DRAFT, MANAGER), Reason.TRANSITION_NOT_ALLOWED, id="R5-edges-are-directed"),
    pytest.param(
        order(), request(DRAFT, STAFF), Reason.TRANSITION_NOT_ALLOWED, id="R5-po-edge-does-not-apply-to-so"
    ),
    pytest.param(order(DRAFT), request(CONFIRMED, CLIENT), Reason.ROLE_NOT_PERMITTED, id="R5-client-not-on-edge"),
    pytest.param(order(ONHOLD), request(CONFIRMED, STAFF), Reason.ROLE_NOT_PERMITTED, id="R5-manager-only-edge"),
    pytest.param(order(), request(ONHOLD, SYSTEM), Reason.ROLE_NOT_PERMITTED, id="R5-system-not-on-edge"),
    pytest.param(
        order(INVOICED, payments_total=Decimal("10")), request(CANCELLED, STAFF), Reason.ROLE_NOT_PERMITTED,
        id="R5-role-checked-before-cancel-guards",
    ),
    # R6: cancel guards
    pytest.param(
        order(goods_out_notes=("GON-7",)), request(CANCELLED, CLIENT), Reason.CANCEL_HAS_GOODS_OUT_NOTES,
        id="R6-goods-out-notes",
    ),
    pytest.param(order(INVOICED), request(CANCELLED, MANAGER), Reason.CANCEL_ORDER_INVOICED, id="R6-invoiced"),
    pytest.param(
        order(payments_total=Decimal("25.00")), request(CANCELLED, CLIENT), Reason.CANCEL_HAS_PAYMENTS,
        id="R6-payments",
    ),
    pytest.param(
        order(payments_total=Decimal("-0.01")), request(CANCELLED), Reason.CANCEL_HAS_PAYMENTS,
        id="R6-negative-payments-are-not-zero",
    ),
    pytest.param(
        order(INVOICED, goods_out_notes=("GON-1",), payments_total=Decimal("5")), request(CANCELLED, MANAGER),
        Reason.CANCEL_HAS_GOODS_OUT_NOTES, id="R6-goods-out-checked-first",
    ),
    pytest.param(
        order(INVOICED, payments_total=Decimal("5")), request(CANCELLED, MANAGER), Reason.CANCEL_ORDER_INVOICED,
        id="R6-invoiced-checked-before-payments",
    ),
    pytest.param(
        order(SHIPPED, payments_total=Decimal("5")), request(CANCELLED, MANAGER, override=True),
        Reason.CANCEL_HAS_PAYMENTS, id="R6-holds-for-overrides",
    ),
    pytest.param(
        order(INVOICED), request(CANCELLED, SYSTEM, override=True), Reason.CANCEL_ORDER_INVOICED,
        id="R6-invoiced-holds-for-overrides",
    ),
    # R11: overrides
    pytest.param(order(), request(ONHOLD, STAFF, override=True), Reason.ROLE_NOT_PERMITTED, id="R11-staff-may-not-override"),
    pytest.param(order(), request(CANCELLED, CLIENT, override=True), Reason.ROLE_NOT_PERMITTED, id="R11-client-may-not-override"),
    pytest.param(
        order(), request(SHIPPED, STAFF, override=True), Reason.ROLE_NOT_PERMITTED,
        id="R11-role-checked-before-target-flag",
    ),
    pytest.param(
        order(), request(SHIPPED, MANAGER, override=True), Reason.OVERRIDE_NOT_ALLOWED,
        id="R11-target-not-override-able-despite-edge",
    ),
    pytest.param(
        order(INVOICED), request(COMPLETED, SYSTEM, override=True), Reason.OVERRIDE_NOT_ALLOWED,
        id="R11-target-not-override-able",
    ),
]


class TestRejections:
    @pytest.mark.parametrize(("facts", "req", "reason"), REJECTIONS)
    def test_rejection_reason(self, facts, req, reason):
        """The engine rejects the request with exactly this reason code and a one-line message."""
        decision = decide(RULES, facts, req)
        assert isinstance(decision, Rejection), decision
        assert decision.reason is reason
        assert decision.message and "\n" not in decision.message

    def test_table_covers_every_reason_the_engine_decides(self):
        """Every reason code except the wire/batch/authentication ones (decided outside the engine) appears in the table."""
        covered = {p.values[2] for p in REJECTIONS}
        assert covered == set(Reason) - {Reason.INVALID_COMMAND, Reason.BATCH_TOO_LARGE, Reason.ACTOR_NOT_AUTHENTICATED}

    def test_override_by_role_outside_an_empty_override_roles(self):
        """With no override roles configured, even a manager's override is role_not_permitted (R11)."""
        decision = decide(NO_OVERRIDES, order(), request(ONHOLD, MANAGER, override=True))
        assert isinstance(decision, Rejection) and decision.reason is Reason.ROLE_NOT_PERMITTED

    def test_rejection_carries_only_a_reason_and_a_message(self):
        """R9: a rejection carries only a reason and a message (no note, no change to apply)."""
        facts = order(payments_total=Decimal("9"), reservations=("R-1",), coupons=("C",))
        decision = decide(RULES, facts, request(CANCELLED, CLIENT, note=NoteInput("please")))
        assert isinstance(decision, Rejection)
        assert {f.name for f in dataclasses.fields(decision)} == {"reason", "message"}


# ---------------------------------------------------------------- R4: access


class TestAccess:
    def test_other_clients_order_reported_exactly_like_missing_one(self):
        """R4: a client asking about another client's order gets the very same rejection as for a missing order."""
        missing = decide(RULES, None, request(CANCELLED, OTHER_CLIENT))
        hidden = decide(RULES, order(), request(CANCELLED, OTHER_CLIENT))
        assert hidden == missing
        assert hidden.reason is Reason.ORDER_NOT_FOUND

    def test_not_found_message_does_not_depend_on_order_contents(self):
        """R4: the not-found message reveals nothing of the order (status, client) it hides."""
        a = decide(RULES, order(INVOICED, client_id="c-9"), request("Nope", CLIENT))
        b = decide(RULES, None, request("Nope", CLIENT))
        assert a == b

    @pytest.mark.parametrize(
        ("actor", "client_id", "expected"),
        [
            pytest.param(CLIENT, "c-1", True, id="own-client"),
            pytest.param(OTHER_CLIENT, "c-1", False, id="other-client"),
            pytest.param(ANONYMOUS_CLIENT, None, False, id="client-none-vs-order-none"),
            pytest.param(STAFF, "c-1", True, id="staff"),
            pytest.param(MANAGER, None, True, id="manager-no-client"),
            pytest.param(SYSTEM, "c-2", True, id="system"),
            pytest.param(STRANGER, "c-1", False, id="unknown-role"),
        ],
    )
    def test_can_access(self, actor, client_id, expected):
        """R4: clients see only their own client_id's orders; staff, manager and system see all."""
        assert can_access(actor, order(client_id=client_id)) is expected

    @pytest.mark.parametrize("actor", [STAFF, MANAGER], ids=["staff", "manager"])
    def test_internal_roles_change_any_clients_order(self, actor):
        """R4: staff and manager may change an order that belongs to some client."""
        change = change_of(decide(RULES, order(client_id="c-42"), request(CANCELLED, actor)))
        assert change.to_status.id == CANCELLED

    def test_client_changes_own_order(self):
        """R4+R5: a client may make a client edge on its own order."""
        assert change_of(decide(RULES, order(), request(CANCELLED, CLIENT))).to_status.code == "Cancelled"


# ---------------------------------------------------------------- R1: status references


class TestStatusReferences:
    @pytest.mark.parametrize(
        "ref",
        [
            pytest.param(CANCELLED, id="int-id"),
            pytest.param("Cancelled", id="code"),
            pytest.param("21", id="digit-string"),
            pytest.param(" 21 ", id="digit-string-with-spaces"),
        ],
    )
    def test_target_resolves_by_id_code_and_digits(self, ref):
        """R1: the target status may be given as an id, a code or a string of digits."""
        change = change_of(decide(RULES, order(), request(ref)))
        assert change.to_status == status(CANCELLED)

    @pytest.mark.parametrize(
        "ref", [pytest.param(CONFIRMED, id="id"), pytest.param("Confirmed", id="code"), pytest.param("2", id="digits")]
    )
    def test_expected_status_resolves_by_id_code_and_digits(self, ref):
        """R14: expected_status in any of its three spellings matches the current status."""
        change = change_of(decide(RULES, order(), request(SHIPPED, expected_status=ref)))
        assert change.from_status.id == CONFIRMED

    @pytest.mark.parametrize(
        ("ref", "expected"),
        [
            pytest.param(1, "Draft", id="id"),
            pytest.param("OnHold", "OnHold", id="code"),
            pytest.param("40", "Archived", id="digits"),
            pytest.param(None, None, id="none"),
            pytest.param(False, None, id="bool"),
            pytest.param("4.0", None, id="decimal-string"),
            pytest.param("٣", None, id="non-ascii-digit"),
            pytest.param(12345, None, id="unknown-id"),
        ],
    )
    def test_ruleset_status_lookup(self, ref, expected):
        """RuleSet.status finds by id, code or ASCII digits and returns None (never raises) otherwise."""
        found = RULES.status(ref)
        assert (found.code if found else None) == expected

    def test_ruleset_initial_status_per_type(self):
        """The initial status is looked up per order type; a type without one gives None."""
        assert RULES.initial_status("SO").code == "Draft"
        assert RULES.initial_status("PO").code == "Draft"
        assert RULES.initial_status("XX") is None


# ---------------------------------------------------------------- R5: the graph


class TestGraph:
    @pytest.mark.parametrize(
        ("current", "target", "actor"),
        [
            pytest.param(t.from_id, t.to_id, ACTORS[role], id=f"{t.from_id}->{t.to_id}-{role}")
            for t in TRANSITIONS
            if t.order_type == "SO"
            and not status(t.to_id).hidden  # R3 wins over the edge
            and not (status(t.from_id).invoiced and status(t.to_id).cancelled)  # R6 wins over the edge
            for role in sorted(t.roles)
        ],
    )
    def test_every_so_edge_succeeds_for_each_of_its_roles(self, current, target, actor):
        """R5: each edge of the SO graph is allowed to exactly the roles listed on it."""
        change = change_of(decide(RULES, order(current), request(target, actor)))
        assert (change.from_status.id, change.to_status.id, change.override) == (current, target, False)

    @pytest.mark.parametrize(
        ("current", "target", "role"),
        [
            pytest.param(t.from_id, t.to_id, role, id=f"{t.from_id}->{t.to_id}-{role}")
            for t in TRANSITIONS
            if t.order_type == "SO" and not status(t.to_id).hidden
            for role in sorted({"client", "staff", "manager", "system"} - t.roles)
        ],
    )
    def test_every_so_edge_refuses_roles_not_listed(self, current, target, role):
        """R5: a role missing from an edge gets role_not_permitted."""
        decision = decide(RULES, order(current), request(target, ACTORS[role]))
        assert isinstance(decision, Rejection) and decision.reason is Reason.ROLE_NOT_PERMITTED

    def test_graph_is_per_order_type(self):
        """R5: the PO edge Confirmed -> Draft exists for PO only."""
        po = order(order_type="PO")
        assert change_of(decide(RULES, po, request(DRAFT, STAFF))).to_status.id == DRAFT
        assert decide(RULES, order(), request(DRAFT, STAFF)).reason is Reason.TRANSITION_NOT_ALLOWED

    def test_unknown_current_status_is_reported_not_crashed(self):
        """An order whose status the rules no longer know cannot move normally (no edge) but does not crash."""
        decision = decide(RULES, order(77), request(CONFIRMED, MANAGER))
        assert isinstance(decision, Rejection) and decision.reason is Reason.TRANSITION_NOT_ALLOWED
        assert "77" in decision.message


# ---------------------------------------------------------------- R11: overrides


class TestOverrides:
    @pytest.mark.parametrize(
        ("current", "target", "actor"),
        [
            pytest.param(DRAFT, ONHOLD, MANAGER, id="draft->onhold-manager-no-edge"),
            pytest.param(SHIPPED, ONHOLD, SYSTEM, id="shipped->onhold-system-no-edge"),
            pytest.param(ONHOLD, CANCELLED, MANAGER, id="onhold->cancelled-manager-no-edge"),
            pytest.param(CONFIRMED, ONHOLD, SYSTEM, id="confirmed->onhold-system-not-on-edge-roles"),
            pytest.param(CONFIRMED, CANCELLED, SYSTEM, id="confirmed->cancelled-system-not-on-edge-roles"),
        ],
    )
    def test_override_ignores_the_graph(self, current, target, actor):
        """R11: an override needs no edge and ignores the edge's roles."""
        change = change_of(decide(RULES, order(current), request(target, actor, override=True)))
        assert change.override is True
        assert (change.from_status.id, change.to_status.id) == (current, target)

    def test_override_from_unknown_current_status(self):
        """R11: an order stranded in a status the rules no longer know can be overridden out of it."""
        change = change_of(decide(RULES, order(77), request(ONHOLD, MANAGER, override=True)))
        assert change.from_status.id == 77 and change.to_status.code == "OnHold"

    def test_override_to_cancelled_removes_reservations_and_coupons(self):
        """R11+R7: a successful override cancel has the same side effects as a normal cancel."""
        facts = order(SHIPPED, reservations=("R-1",), coupons=("SPRING10",))
        change = change_of(decide(RULES, facts, request(CANCELLED, MANAGER, override=True)))
        assert change.removed_reservations == ("R-1",) and change.removed_coupons == ("SPRING10",)


# ---------------------------------------------------------------- R6/R7: cancelling


class TestCancel:
    @pytest.mark.parametrize(
        "payments", [Decimal("0"), Decimal("0.00"), Decimal("-0.0000")], ids=["0", "0.00", "negative-zero"]
    )
    def test_cancel_allowed_with_zero_payments(self, payments):
        """R6: payments totalling exactly zero (in any spelling) do not block a cancel."""
        change_of(decide(RULES, order(payments_total=payments), request(CANCELLED, CLIENT)))

    def test_cancel_removes_reservations_and_coupons(self):
        """R7: a successful cancel lists all the order's reservations and coupons for removal."""
        facts = order(reservations=("R-1", "R-2"), coupons=("SPRING10",))
        change = change_of(decide(RULES, facts, request(CANCELLED, CLIENT)))
        assert change.removed_reservations == ("R-1", "R-2")
        assert change.removed_coupons == ("SPRING10",)

    def test_non_cancel_keeps_reservations_and_coupons(self):
        """R7: a change to a status not flagged cancelled removes nothing."""
        facts = order(reservations=("R-1",), coupons=("SPRING10",))
        change = change_of(decide(RULES, facts, request(SHIPPED)))
        assert change.removed_reservations == () and change.removed_coupons == ()

    def test_guards_only_apply_to_cancelled_targets(self):
        """R6: goods-out notes and payments do not block a move to a non-cancelled status."""
        facts = order(goods_out_notes=("GON-1",), payments_total=Decimal("100"))
        assert change_of(decide(RULES, facts, request(SHIPPED))).to_status.id == SHIPPED

    def test_guard_message_names_the_goods_out_notes(self):
        """R6: the goods-out rejection message names the notes that block the cancel."""
        decision = decide(RULES, order(goods_out_notes=("GON-7", "GON-8")), request(CANCELLED))
        assert "GON-7" in decision.message and "GON-8" in decision.message


# ---------------------------------------------------------------- R8: the change and its note


class TestSuccessfulChange:
    def test_change_carries_statuses_version_and_type(self):
        """A successful change goes from the current to the target status at version + 1."""
        change = change_of(decide(RULES, order(version=3), request(SHIPPED, expected_status="Confirmed")))
        assert change.order_id == 1029 and change.order_type == "SO"
        assert change.from_status == status(CONFIRMED) and change.to_status == status(SHIPPED)
        assert change.version == 4
        assert change.override is False

    def test_version_starts_at_one(self):
        """The first change of a freshly imported order (version 0) is version 1."""
        assert change_of(decide(RULES, order(version=0), request(SHIPPED))).version == 1

    @pytest.mark.parametrize(
        "note",
        [
            pytest.param(None, id="no-note"),
            pytest.param(NoteInput(), id="note-without-text"),
            pytest.param(NoteInput(text=""), id="empty-text"),
        ],
    )
    def test_generated_note_text_when_none_given(self, note):
        """R8: without note text the engine writes one naming both statuses and the actor's role (never its
        id, which the note carries into emails); not public by default."""
        change = change_of(decide(RULES, order(), request(SHIPPED, STAFF, note=note)))
        assert change.note.text == "Status changed from Confirmed to Shipped by staff."
        assert change.note.is_public is False
        assert change.note.file_id is None

    def test_generated_note_text_names_a_verified_display_name(self):
        """R8: a display name from a verified token is named with the role."""
        named = Actor("s-1", "staff", name="Sam Staff")
        change = change_of(decide(RULES, order(), request(SHIPPED, named)))
        assert change.note.text == "Status changed from Confirmed to Shipped by Sam Staff (staff)."

    def test_generated_note_text_for_override(self):
        """R8+R11: the generated text of an override says it was overridden."""
        change = change_of(decide(RULES, order(), request(ONHOLD, MANAGER, override=True)))
        assert change.note.text == "Status overridden from Confirmed to On hold by manager."

    def test_given_note_kept_with_flags_and_file(self):
        """R8: the given text, is_public and file_id are kept as they are."""
        note = NoteInput(text="Customer asked to cancel", is_public=True, file_id=28)
        change = change_of(decide(RULES, order(), request(CANCELLED, CLIENT, note=note)))
        assert change.note.as_dict() == {"text": "Customer asked to cancel", "is_public": True, "file_id": 28}

    def test_flags_kept_when_text_is_generated(self):
        """R8: is_public and file_id survive even when the text is generated."""
        change = change_of(decide(RULES, order(), request(SHIPPED, note=NoteInput(is_public=True, file_id=7))))
        assert change.note.is_public is True and change.note.file_id == 7
        assert change.note.text.startswith("Status changed from Confirmed to Shipped")

    def test_is_public_defaults_false_with_text(self):
        """R8: a note with text only is not public."""
        change = change_of(decide(RULES, order(), request(SHIPPED, note=NoteInput(text="internal"))))
        assert change.note.is_public is False and change.note.text == "internal"


# ---------------------------------------------------------------- R13: availability


def _codes(statuses) -> list[str]:
    return [s.code for s in statuses]


class TestAvailability:
    @pytest.mark.parametrize(
        ("facts", "actor", "transitions", "overrides", "can_override"),
        [
            pytest.param(order(), CLIENT, ["Cancelled"], [], False, id="client-confirmed"),
            pytest.param(order(), STAFF, ["OnHold", "Shipped", "Cancelled"], [], False, id="staff-confirmed"),
            pytest.param(
                order(), MANAGER, ["OnHold", "Shipped", "Cancelled"], ["OnHold", "Cancelled"], True,
                id="manager-confirmed",
            ),
            pytest.param(order(), SYSTEM, ["Shipped"], ["OnHold", "Cancelled"], True, id="system-confirmed"),
            pytest.param(
                order(payments_total=Decimal("1")), MANAGER, ["OnHold", "Shipped"], ["OnHold"], True,
                id="manager-cancel-blocked-by-payments",
            ),
            pytest.param(order(ONHOLD), STAFF, [], [], False, id="staff-manager-only-edge"),
            pytest.param(order(ONHOLD), MANAGER, ["Confirmed"], ["Cancelled"], True, id="manager-onhold"),
            pytest.param(order(INVOICED), MANAGER, ["Completed"], ["OnHold"], True, id="manager-invoiced"),
            pytest.param(order(DRAFT, order_type="PO"), MANAGER, ["Confirmed"], [], True, id="po-no-override-targets"),
            pytest.param(order(DRAFT), CLIENT, ["Cancelled"], [], False, id="client-draft"),
        ],
    )
    def test_available_next_statuses(self, facts, actor, transitions, overrides, can_override):
        """R13: transitions and overrides list exactly the statuses this actor could move the order to."""
        result = availability(RULES, facts, actor)
        assert isinstance(result, Availability)
        assert result.current == status(facts.status_id)
        assert _codes(result.transitions) == transitions
        assert _codes(result.overrides) == overrides
        assert result.can_override is can_override

    @pytest.mark.parametrize(
        ("facts", "actor"),
        [
            pytest.param(None, MANAGER, id="missing-order"),
            pytest.param(order(), OTHER_CLIENT, id="other-clients-order"),
            pytest.param(order(), ANONYMOUS_CLIENT, id="client-without-client-id"),
        ],
    )
    def test_no_availability_for_orders_the_actor_cannot_see(self, facts, actor):
        """R13+R4: an order the actor may not see has no availability at all (None, like a missing order)."""
        assert availability(RULES, facts, actor) is None

    @pytest.mark.parametrize("role", sorted(ACTORS))
    @pytest.mark.parametrize("current", [s.id for s in STATUSES if "SO" in s.order_types])
    def test_availability_agrees_with_decide(self, current, role):
        """R13: a status is offered if and only if `decide` would accept that change for this role."""
        facts = order(current)
        actor = ACTORS[role]
        result = availability(RULES, facts, actor)
        for candidate in RULES.statuses_for("SO"):
            normal = isinstance(decide(RULES, facts, request(candidate.id, actor)), Change)
            forced = isinstance(decide(RULES, facts, request(candidate.id, actor, override=True)), Change)
            assert (candidate in result.transitions) is normal, candidate.code
            assert (candidate in result.overrides) is forced, candidate.code
        if role not in RULES.override_roles:
            assert result.overrides == () and result.can_override is False

    def test_unknown_current_status_still_answers(self):
        """R13: an order in a status the rules no longer know reports it by id and offers overrides only."""
        result = availability(RULES, order(77), MANAGER)
        assert result.current.id == 77
        assert result.transitions == ()
        assert _codes(result.overrides) == ["OnHold", "Cancelled"]


# ---------------------------------------------------------------- apply (batches decide items in turn)


class TestApply:
    def test_apply_cancel(self):
        """apply moves the status and version and drops the removed reservations and coupons, keeping other facts."""
        facts = order(reservations=("R-1",), coupons=("C-1",), goods_out_notes=(), payments_total=Decimal("0"))
        change = change_of(decide(RULES, facts, request(CANCELLED, CLIENT)))
        after = apply(facts, change)
        assert after == dataclasses.replace(facts, status_id=CANCELLED, version=4, reservations=(), coupons=())

    def test_apply_non_cancel_keeps_facts(self):
        """apply of a normal change only moves status and version."""
        facts = order(reservations=("R-1",), coupons=("C-1",), goods_out_notes=("G",), payments_total=Decimal("3"))
        after = apply(facts, change_of(decide(RULES, facts, request(SHIPPED))))
        assert after == dataclasses.replace(facts, status_id=SHIPPED, version=4)

    def test_apply_removes_only_what_the_change_lists(self):
        """apply removes exactly the listed reservations and coupons, not others added since."""
        facts = order(reservations=("R-1",), coupons=("C-1",))
        change = change_of(decide(RULES, facts, request(CANCELLED, CLIENT)))
        richer = dataclasses.replace(facts, reservations=("R-1", "R-9"), coupons=("C-1", "C-9"))
        after = apply(richer, change)
        assert after.reservations == ("R-9",) and after.coupons == ("C-9",)

    def test_items_on_one_order_decide_in_turn(self):
        """R12: a batch deciding several items for one order sees each earlier item's effect via apply."""
        facts = order(reservations=("R-1",))
        first = change_of(decide(RULES, facts, request(ONHOLD, MANAGER, override=True)))
        facts = apply(facts, first)
        again = decide(RULES, facts, request(ONHOLD, MANAGER, override=True))
        assert isinstance(again, Rejection) and again.reason is Reason.NO_CHANGE
        second = change_of(decide(RULES, facts, request(CANCELLED, MANAGER, override=True)))
        assert (first.version, second.version) == (4, 5)
        assert second.from_status.code == "OnHold"
        assert second.removed_reservations == ("R-1",)
        assert apply(facts, second).reservations == ()
