"""One contract suite of the read API's views (`service.domain.read_views.ReadViews`), run against every
implementation as eventsourcing runs one abstract test case per backend: `tests/unit/test_fake_read_views.py` runs
it against the in-memory views over the fake database, `tests/integration/test_postgres_read_views.py` against
`PostgresReadViews` on a real Postgres. A subclass provides a `backend` fixture: the views, seeding, and the
unit of work of the same backend to write through. The views read what that other port committed, so views that
echo or invent state fail the suite.

What the read API promises (DESIGN §6.3): the statuses of the rules in force; R13 for one order and actor, None for
an order the actor may not see (R4); the history in version order, paged by version with `next_cursor`, and shown
to a client without private notes, full actors or internal refs."""

from __future__ import annotations

from typing import Protocol

from service.domain.access import ANONYMOUS, OPERATOR, Viewer
from service.domain.events import StatusChanged, event_id_for
from service.domain.model import Actor, Note
from service.domain.read_views import ReadViews
from service.worker.ports import UnitOfWork
from tests.helpers.contract_suite import SeededContractSuite
from tests.helpers.unit_of_work_contract import CONFIRMED, FREE, MANAGER, MISSING, NOW, ON_HOLD, ORDERS, PAID

CLIENT = Actor("c-1", "client", "c-1")  # FREE's client
STRANGER = Actor("c-2", "client", "c-2")


class Backend(Protocol):
    """What a concrete suite provides: the views, seeding, and a unit of work on the same state."""

    views: ReadViews

    async def seed(self, orders: list[dict]) -> None:
        """Load the sample rules and import these orders (orders-file format, DESIGN §5.2)."""

    def unit_of_work(self) -> UnitOfWork: ...


def change(command_id: str, version: int, before, after, note: Note, removed: tuple[str, ...] = (),
           actor: Actor = MANAGER) -> StatusChanged:
    """One change of FREE (by the manager unless told)."""
    return StatusChanged(
        event_id=event_id_for(command_id, 0), command_id=command_id, order_id=FREE, order_type="SO", version=version,
        from_status=before.label(), to_status=after.label(), override=False, notify=False, actor=actor, note=note,
        removed_reservations=removed, removed_coupons=(), occurred_at=NOW,
    )


async def commit(backend: Backend, *changes: StatusChanged) -> None:
    """Apply the changes through the backend's unit of work, one command each."""
    for applied in changes:
        async with backend.unit_of_work() as uow:
            await uow.claim([(applied.command_id, "ChangeOrderStatus", "commands:0:0")])
            await uow.lock_orders([applied.order_id])
            uow.add(applied.command_id, "applied", [applied], [])
            await uow.commit()


HOLD = change("hold", 1, CONFIRMED, ON_HOLD, Note("waiting for the client", is_public=True), removed=("R-1",))
RELEASE = change("release", 2, ON_HOLD, CONFIRMED, Note("checked stock privately"))
# the manager's verified display name (only a verified token gives an actor one, DESIGN §11)
NAMED_HOLD = change("named-hold", 1, CONFIRMED, ON_HOLD, Note("held", is_public=True),
                    actor=Actor(MANAGER.id, MANAGER.role, MANAGER.client_id, name="Mia"))


def expected_entry(applied: StatusChanged) -> dict:
    """A history entry as an operator sees it."""
    return {
        "version": applied.version, "event_id": str(applied.event_id), "command_id": applied.command_id,
        "from_status": applied.from_status.as_dict(), "to_status": applied.to_status.as_dict(),
        "override": False, "actor": {"id": "m-1", "role": "manager", "client_id": None},
        "note": applied.note.as_dict(), "removed_reservations": list(applied.removed_reservations),
        "removed_coupons": [], "occurred_at": "2026-01-02T03:04:05+00:00",
    }


def codes(statuses: list[dict]) -> list[str]:
    return [s["code"] for s in statuses]


class ReadViewsContract(SeededContractSuite):
    """The behaviour every implementation of the read views keeps."""

    orders = ORDERS

    async def test_no_statuses_before_rules_are_loaded(self, backend):
        """Before any rules are loaded there is no rule set, the statuses are an empty list, and no order has
        transitions."""
        assert await backend.views.rules() is None
        assert await backend.views.statuses() == []
        assert await backend.views.transitions(FREE, MANAGER) is None

    async def test_statuses_of_an_order_type(self, seeded):
        """The sample rules' statuses of SO, in order, each with its full shape; all types give more."""
        found = await seeded.views.statuses("SO")
        assert codes(found) == ["Draft", "Confirmed", "PendingWaitingAllStock", "OnHold", "ReadyToShip",
                                "Dispatched", "CourierClaim", "CancelledByClient", "Invoiced", "Completed",
                                "Archived"]
        assert found[0] == {"id": 1, "code": "Draft", "name": "Draft", "order_types": ["PC", "PO", "SC", "SO"],
                            "initial": True, "cancelled": False, "invoiced": False, "hidden": False,
                            "can_override_to": False}
        assert len(await seeded.views.statuses()) == 23

    async def test_the_rules_are_those_the_views_read(self, seeded):
        """The rule set in force: the statuses the views list (ids, codes, in order), its transitions and its
        override roles as loaded."""
        rules = await seeded.views.rules()
        assert [(s.id, s.code) for s in rules.statuses] == [(s["id"], s["code"]) for s in await seeded.views.statuses()]
        assert rules.override_roles == {"manager", "system"}
        assert any(t.order_type == "SO" and "staff" in t.roles for t in rules.transitions)

    async def test_transitions_of_an_order_for_a_manager(self, seeded):
        """R13 for the manager on a confirmed order: its current status, the moves and the overrides."""
        found = await seeded.views.transitions(FREE, MANAGER)
        assert (found["order_id"], found["order_type"], found["version"]) == (FREE, "SO", 0)
        assert found["current"] == CONFIRMED.ref()
        assert codes(found["transitions"]) == ["PendingWaitingAllStock", "OnHold", "ReadyToShip", "CancelledByClient"]
        assert codes(found["overrides"]) == ["OnHold", "CourierClaim", "CancelledByClient", "Completed"]
        assert (found["can_change_status"], found["can_override_status"]) == (True, True)

    async def test_transitions_follow_committed_changes(self, seeded):
        """After a committed change the order's version and current status are the new ones."""
        await commit(seeded, HOLD)
        found = await seeded.views.transitions(FREE, MANAGER)
        assert (found["version"], found["current"]) == (1, ON_HOLD.ref())
        assert "OnHold" not in codes(found["transitions"])

    async def test_transitions_for_clients(self, seeded):
        """The order's client may only cancel; another client, or any order that does not exist, gets None (R4)."""
        mine = await seeded.views.transitions(FREE, CLIENT)
        assert codes(mine["transitions"]) == ["CancelledByClient"]
        assert (mine["overrides"], mine["can_override_status"]) == ([], False)
        assert await seeded.views.transitions(FREE, STRANGER) is None
        assert await seeded.views.transitions(MISSING, MANAGER) is None

    async def test_history_of_an_order_without_changes(self, seeded):
        """An imported order has an empty history at version 0 with its current status."""
        assert await seeded.views.history(PAID, OPERATOR) == {
            "order_id": PAID, "order_type": "SO", "version": 0, "status": CONFIRMED.ref(), "history": []}

    async def test_history_shows_committed_changes_in_version_order(self, seeded):
        """The operator sees every committed change, whole, in version order, and the order's current state."""
        await commit(seeded, HOLD, RELEASE)
        assert await seeded.views.history(FREE, OPERATOR) == {
            "order_id": FREE, "order_type": "SO", "version": 2, "status": CONFIRMED.ref(),
            "history": [expected_entry(HOLD), expected_entry(RELEASE)],
        }

    async def test_history_pages_by_version(self, seeded):
        """With a limit the page ends at `next_cursor`; the page after it is the last (cursor None)."""
        await commit(seeded, HOLD, RELEASE)
        first = await seeded.views.history(FREE, OPERATOR, limit=1)
        assert ([e["version"] for e in first["history"]], first["next_cursor"]) == ([1], "1")
        last = await seeded.views.history(FREE, OPERATOR, after_version=1, limit=1)
        assert ([e["version"] for e in last["history"]], last["next_cursor"]) == ([2], None)
        assert (await seeded.views.history(FREE, OPERATOR, after_version=2, limit=5))["history"] == []

    async def test_a_client_sees_its_history_without_internals(self, seeded):
        """The order's client sees actors as roles, public notes only, and no removed reservations."""
        await commit(seeded, HOLD, RELEASE)
        found = await seeded.views.history(FREE, Viewer(role="client", id="c-1", client_id="c-1"))
        assert [e["actor"] for e in found["history"]] == [{"role": "manager"}, {"role": "manager"}]
        assert [e["note"] for e in found["history"]] == [HOLD.note.as_dict(), None]
        assert [e["removed_reservations"] for e in found["history"]] == [[], []]

    async def test_history_names_an_actor_with_a_verified_name(self, seeded):
        """A change by an actor with a verified name keeps it in `actor.name` (the operator sees the whole actor,
        the order's client its role and name, an anonymous reader its role); a change without one has no name."""
        await commit(seeded, NAMED_HOLD, RELEASE)
        whole = (await seeded.views.history(FREE, OPERATOR))["history"]
        assert [e["actor"] for e in whole] == [{"id": "m-1", "role": "manager", "client_id": None, "name": "Mia"},
                                               {"id": "m-1", "role": "manager", "client_id": None}]
        mine = await seeded.views.history(FREE, Viewer(role="client", id="c-1", client_id="c-1"))
        assert [e["actor"] for e in mine["history"]] == [{"role": "manager", "name": "Mia"}, {"role": "manager"}]
        anonymous = await seeded.views.history(FREE, ANONYMOUS)
        assert [e["actor"] for e in anonymous["history"]] == [{"role": "manager"}, {"role": "manager"}]

    async def test_history_is_none_for_who_may_not_see_the_order(self, seeded):
        """Another client's order, and an order that does not exist, have no history (R4)."""
        await commit(seeded, HOLD)
        assert await seeded.views.history(FREE, Viewer(role="client", id="c-2", client_id="c-2")) is None
        assert await seeded.views.history(MISSING, OPERATOR) is None
        assert (await seeded.views.history(FREE, ANONYMOUS))["history"][0]["actor"] == {"role": "manager"}
