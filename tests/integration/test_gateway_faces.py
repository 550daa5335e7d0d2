"""The gateway against a real worker, broker and database (issue 23): no single input stops it (order ids beyond
bigint, hostile events on the events topic) and its operational endpoints stay off the public port."""

from __future__ import annotations

import json

import aiohttp
import pytest

from service.devkit.embedded import free_port
from service.entrypoints.services import run_gateway
from service.runtime.auth import issue_token, new_key_pair
from service.runtime.settings import Settings
from tests.helpers.database import seed
from tests.helpers.probes import wait_readiness
from tests.helpers.producing import produce
from tests.helpers.services import running, running_worker

ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()
GATEWAY_PRIVATE, GATEWAY_PUBLIC = new_key_pair()
STAFF = issue_token(PRIVATE, sub="staff-1", role="staff", issuer=ISSUER, audience=AUDIENCE)


@pytest.fixture
def secured(settings, tmp_path):
    """ACTOR_AUTH=required, the gateway on its own port and its probes and metrics on another."""
    public, gateway_public, gateway_private = tmp_path / "public.pem", tmp_path / "gw.pub.pem", tmp_path / "gw.pem"
    public.write_bytes(PUBLIC)
    gateway_public.write_bytes(GATEWAY_PUBLIC)
    gateway_private.write_bytes(GATEWAY_PRIVATE)
    update = {"actor_auth": "required", "auth_public_keys": f"{public},{gateway_public}", "auth_issuer": ISSUER,
              "auth_audience": AUDIENCE, "gateway_port": free_port(), "gateway_ops_port": free_port(),
              "gateway_wait_s": 15.0}
    if "gateway_signing_key_file" in Settings.model_fields:  # the command-bound tokens of issue 23, item 4
        update["gateway_signing_key_file"] = str(gateway_private)
    return settings.model_copy(update=update)


async def _call(port: int, method: str, path: str, *, body=None, bearer: str | None = STAFF):
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with aiohttp.ClientSession() as session:
        async with session.request(method, f"http://127.0.0.1:{port}{path}", json=body, headers=headers) as response:
            text = await response.text()
            return response.status, json.loads(text) if response.content_type == "application/json" else text


async def test_metrics_and_status_are_only_on_the_ops_port(secured):
    """With ORDERSTATUS_GATEWAY_OPS_PORT the seed APIs' port answers no /metrics, /status or probes; the ops port does."""
    await seed(secured)
    async with running(run_gateway, secured, "gateway"):
        await wait_readiness(secured.gateway_ops_port, True, 30)
        for path in ("/metrics", "/status", "/readyz", "/healthz"):
            assert (await _call(secured.gateway_port, "GET", path))[0] == 404, path
            assert (await _call(secured.gateway_ops_port, "GET", path))[0] == 200, path
        assert (await _call(secured.gateway_port, "GET", "/openapi.json"))[0] == 200
        status, _ = await _call(secured.gateway_ops_port, "PUT", "/api/orders/1033/status", body={"status": 2})
        assert status == 404  # the seed APIs are not on the ops port
        _, metrics = await _call(secured.gateway_ops_port, "GET", "/metrics")
        assert 'route="/openapi.json"' in metrics  # requests on the public port are still counted


async def test_order_ids_beyond_bigint_are_422_on_the_gateway(secured):
    """2^63, 20 digits and Unicode digits in a path or a StoreFeeder item are 422, never 500."""
    await seed(secured)
    async with running(run_gateway, secured, "gateway"):
        await wait_readiness(secured.gateway_ops_port, True, 30)
        for bad in ("9223372036854775808", "99999999999999999999", "%D9%A1%D9%A2", "1_0", "-1"):
            for method, path, body in (("PUT", f"/api/orders/{bad}/status", {"status": 2}),
                                       ("PUT", f"/order-service/order/{bad}/status", {"orderStatusId": 2}),
                                       ("GET", f"/api/orders/{bad}/status/transitions", None)):
                status, answer = await _call(secured.gateway_port, method, path, body=body)
                assert status == 422 and answer["reason"] == "invalid_command", (path, status, answer)
        status, answer = await _call(secured.gateway_port, "PUT", "/orders/override-order-statuses",
                                     body=[{"OrderNumber": 2**63, "OrderStatus": "OnHold"}])
        assert status == 422, answer


async def test_hostile_events_do_not_stop_the_events_reader(secured):
    """Events with a non-hashable, numeric or missing command_id, or not JSON at all, leave the reader running:
    the next request still gets its outcome (200) and the gateway stays ready."""
    await seed(secured)
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        await wait_readiness(secured.gateway_ops_port, True, 30)
        # the reader starts with the first request; this one (and its outcome) gets it going
        assert (await _call(secured.gateway_port, "PUT", "/api/orders/1033/status", body={"status": 2}))[0] == 200
        await produce(secured, [b'{"command_id": ["a", "list"]}', b'{"command_id": {"an": "object"}}',
                                b'{"command_id": 7}', b"[1, 2]", b"not json"], secured.events_topic, separately=True)
        status, answer = await _call(secured.gateway_port, "GET", "/api/orders/1029/status/transitions")
        assert status == 200
        status, answer = await _call(secured.gateway_port, "PUT", "/api/orders/1029/status", body={"status": 21})
        assert status == 200, answer  # an outcome, not a 202 after the wait
        ready = await wait_readiness(secured.gateway_ops_port, True, 5)
        assert ready["paused"] is None
