"""The seed APIs over HTTP (DESIGN §11) against a real gateway and worker: bearer token -> actor, command
over Kafka, answer from the outcome event in the seed's own shape and status code."""

from __future__ import annotations

import json
import uuid

import aiohttp
import pytest
from openapi_spec_validator import validate

from service.devkit.embedded import free_port
from service.entrypoints.services import run_gateway
from service.runtime.auth import issue_token, new_key_pair
from tests.helpers.database import fetch, seed
from tests.helpers.services import running, running_worker

ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()
ATTACKER, _ = new_key_pair()


@pytest.fixture
def secured(settings, tmp_path):
    public = tmp_path / "public.pem"
    public.write_bytes(PUBLIC)
    return settings.model_copy(update={
        "actor_auth": "required", "auth_public_keys": str(public), "auth_issuer": ISSUER, "auth_audience": AUDIENCE,
        "gateway_port": free_port(), "gateway_wait_s": 15.0,
    })


def token(private: bytes = PRIVATE, **claims) -> str:
    base = dict(sub="staff-1", role="staff", issuer=ISSUER, audience=AUDIENCE)
    base.update(claims)
    return issue_token(private, **base)


STAFF = token()
MANAGER = token(sub="manager-1", role="manager")
CLIENT_C1 = token(sub="u-7", role="client", client_id="c-1")


class Client:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    async def call(self, method: str, path: str, bearer: str | None = STAFF, *, body=None, data: bytes | None = None,
                   headers: dict | None = None) -> tuple[int, object, dict]:
        headers = dict(headers or {})
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with aiohttp.ClientSession() as session:
            async with session.request(method, self.base + path, json=body, data=data, headers=headers) as response:
                text = await response.text()
                is_json = response.content_type == "application/json"
                return response.status, json.loads(text) if is_json and text else text, dict(response.headers)


async def test_wordbee_and_brightpearl_changes_answer_in_their_shapes_and_codes(secured):
    """Applied -> 200 {}; another client's order 404; no edge 409; unknown status 422; a client on a
    manager-only edge 403; no or forged token 401 (nothing published)."""
    await seed(secured)
    api = Client(secured.gateway_port)
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        assert (await api.call("PUT", "/api/orders/1033/status", body={"status": 2}))[:2] == (200, {})
        status, body, _ = await api.call("PUT", "/api/orders/1029/status", CLIENT_C1,
                                         body={"status": 21, "message": "Customer asked to cancel"})
        assert (status, body) == (200, {})
        status, body, _ = await api.call("PUT", "/api/orders/1031/status", CLIENT_C1, body={"status": 21})
        assert status == 404 and body["reason"] == "order_not_found"
        status, body, _ = await api.call("PUT", "/api/orders/1033/status", body={"status": 6})  # Confirmed -> Dispatched
        assert status == 409 and body["reason"] == "transition_not_allowed"
        status, body, _ = await api.call("PUT", "/api/orders/1033/status", body={"status": 9999})
        assert status == 422 and body["reason"] == "status_not_found"
        status, body, _ = await api.call("PUT", "/order-service/order/1034/status", body={"orderStatusId": 21})
        assert status in (403, 409, 422) and body["reason"]
        status, body, headers = await api.call("PUT", "/api/orders/1033/status", None, body={"status": 2})
        assert status == 401 and body["reason"] == "actor_not_authenticated" and "Bearer" in headers["WWW-Authenticate"]
        status, _, _ = await api.call("PUT", "/api/orders/1033/status", token(ATTACKER), body={"status": 2})
        assert status == 401
        status, body, _ = await api.call("PUT", "/order-service/order/1030/status", MANAGER, body={
            "orderStatusId": 30, "orderNote": {"text": "Invoiced by ops", "isPublic": True, "fileId": 28}})
        assert status in (200, 409, 422)
    history = await fetch(secured, "SELECT order_id, note_text, is_public FROM order_history ORDER BY id")
    assert (1029, "Customer asked to cancel", True) in [tuple(r) for r in history]  # Wordbee's message is public
    actors = await fetch(secured, "SELECT DISTINCT actor->>'id' AS id FROM order_history")
    assert {r["id"] for r in actors} <= {"staff-1", "u-7", "manager-1"}  # only verified principals act


async def test_brightpearl_note_travels_with_its_visibility_and_file(secured):
    """orderNote {text, isPublic, fileId} becomes the change's note."""
    await seed(secured)
    api = Client(secured.gateway_port)
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        status, body, _ = await api.call("PUT", "/order-service/order/1033/status", body={
            "orderStatusId": 2, "orderNote": {"text": "Updating order status!!", "isPublic": True, "fileId": 28}})
    assert (status, body) == (200, {})
    [row] = await fetch(secured, "SELECT note_text, is_public, file_id FROM order_history WHERE order_id = 1033")
    assert tuple(row) == ("Updating order status!!", True, 28)


async def test_storefeeder_batch_in_json_and_xml_with_per_item_results(secured):
    """Mixed items answer 200 with a result per item (Error our message, Reason our code), in JSON or
    XML as asked; more than 50 items is 413; hostile XML (entities) is refused."""
    await seed(secured)
    api = Client(secured.gateway_port)
    items = [{"OrderNumber": 2001, "OrderStatus": "OnHold"}, {"OrderNumber": 9999, "OrderStatus": "CancelledByClient"}]
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        status, results, _ = await api.call("PUT", "/orders/override-order-statuses", MANAGER, body=items)
        assert status == 200
        assert results[0] == {"OrderNumber": 2001, "OrderStatus": "OnHold", "Success": True}
        assert results[1]["Success"] is False and results[1]["Reason"] == "order_not_found" and results[1]["Error"]

        xml = ("<ArrayOfOverrideOrderStatusModel><OverrideOrderStatusModel><OrderNumber>3003</OrderNumber>"
               "<OrderStatus>OnHold</OrderStatus></OverrideOrderStatusModel></ArrayOfOverrideOrderStatusModel>")
        status, text, headers = await api.call("PUT", "/orders/override-order-statuses", MANAGER, data=xml.encode(),
                                               headers={"Content-Type": "application/xml"})
        assert status == 200 and headers["Content-Type"].startswith("application/xml")
        assert "<Success>true</Success>" in text and "<OrderNumber>3003</OrderNumber>" in text

        status, body, _ = await api.call("PUT", "/orders/override-order-statuses", MANAGER,
                                         body=[{"OrderNumber": 2001, "OrderStatus": "OnHold"}] * 51)
        assert status == 413 and body["reason"] == "batch_too_large"

        bomb = ('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "xxxxxxxx"><!ENTITY y "&x;&x;&x;&x;">]>'
                "<ArrayOfOverrideOrderStatusModel><OverrideOrderStatusModel><OrderNumber>1</OrderNumber>"
                "<OrderStatus>&y;</OrderStatus></OverrideOrderStatusModel></ArrayOfOverrideOrderStatusModel>")
        status, body, _ = await api.call("PUT", "/orders/override-order-statuses", MANAGER, data=bomb.encode(),
                                         headers={"Content-Type": "application/xml"})
        assert status == 422 and body["reason"] == "invalid_command"


async def test_idempotency_key_makes_a_retry_apply_once(secured):
    """The same Idempotency-Key twice: both answer 200, the order moves once."""
    await seed(secured)
    api = Client(secured.gateway_port)
    key = {"Idempotency-Key": f"retry-{uuid.uuid4()}"}
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        first = await api.call("PUT", "/api/orders/1033/status", body={"status": 2}, headers=key)
        second = await api.call("PUT", "/api/orders/1033/status", body={"status": 2}, headers=key)
    assert first[:2] == second[:2] == (200, {})
    [row] = await fetch(secured, "SELECT version FROM orders WHERE order_id = 1033")
    assert row["version"] == 1


async def test_no_outcome_in_time_is_202_and_the_location_tells_later(secured):
    """With no worker running the gateway answers 202 + Location; once a worker ran, GET /commands/{id}
    returns the outcome (and a client cannot read someone else's command)."""
    await seed(secured)
    quick = secured.model_copy(update={"gateway_wait_s": 1.0})
    api = Client(quick.gateway_port)
    async with running(run_gateway, quick, "gateway"):
        status, body, headers = await api.call("PUT", "/api/orders/1033/status", body={"status": 2})
        assert status == 202 and headers["Location"] == f"/commands/{body['command_id']}"
        assert (await api.call("GET", headers["Location"]))[0] == 404  # not known yet
        async with running_worker(quick):
            for _ in range(100):
                status, outcome, _ = await api.call("GET", headers["Location"])
                if status == 200:
                    break
                await __import__("asyncio").sleep(0.2)
        assert status == 200 and outcome["outcome"] == "applied"
        assert outcome["events"][0]["type"] == "OrderStatusChanged"
        assert (await api.call("GET", headers["Location"], CLIENT_C1))[0] == 404


async def test_transitions_openapi_and_offline_docs(secured):
    """Wordbee's transitions answer for the token's actor; /openapi.json is a valid OpenAPI 3.1 document;
    /docs renders it with no external link."""
    await seed(secured)
    api = Client(secured.gateway_port)
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        status, found, _ = await api.call("GET", "/api/orders/3001/status/transitions",
                                          token(sub="u-4", role="client", client_id="c-4"))
        assert status == 200 and {s["code"] for s in found["transitions"]} == {"QuoteAccepted", "QuoteRejected"}
        status, document, _ = await api.call("GET", "/openapi.json", None)
        assert status == 200 and document["openapi"].startswith("3.1")
        validate(document)
        status, page, _ = await api.call("GET", "/docs", None)
        assert status == 200 and "/orders/override-order-statuses" in page
        assert "http://" not in page.replace("http://127.0.0.1", "") and "https://" not in page.replace(
            "https://id.example.com", "")
