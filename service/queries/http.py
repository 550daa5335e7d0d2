"""The worker's HTTP read API (DESIGN §6.3, §11) over the read views (`service.domain.read_views.ReadViews`, which
the entrypoint builds and hands in: Postgres in production, the fake over the fake database in the unit tests).

A bearer token, whenever one is presented and keys are configured, is verified (a bad one is a 401
with a human message, in every mode) and its principal is the actor — never a query parameter — so
a client sees only its own orders (another client's order looks missing, R4) and only public notes,
and `transitions` needs no `?role=`. With `ORDERSTATUS_ACTOR_AUTH=required` every route needs a
token; with `optional` or `off` a request without one is served as before: `role`/`client_id`
query parameters name the actor of `transitions` (first-wave deployments, the dev stack)."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from service.domain.access import tokenless_viewer, viewer_of
from service.domain.model import ROLES, Actor, Principal
from service.domain.read_views import ReadViews
from service.contract.commands import BIGINT_MAX, order_id_in_range
from service.runtime.auth import NotAuthenticated
from service.runtime.health import note_auth_failure, note_principal

# the request's Authorization header value -> the principal, or raises with why; None: auth is off
Authenticate = Callable[[str | None], Principal] | None


def _error(status: int, reason: str, message: str, **headers) -> web.Response:
    return web.json_response({"reason": reason, "message": message}, status=status, headers=headers or None)


HISTORY_PAGE_MAX = 1000  # entries per page of GET /orders/{id}/history (and the page without ?limit=)


def routes(read_views: ReadViews, authenticate: Authenticate = None, token_required: bool = True,
           open_reads: bool = False) -> list:
    """`open_reads` (ORDERSTATUS_READ_API_OPEN, a dev setup only): a request without a token sees private notes
    and change actors; otherwise it sees an order's history as a client does. The rules come through
    `read_views` (in production one `RulesCache` for these routes, read again only when their version moved)."""

    def order_id_of(request: web.Request) -> int:
        order_id = order_id_in_range(request.match_info["order_id"])
        if order_id is None:
            raise web.HTTPUnprocessableEntity(
                text=json.dumps({"reason": "invalid_request",
                                 "message": f"the order id must be an integer from 1 to {BIGINT_MAX}"}),
                content_type="application/json")
        return order_id

    def page_of(request: web.Request) -> tuple[int, int]:
        """(after_version, limit) from ?cursor= (the next_cursor of the page before) and ?limit= (1..1000)."""
        limit_text, cursor_text = request.query.get("limit", str(HISTORY_PAGE_MAX)), request.query.get("cursor", "0")
        limit = int(limit_text) if limit_text.isascii() and limit_text.isdigit() and len(limit_text) < 6 else 0
        after = (int(cursor_text) if cursor_text.isascii() and cursor_text.isdigit() and len(cursor_text) < 19
                 else -1)
        if not 1 <= limit <= HISTORY_PAGE_MAX or after < 0:
            raise web.HTTPUnprocessableEntity(
                text=json.dumps({"reason": "invalid_request", "message": f"limit must be 1 to {HISTORY_PAGE_MAX} "
                                 "and cursor a next_cursor this API returned"}),
                content_type="application/json")
        return after, limit

    def principal_of(request: web.Request) -> Principal | None:
        """The verified caller; None when no token is presented and none is required (or there are no keys);
        a 401 for a bad token, or for none when one is required."""
        if authenticate is None:
            return None
        if not token_required and not request.headers.get("Authorization"):
            return None
        try:
            principal = authenticate(request.headers.get("Authorization"))
            note_principal(request, principal.sub)
            return principal
        except NotAuthenticated as exc:
            why = str(exc)
        except Exception:  # anything a hostile header provokes is a refusal too, never a 500
            why = "the bearer token cannot be read"
        note_auth_failure(request, why)
        raise web.HTTPUnauthorized(
            text=json.dumps({"reason": "actor_not_authenticated", "message": why}),
            content_type="application/json", headers={"WWW-Authenticate": 'Bearer realm="orderstatus"'},
        )

    async def get_statuses(request: web.Request) -> web.Response:
        principal_of(request)
        return web.json_response(await read_views.statuses(request.query.get("order_type")))

    async def get_transitions(request: web.Request) -> web.Response:
        order_id = order_id_of(request)
        principal = principal_of(request)
        if principal is not None:
            actor = principal.actor()
        else:
            role = request.query.get("role")
            if role not in ROLES:
                return _error(400, "invalid_request", f"role must be one of {', '.join(ROLES)}")
            actor = Actor(id=request.query.get("actor_id", "http"), role=role, client_id=request.query.get("client_id"))
        found = await read_views.transitions(order_id, actor)
        if found is None:
            return _error(404, "order_not_found", f"Order {order_id} does not exist or you do not have access to it.")
        return web.json_response(found)

    async def get_history(request: web.Request) -> web.Response:
        order_id = order_id_of(request)
        after, limit = page_of(request)
        principal = principal_of(request)
        # no token: every order, as a client sees it — unless ORDERSTATUS_READ_API_OPEN (a dev setup) opens it
        viewer = viewer_of(principal) if principal is not None else tokenless_viewer(open_reads)
        found = await read_views.history(order_id, viewer, after_version=after, limit=limit)
        if found is None:
            return _error(404, "order_not_found", f"Order {order_id} does not exist or you do not have access to it.")
        return web.json_response(found)

    return [
        ("GET", "/statuses", get_statuses),
        ("GET", "/orders/{order_id}/status/transitions", get_transitions),
        ("GET", "/orders/{order_id}/history", get_history),
    ]
