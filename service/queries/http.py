"""The worker's HTTP read API (DESIGN §6.3) over the views."""

from __future__ import annotations

from aiohttp import web

from service.queries import views
from service.domain.model import ROLES, Actor


def routes(pool) -> list:
    def order_id_of(request: web.Request) -> int:
        try:
            value = int(request.match_info["order_id"])
        except ValueError:
            raise web.HTTPBadRequest(text='{"error": "order id must be an integer"}', content_type="application/json")
        return value

    async def get_statuses(request: web.Request) -> web.Response:
        async with pool.acquire() as conn:
            return web.json_response(await views.statuses(conn, request.query.get("order_type")))

    async def get_transitions(request: web.Request) -> web.Response:
        order_id = order_id_of(request)
        role = request.query.get("role")
        if role not in ROLES:
            return web.json_response({"error": f"role must be one of {sorted(ROLES)}"}, status=400)
        actor = Actor(id=request.query.get("actor_id", "http"), role=role, client_id=request.query.get("client_id"))
        async with pool.acquire() as conn:
            found = await views.transitions(conn, order_id, actor)
        if found is None:
            return web.json_response({"error": "order_not_found"}, status=404)
        return web.json_response(found)

    async def get_history(request: web.Request) -> web.Response:
        order_id = order_id_of(request)
        async with pool.acquire() as conn:
            found = await views.history(conn, order_id)
        if found is None:
            return web.json_response({"error": "order_not_found"}, status=404)
        return web.json_response(found)

    return [
        ("GET", "/statuses", get_statuses),
        ("GET", "/orders/{order_id}/status/transitions", get_transitions),
        ("GET", "/orders/{order_id}/history", get_history),
    ]
