"""The routes are declared twice, in the routers and in contract/openapi.py: the two must agree."""

from __future__ import annotations

import re

from aiohttp import web

from service.contract.commands import InputLimits
from service.contract.openapi import openapi_document
from service.gateway.app import Gateway
from service.queries.http import routes as read_api_routes

PARAMETER = re.compile(r"\{[^}]*\}")


def shape(path: str) -> str:
    """The path with each parameter's name left out ({order_id} and {orderId} are one route)."""
    return PARAMETER.sub("{}", path)


def router_table(routes: list) -> set[tuple[str, str]]:
    """(method, path) of each route once an aiohttp router holds it (the path as the router reads it)."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    return {(route.method, shape(route.resource.canonical)) for route in app.router.routes() if route.method != "HEAD"}


def documented(tag: str) -> set[tuple[str, str]]:
    """(method, path) of each operation of the document with this tag."""
    return {(method.upper(), shape(path)) for path, operations in openapi_document()["paths"].items()
            for method, operation in operations.items() if tag in operation.get("tags", [])}


def gateway() -> Gateway:
    """A gateway with no database, broker or keys: its route table needs none."""
    return Gateway(records=None, read_views=None, producer=None, tail=None, authenticate=lambda header: None,
                   commands_topic="commands", wait_s=1, limits=InputLimits(1_048_576, 1000), sign_command=None)


DOCS_PATHS = {"/openapi.json", "/docs", "/docs/openapi-3.0.json", "/docs/init.js", "/docs/assets/{}"}


class TestRoutesMatchTheDocument:
    def test_gateway_routes_are_the_documented_gateway_operations(self):
        """Each gateway route (its own docs aside) is a documented gateway operation, and each of those a route."""
        table = router_table(gateway().routes())
        assert {path for _, path in table} >= DOCS_PATHS, "the docs routes moved: update DOCS_PATHS"
        api = {(method, path) for method, path in table if path not in DOCS_PATHS}
        assert api == documented("gateway")
        assert len(api) == 5

    def test_read_api_routes_are_the_documented_read_operations(self):
        """Each route of the worker's read API is a documented read-API operation, and each of those a route."""
        table = router_table(read_api_routes(None))
        assert table == documented("read API")
        assert len(table) == 3

    def test_a_missing_or_extra_route_is_seen(self):
        """Negative control: a route the document lacks, or a method changed, makes the tables differ."""
        routes = gateway().routes()
        extra = [*routes, ("DELETE", "/commands/{command_id}", routes[0][2])]
        changed = [("POST" if path == "/commands/{command_id}" else method, path, handler)
                   for method, path, handler in routes]
        for table in (router_table(extra), router_table(changed)):
            assert {(m, p) for m, p in table if p not in DOCS_PATHS} != documented("gateway")
