"""What one caller may take of a gateway replica (issue 23, item 5), on a real aiohttp server: bodies capped per
route before parsing (413), bodies that trickle cut off (408), requests in flight capped per replica and per
principal (429 with Retry-After). Each refusal comes before the database or the broker is used, so the gateway
here has neither."""

from __future__ import annotations

import asyncio
import inspect
import json

import aiohttp
import pytest
from aiohttp import web

from service.contract.commands import InputLimits
from service.domain.model import Principal
from service.gateway.app import Gateway
from service.gateway.limits import CHANGE_BODY_MAX, InFlight, override_body_max
from service.runtime.auth import NotAuthenticated
from service.runtime.health import serve

CHANGE = "/api/orders/1029/status"


def _authenticate(header: str | None) -> Principal:
    if not header or not header.startswith("Bearer "):
        raise NotAuthenticated("no bearer token")
    return Principal(sub=header.removeprefix("Bearer "), role="staff")


@pytest.fixture
async def gateway():
    """A gateway with no database or broker (nothing here reaches them), its limits small, on a free port."""
    options = {"sign_command": None} if "sign_command" in inspect.signature(Gateway).parameters else {}
    gw = Gateway(records=None, read_views=None, producer=None, tail=None, authenticate=_authenticate,
                 commands_topic="commands", wait_s=1, limits=InputLimits(1_048_576, 1000), **options)
    gw.in_flight = InFlight(per_replica=3, per_principal=2)
    gw.body_timeout_s = 0.5
    runner = await serve(web.Application(), "127.0.0.1", 0, gw.routes())
    try:
        yield gw, runner.addresses[0][1]
    finally:
        await runner.cleanup()


async def _put(port: int, path: str, body: bytes, who: str = "u-1", **headers) -> tuple[int, dict, dict]:
    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{port}{path}", data=body,
                               headers={"Authorization": f"Bearer {who}", "Content-Type": "application/json",
                                        **headers}) as response:
            return response.status, await response.json(), dict(response.headers)


async def _trickle(port: int, who: str, started: asyncio.Event, release: asyncio.Event) -> int:
    """A PUT whose body arrives only once `release` is set: it holds its in-flight slot until then."""
    async def body():
        yield b'{"statusId":'
        started.set()
        await release.wait()
        yield b' 7}'

    async with aiohttp.ClientSession() as session:
        async with session.put(f"http://127.0.0.1:{port}{CHANGE}", data=body(),
                               headers={"Authorization": f"Bearer {who}"}) as response:
            return response.status


class TestBodyCaps:
    async def test_a_change_body_above_its_route_cap_is_413_unparsed(self, gateway):
        """A Wordbee change body above 16 KiB is refused by its size (Content-Length), not parsed."""
        _, port = gateway
        status, body, _ = await _put(port, CHANGE, b"[" + b"{}," * CHANGE_BODY_MAX + b"{}]")
        assert status == 413 and body["reason"] == "body_too_large"

    async def test_the_override_cap_follows_the_item_limit(self, gateway):
        """StoreFeeder's cap is what its item limit needs (512 B an item), never above the message cap."""
        _, port = gateway
        cap = override_body_max(1000, 1_048_576)
        assert cap < 1_048_576 and override_body_max(10_000, 1_048_576) == 1_048_576
        status, body, _ = await _put(port, "/orders/override-order-statuses", b"[" + b"{}," * (cap // 3) + b"{}]")
        assert status == 413 and body["reason"] == "body_too_large"

    async def test_a_body_that_trickles_is_cut_off(self, gateway):
        """A body not received within the body timeout is answered 408 and the slot is freed."""
        gw, port = gateway
        started, release = asyncio.Event(), asyncio.Event()
        status = await asyncio.wait_for(_trickle(port, "u-slow", started, release), 10)
        release.set()
        assert status == 408
        assert gw.in_flight.total == 0 and gw.in_flight.by_principal == {}


class TestConcurrencyLimits:
    async def test_one_principal_gets_429_with_retry_after_beyond_its_share(self, gateway):
        """With two of u-1's requests in flight a third is 429 with Retry-After; another caller is still served."""
        gw, port = gateway
        gw.body_timeout_s = 30
        release = asyncio.Event()
        starts = [asyncio.Event(), asyncio.Event()]
        held = [asyncio.create_task(_trickle(port, "u-1", started, release)) for started in starts]
        for started in starts:
            await asyncio.wait_for(started.wait(), 10)
        await _wait_for(lambda: gw.in_flight.by_principal.get("u-1") == 2)
        status, body, headers = await _put(port, CHANGE, json.dumps({"statusId": 7}).encode(), who="u-1")
        assert status == 429 and body["reason"] == "too_many_requests" and headers["Retry-After"] == "1"
        status, _, _ = await _put(port, CHANGE, b"not json", who="u-2")
        assert status == 422  # served (and refused for its body), not limited
        release.set()
        await asyncio.gather(*held)
        assert gw.in_flight.total == 0 and gw.in_flight.by_principal == {}

    async def test_the_replica_gets_429_beyond_its_limit(self, gateway):
        """With three requests in flight (the replica's limit) a fourth, of anyone, is 429."""
        gw, port = gateway
        gw.body_timeout_s = 30
        release = asyncio.Event()
        starts = [asyncio.Event() for _ in range(3)]
        held = [asyncio.create_task(_trickle(port, f"u-{n}", started, release)) for n, started in enumerate(starts)]
        for started in starts:
            await asyncio.wait_for(started.wait(), 10)
        await _wait_for(lambda: gw.in_flight.total == 3)
        status, _, headers = await _put(port, CHANGE, b"{}", who="u-9")
        assert status == 429 and headers["Retry-After"] == "1"
        release.set()
        await asyncio.gather(*held)
        assert gw.in_flight.total == 0


async def _wait_for(condition, timeout: float = 10.0) -> None:
    async def poll():
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)
