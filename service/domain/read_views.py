"""The port every face that shows orders reads through — the read API (`queries/http.py`), the operator console's
order page (`console/app.py`) and the gateway's transitions route (`gateway/app.py`): Postgres in production
(`adapters/postgres/views.PostgresReadViews`), an in-memory fake over the fake database in the tests
(`tests/helpers/fake_read_views.py`); both pass one contract suite (`tests/helpers/read_views_contract.py`),
eventsourcing's per-backend test case. It sits in the domain, below the apps, because three apps that may not
import each other share it (DESIGN §10); it is a Protocol over domain types, stdlib only."""

from __future__ import annotations

from typing import Protocol

from service.domain.access import Viewer
from service.domain.model import Actor, RuleSet


class ReadViews(Protocol):
    """The read side's three views, as JSON-ready dicts (DESIGN §6.3), and the rule set they are read with. Who
    sees what is `service.domain.access`'s."""

    async def rules(self) -> RuleSet | None:
        """The rules in force (None before any are loaded), through the face's one rules cache: the console's
        rules page and order diagram read what the views read, and a `rules load` shows at the next read."""

    async def statuses(self, order_type: str | None = None) -> list[dict]:
        """The statuses of the rules in force (of one order type when given); [] before any rules are loaded."""

    async def transitions(self, order_id: int, actor: Actor) -> dict | None:
        """R13 for one order and actor; None when the order does not exist for this actor (R4)."""

    async def history(self, order_id: int, viewer: Viewer, *, after_version: int = 0,
                      limit: int | None = None) -> dict | None:
        """The order's changes and notes as `viewer` may see them, paged when `limit` is given (`next_cursor`);
        None when there is no such order for `viewer`."""
