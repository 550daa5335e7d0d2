"""A trail of HTTP requests (issue 23, item 7): one access log line per request, never the token, and refused
tokens counted by reason — the middleware every process's HTTP server runs, on a real aiohttp server."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from service.runtime.health import note_auth_failure, note_principal, request_metrics, serve
from service.runtime.metrics import Metrics

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ1LTcifQ.c2lnbmF0dXJl"


async def _who(request: web.Request) -> web.Response:
    header = request.headers.get("Authorization")
    if header == f"Bearer {TOKEN}":
        note_principal(request, "u-7")
        return web.json_response({"ok": True})
    note_auth_failure(request, {None: "no bearer token", "Bearer expired": "the actor token has expired",
                                "Bearer forged": "the actor token's signature does not verify with any key",
                                "Bearer junk": "the actor token is not a JWT"}.get(header, "odd claims"))
    return web.json_response({"reason": "actor_not_authenticated"}, status=401)


@pytest.fixture
async def server():
    metrics = Metrics("gateway")
    app = web.Application(middlewares=[request_metrics(metrics)])
    runner = await serve(app, "127.0.0.1", 0, [("GET", "/orders/{order_id}/who", _who)])
    port = runner.addresses[0][1]
    try:
        yield metrics, port
    finally:
        await runner.cleanup()


async def _get(port: int, path: str, authorization: str | None = None) -> int:
    headers = {"Authorization": authorization} if authorization else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
            return response.status


class TestAccessLog:
    async def test_one_line_per_request_with_route_status_principal_and_duration(self, server):
        """Each request logs method, route template, status, principal and duration; the token and raw path never."""
        _, port = server
        with capture_logs() as logs:
            assert await _get(port, "/orders/77/who", f"Bearer {TOKEN}") == 200
            assert await _get(port, "/orders/78/who", "Bearer forged") == 401
        lines = [entry for entry in logs if entry["event"] == "http request"]
        assert len(lines) == 2
        first, second = lines
        assert (first["method"], first["route"], first["status"], first["principal"]) == (
            "GET", "/orders/{order_id}/who", 200, "u-7")
        assert second["status"] == 401 and second["principal"] is None and second["auth_failure"] == "bad_signature"
        assert all(isinstance(line["duration_ms"], float) for line in lines)
        assert TOKEN not in repr(logs) and "/orders/77" not in repr(logs)


class TestAuthFailureCounters:
    async def test_refused_tokens_are_counted_by_reason(self, server):
        """Missing, expired, forged, malformed and otherwise rejected tokens each count under their reason."""
        metrics, port = server
        for header in (None, None, "Bearer expired", "Bearer forged", "Bearer junk", "Bearer other"):
            assert await _get(port, "/orders/1/who", header) == 401
        assert await _get(port, "/orders/1/who", f"Bearer {TOKEN}") == 200
        counts = {reason: metrics.registry.get_sample_value("orderstatus_auth_failures_total",
                                                            {"service": "gateway", "reason": reason})
                  for reason in ("missing", "expired", "bad_signature", "malformed", "rejected")}
        assert counts == {"missing": 2.0, "expired": 1.0, "bad_signature": 1.0, "malformed": 1.0, "rejected": 1.0}
