"""The one access policy (service/domain/access.py): who may see which order, note, event and command."""

from __future__ import annotations

import pytest

from service.contract.events import EventActor
from service.domain.access import (
    ANONYMOUS,
    OPERATOR,
    Viewer,
    may_act_in_console,
    may_see_actor_name,
    may_see_command,
    may_see_internal,
    may_see_order,
    may_use_console,
    shown,
    tokenless_viewer,
    viewer_of,
)
from service.domain.model import Actor, OrderFacts, Principal
from tests.helpers.events import as_read, changed

ORDER = OrderFacts(order_id=1029, order_type="SO", status_id=2, client_id="c-1")
ENTRY = {"version": 3, "actor": {"id": "u-7", "role": "staff", "client_id": None},
         "note": {"text": "internal", "is_public": False, "file_id": None},
         "removed_reservations": ["R-1"], "removed_coupons": ["SPRING10"]}


def client(client_id: str | None = "c-1", sub: str = "u-1") -> Viewer:
    return viewer_of(Principal(sub=sub, role="client", client_id=client_id))


class TestOrders:
    @pytest.mark.parametrize(("viewer", "expected"), [
        (viewer_of(Principal("s-1", "staff")), True),
        (viewer_of(Principal("m-1", "manager")), True),
        (viewer_of(Principal("y-1", "system")), True),
        (client("c-1"), True),
        (client("c-2"), False),
        (client(None), False),
        (viewer_of(Principal("x-1", "auditor", client_id="c-1")), False),
        (OPERATOR, True),
        (ANONYMOUS, True),
    ])
    def test_who_sees_an_order(self, viewer, expected):
        """R4: staff and above see every order, a client only its own, an unknown role none; no-token readers all."""
        assert may_see_order(viewer, ORDER) is expected

    def test_an_actor_and_its_principal_are_the_same_viewer(self):
        """viewer_of takes the principal's sub and the actor's id alike."""
        assert viewer_of(Actor("u-1", "client", "c-1")) == client("c-1", "u-1")

    def test_the_tokenless_reader_is_named_by_one_knob(self):
        """ORDERSTATUS_READ_API_OPEN makes a tokenless read an operator's; otherwise it is anonymous."""
        assert tokenless_viewer(True) is OPERATOR and tokenless_viewer(False) is ANONYMOUS


class TestNotesAndInternals:
    @pytest.mark.parametrize(("viewer", "expected"), [
        (viewer_of(Principal("s-1", "staff")), True), (viewer_of(Principal("m-1", "manager")), True),
        (OPERATOR, True), (client(), False), (ANONYMOUS, False)])
    def test_private_notes_are_for_staff_and_above(self, viewer, expected):
        """Private notes and internal refs: staff, manager, system and the operator; never a client or anonymous."""
        assert may_see_internal(viewer) is expected

    def test_a_client_sees_a_history_entry_redacted(self):
        """A client: the actor's role only, no private note, no reservation refs or coupon codes; entry untouched."""
        seen = shown(client(), ENTRY)
        assert seen == {"version": 3, "actor": {"role": "staff"}, "note": None,
                        "removed_reservations": [], "removed_coupons": []}
        assert ENTRY["removed_coupons"] == ["SPRING10"]

    @pytest.mark.parametrize(("viewer", "expected"), [
        (client(), {"role": "staff", "name": "Sam"}), (ANONYMOUS, {"role": "staff"}),
        (viewer_of(Principal("s-1", "staff")), {"id": "u-7", "role": "staff", "client_id": None, "name": "Sam"})])
    def test_a_verified_actor_name_is_shown_to_signed_in_viewers_only(self, viewer, expected):
        """The actor's verified name: to a client beside the role (as its email names the actor), to staff with
        the whole actor, never to an anonymous reader; an entry without a name gains none."""
        named = {**ENTRY, "actor": {**ENTRY["actor"], "name": "Sam"}}
        assert shown(viewer, named)["actor"] == expected
        assert "name" not in shown(client(), ENTRY)["actor"]
        assert (may_see_actor_name(client()), may_see_actor_name(OPERATOR), may_see_actor_name(ANONYMOUS)) == (
            True, True, False)

    def test_a_public_note_stays(self):
        """A public note is shown to anyone."""
        public = {**ENTRY, "note": {"text": "on its way", "is_public": True}}
        assert shown(ANONYMOUS, public)["note"] == {"text": "on its way", "is_public": True}

    def test_staff_see_the_record_whole(self):
        """Staff see the record as stored (a copy)."""
        seen = shown(viewer_of(Principal("s-1", "staff")), ENTRY)
        assert seen == ENTRY and seen is not ENTRY

    def test_an_event_without_actor_note_or_refs_is_left_as_it_is(self):
        """Fields a record does not have are not added (a rejection has no note and no refs)."""
        assert shown(client(), {"type": "OrderStatusChangeRejected", "reason": "x"}) == {
            "type": "OrderStatusChangeRejected", "reason": "x"}


class TestCommands:
    EVENTS = [as_read(changed(1029).model_copy(update={"actor": EventActor(id="u-1", role="client", client_id="c-1")}))]

    def test_staff_see_every_command(self):
        """Staff and above see any command's outcome."""
        assert may_see_command(viewer_of(Principal("s-1", "staff")), self.EVENTS)

    def test_a_client_sees_only_the_commands_it_issued(self):
        """By issuer, not by order: the same client under another subject does not see it."""
        assert may_see_command(client("c-1", "u-1"), self.EVENTS)
        assert not may_see_command(client("c-1", "u-2"), self.EVENTS)

    def test_no_events_or_no_id_show_nothing(self):
        """A command without events, or a viewer without an id, is not shown to a non-staff viewer."""
        assert not may_see_command(client(), [])
        assert not may_see_command(ANONYMOUS, self.EVENTS)
        assert not may_see_command(client(), [{"type": "X", "actor": "u-1"}])


class TestConsole:
    @pytest.mark.parametrize(("role", "reads", "acts"), [
        ("client", False, False), ("staff", True, False), ("manager", True, True), ("system", True, True)])
    def test_console_roles(self, role, reads, acts):
        """DESIGN §12: staff reads, manager and system also act, a client has no access."""
        viewer = viewer_of(Principal("p-1", role, client_id="c-1" if role == "client" else None))
        assert may_use_console(viewer) is reads and may_act_in_console(viewer) is acts

    def test_no_signed_in_user_no_console(self):
        """Neither the anonymous nor the bare operator viewer uses the console."""
        assert not may_use_console(ANONYMOUS) and not may_use_console(OPERATOR)
