"""The read API's views in memory (`service.domain.read_views.ReadViews`), over the state `FakeUnitOfWork` commits to a
`FakeDatabase` as the Postgres views read what `PostgresUnitOfWork` commits. It passes the same contract suite as
`PostgresReadViews` (`tests/helpers/read_views_contract.py`, run by `tests/unit/test_fake_read_views.py`), in
the manner of eventsourcing's per-backend test case. The decisions (R4, R13, who sees what) are the domain's."""

from __future__ import annotations

from service.domain.access import Viewer, may_see_order, shown
from service.domain.events import StatusChanged
from service.domain.model import Actor, RuleSet
from service.domain.rules import availability
from tests.helpers.fakes import FakeDatabase


def entry(change: StatusChanged) -> dict:
    """A history note as the read API returns it."""
    return {
        "version": change.version,
        "event_id": str(change.event_id),
        "command_id": change.command_id,
        "from_status": change.from_status.as_dict(),
        "to_status": change.to_status.as_dict(),
        "override": change.override,
        "actor": change.actor.as_recorded_dict(),
        "note": change.note.as_dict(),
        "removed_reservations": list(change.removed_reservations),
        "removed_coupons": list(change.removed_coupons),
        "occurred_at": change.occurred_at.isoformat(),
    }


class FakeReadViews:
    """Reads the fake database's committed rules, orders and history notes."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    async def rules(self) -> RuleSet | None:
        return self.db.rules

    async def statuses(self, order_type: str | None = None) -> list[dict]:
        if self.db.rules is None:
            return []
        return [
            {"id": s.id, "code": s.code, "name": s.name, "order_types": sorted(s.order_types), "initial": s.initial,
             "cancelled": s.cancelled, "invoiced": s.invoiced, "hidden": s.hidden,
             "can_override_to": s.can_override_to}
            for s in self.db.rules.statuses_for(order_type)
        ]

    async def transitions(self, order_id: int, actor: Actor) -> dict | None:
        order = self.db.orders.get(order_id)
        if self.db.rules is None or order is None:
            return None
        found = availability(self.db.rules, order, actor)
        if found is None:
            return None
        return {
            "order_id": order_id, "order_type": order.order_type, "version": order.version,
            "current": found.current.ref(),
            "transitions": [s.ref() for s in found.transitions],
            "overrides": [s.ref() for s in found.overrides],
            "can_change_status": bool(found.transitions),
            "can_override_status": found.can_override and bool(found.overrides),
        }

    async def history(self, order_id: int, viewer: Viewer, *, after_version: int = 0,
                      limit: int | None = None) -> dict | None:
        order = self.db.orders.get(order_id)
        if order is None or not may_see_order(viewer, order):
            return None
        current = self.db.rules.status(order.status_id) if self.db.rules else None
        notes = sorted((c for c in self.db.history if c.order_id == order_id and c.version > after_version),
                       key=lambda c: c.version)
        page = notes if limit is None else notes[:limit]
        found = {
            "order_id": order_id, "order_type": order.order_type, "version": order.version,
            "status": current.ref() if current else {"id": order.status_id},
            "history": [shown(viewer, entry(c)) for c in page],
        }
        if limit is not None:
            found["next_cursor"] = str(page[-1].version) if len(notes) > limit else None
        return found
