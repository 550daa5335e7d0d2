"""The seed APIs over HTTP (DESIGN §11) against a real gateway and worker: bearer token -> actor, command
over Kafka, answer from the outcome event in the seed's own shape and status code."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid

import aiohttp
import jwt
import pytest
import structlog
from cryptography.hazmat.primitives import serialization
from openapi_spec_validator import validate

from service.devkit.embedded import free_port
from service.entrypoints.services import run_gateway
from service.gateway.app import idempotency_command_id
from service.runtime.auth import issue_token, new_key_pair
from tests.helpers.brokers import new_broker
from tests.helpers.database import fetch, seed
from tests.helpers.producing import produce
from tests.helpers.topics import TopicReader, events_for
from tests.helpers.services import running, running_worker

ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()
ATTACKER, _ = new_key_pair()
GATEWAY_PRIVATE, GATEWAY_PUBLIC = new_key_pair()  # the gateway's signing key for command tokens (issue 23)


@pytest.fixture
def secured(settings, tmp_path):
    """ACTOR_AUTH=required; the worker trusts the identity provider's key and the gateway's signing key."""
    public, gateway_public, gateway_private = tmp_path / "public.pem", tmp_path / "gw.pub.pem", tmp_path / "gw.pem"
    public.write_bytes(PUBLIC)
    gateway_public.write_bytes(GATEWAY_PUBLIC)
    gateway_private.write_bytes(GATEWAY_PRIVATE)
    return settings.model_copy(update={
        "actor_auth": "required", "auth_public_keys": f"{public},{gateway_public}", "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE, "gateway_signing_key_file": str(gateway_private),
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
        assert status == 200 and "swagger-ui-bundle.js" in page
        assert "http://" not in page and "https://" not in page
        assets = re.findall(r"(?:src|href)='([^']+\.(?:js|css))'", page)  # Swagger UI's own files, from here
        assert len(assets) == 4
        for asset in assets:
            status, body, headers = await api.call("GET", asset, None)
            assert status == 200 and len(body) > 100, asset
        status, view, _ = await api.call("GET", "/docs/openapi-3.0.json", None)
        assert status == 200 and view["openapi"] == "3.0.3" and "/orders/override-order-statuses" in view["paths"]
        validate(view)
        assert (await api.call("GET", "/docs/assets/index.html", None))[0] == 404


class TestIdempotencyKeyBoundToCallerAndRequest:
    """DESIGN §12 and issue 23: a key is the caller's, and stays bound to its first request."""

    async def test_a_reused_key_with_another_body_is_422_and_publishes_nothing(self, secured):
        """Same caller, same key, another body: 422 idempotency_key_reused, the order does not move; the first
        request repeated (in other JSON spacing) still gets its outcome; the binding is in Postgres."""
        await seed(secured)
        api = Client(secured.gateway_port)
        key = {"Idempotency-Key": f"order-{uuid.uuid4()}"}
        async with running_worker(secured), running(run_gateway, secured, "gateway"):
            assert (await api.call("PUT", "/api/orders/1033/status", body={"status": 2}, headers=key))[:2] == (200, {})
            status, body, _ = await api.call("PUT", "/api/orders/1033/status", body={"status": 21}, headers=key)
            assert status == 422 and body["reason"] == "idempotency_key_reused" and body["message"]
            status, body, _ = await api.call("PUT", "/api/orders/1029/status", body={"status": 2}, headers=key)
            assert status == 422 and body["reason"] == "idempotency_key_reused"  # another path, same key
            again = await api.call("PUT", "/api/orders/1033/status", data=b'{ "status" : 2 }',
                                   headers={**key, "Content-Type": "application/json"})
            assert again[:2] == (200, {})
        [row] = await fetch(secured, "SELECT version FROM orders WHERE order_id = 1033")
        assert row["version"] == 1
        assert len(await fetch(secured, "SELECT 1 FROM idempotency_keys")) == 1
        assert await fetch(secured, "SELECT 1 FROM order_history WHERE order_id = 1029") == []

    async def test_two_callers_with_one_key_never_share_a_command(self, secured):
        """B sending A's key gets its own outcome, never A's; B using a key before A does not make A's command a
        duplicate: both apply, under different command ids, each readable only by its own caller."""
        await seed(secured)
        api = Client(secured.gateway_port)
        key = {"Idempotency-Key": "order-123"}
        client_a = token(sub="u-7", role="client", client_id="c-1")
        client_b = token(sub="u-4", role="client", client_id="c-4")
        async with running_worker(secured), running(run_gateway, secured, "gateway"):
            status, body, _ = await api.call("PUT", "/api/orders/3001/status", client_b, body={"status": 31},
                                             headers=key)
            assert status in (200, 409, 422), body  # whatever B's own outcome is: B's, from B's command
            status, body, _ = await api.call("PUT", "/api/orders/1029/status", client_a, body={"status": 21},
                                             headers=key)
            assert (status, body) == (200, {})  # A's command applied: not a duplicate of B's
            status, body, _ = await api.call("PUT", "/api/orders/1029/status", client_b, body={"status": 21},
                                             headers=key)
            assert status == 422 and body["reason"] == "idempotency_key_reused"  # B's key is bound to B's request
        ids = {r["command_id"] for r in await fetch(secured, "SELECT command_id FROM idempotency_keys")}
        assert len(ids) == 2 and "order-123" not in ids
        [row] = await fetch(secured, "SELECT version FROM orders WHERE order_id = 1029")
        assert row["version"] == 1


async def test_the_gateway_exports_request_counts_and_latency_by_route(secured):
    """/metrics counts requests by route template and status code, and has a latency histogram."""
    from prometheus_client.parser import text_string_to_metric_families

    await seed(secured)
    api = Client(secured.gateway_port)
    async with running_worker(secured), running(run_gateway, secured, "gateway"):
        assert (await api.call("PUT", "/api/orders/1033/status", body={"status": 2}))[0] == 200
        assert (await api.call("PUT", "/api/orders/1033/status", None, body={"status": 2}))[0] == 401
        assert (await api.call("GET", "/no/such/path", None))[0] == 404
        status, text, _ = await api.call("GET", "/metrics", None)
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}

    def requests(route: str, code: str) -> float:
        labels = (("method", "PUT" if "status" in route else "GET"), ("route", route), ("service", "gateway"),
                  ("status", code))
        return samples.get(("orderstatus_http_requests_total", labels), 0)

    assert requests("/api/orders/{order_id}/status", "200") == 1
    assert requests("/api/orders/{order_id}/status", "401") == 1
    assert requests("(unmatched)", "404") == 1
    assert not any("no/such" in str(key) for key in samples)
    count = samples[("orderstatus_http_request_seconds_count",
                     (("method", "PUT"), ("route", "/api/orders/{order_id}/status"), ("service", "gateway")))]
    assert count == 2


async def test_commands_carry_a_bound_gateway_token_never_the_callers(secured):
    """Issue 23 item 4: the command on Kafka carries a short-lived token signed by the gateway and bound to its
    id and value, never the caller's; that token moved to another command or value is refused by the worker,
    and it is no bearer token for the gateway."""
    await seed(secured)
    api = Client(secured.gateway_port)
    async with running_worker(secured), running(run_gateway, secured, "gateway"), \
            TopicReader(secured, secured.commands_topic) as commands, \
            TopicReader(secured, secured.events_topic) as events:
        assert (await api.call("PUT", "/api/orders/1033/status", body={"status": 2}))[:2] == (200, {})
        await commands.wait_for(lambda values: values, 30, "the gateway's command")
        [sent] = commands.records
        value, carried = sent.value, dict(sent.headers)["actor-token"]
        assert carried != STAFF.encode() and STAFF.encode() not in b"".join(v or b"" for _, v in sent.headers)
        claims = jwt.decode(carried, options={"verify_signature": False})
        command = json.loads(value)
        assert claims["cmd"] == command["command_id"] and claims["sub"] == "staff-1"
        assert claims["exp"] - claims["iat"] <= secured.gateway_command_token_ttl_s
        jwt.decode(carried, serialization.load_pem_public_key(GATEWAY_PUBLIC), algorithms=["ES256"],
                   audience=AUDIENCE, issuer=ISSUER)  # signed with the gateway's key

        other_id = {**command, "command_id": str(uuid.uuid4())}
        other_value = {**command, "command_id": str(uuid.uuid4())}
        await produce(secured, [other_id], headers=[("actor-token", carried)])
        # the same id as the bound token names, another value (another order and status)
        tampered = {**command, "order_id": 1034}
        await produce(secured, [tampered], headers=[("actor-token", carried)])
        await produce(secured, [other_value], headers=[("actor-token", carried)])
        found = await events_for(events, {other_id["command_id"], other_value["command_id"]})
        assert {e["reason"] for e in found} == {"actor_not_authenticated"}
        await events.wait_for(lambda values: any(v.get("command_id") == command["command_id"] and
                                                 v.get("reason") == "actor_not_authenticated" for v in values),
                              30, "the tampered value's refusal")
        status, body, _ = await api.call("PUT", "/api/orders/1034/status", carried.decode(), body={"status": 21})
        assert status == 401 and body["reason"] == "actor_not_authenticated"
    versions = await fetch(secured, "SELECT order_id, version FROM orders WHERE order_id IN (1033, 1034) ORDER BY 1")
    assert [tuple(r) for r in versions] == [(1033, 1), (1034, 0)]  # only the gateway's own command applied


async def unavailable_within_the_wait(api, change: dict, wait_s: float) -> None:
    """The change is answered 503 service_unavailable with a Retry-After, within the gateway's wait."""
    started = time.monotonic()
    status, body, headers = await api.call("PUT", "/api/orders/1033/status", **change)
    took = time.monotonic() - started
    assert status == 503 and body["reason"] == "service_unavailable", (status, body)
    assert took < wait_s + 1.5, f"answered after {took:.1f} s"
    assert int(headers["Retry-After"]) > 0


async def test_a_broker_outage_is_503_at_once_and_the_retry_with_its_key_is_applied_once(secured):
    """The broker stopped (SIGSTOP, its data kept) under a change: 503 service_unavailable with Retry-After within
    the gateway's wait, one warning, reads served; after it is resumed the same request with the same key is
    applied once and the command is on the commands topic once (the first send landed late, the retry sent none)."""
    broker = new_broker("gateway-outage")
    await asyncio.to_thread(broker.start)
    try:
        private = secured.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers,
                                             "gateway_wait_s": 3.0})
        await seed(private)
        api = Client(private.gateway_port)
        key = f"outage-{uuid.uuid4()}"
        change = dict(body={"status": 5}, headers={"Idempotency-Key": key})  # Confirmed -> ReadyToShip
        async with running_worker(private), running(run_gateway, private, "gateway"):
            warm = dict(body={"status": 2}, headers={"Idempotency-Key": f"warm-{key}"})  # the worker joins first
            for _ in range(20):
                if (await api.call("PUT", "/api/orders/1033/status", **warm))[0] == 200:
                    break
            broker.pause()
            try:
                with structlog.testing.capture_logs() as logs:
                    await unavailable_within_the_wait(api, change, private.gateway_wait_s)
                    read = await api.call("GET", "/api/orders/1033/status/transitions")
                    assert read[0] == 200 and read[1]["current"]["code"] == "Confirmed"
                warned = [e for e in logs if e["event"] == "command not published: Kafka unavailable"]
                assert len(warned) == 1 and warned[0]["log_level"] == "warning", logs
            finally:
                broker.resume()
            answers = []
            for _ in range(40):  # until the broker and the worker are back: 503 or 202 meanwhile, then 200
                answers.append((await api.call("PUT", "/api/orders/1033/status", **change))[0])
                if answers[-1] == 200:
                    break
                await asyncio.sleep(0.2)
            assert answers[-1] == 200, answers
        command_id = idempotency_command_id(ISSUER, "staff-1", key)
        async with TopicReader(private, private.commands_topic) as commands:
            await commands.wait_for(lambda values: len(values) >= 2, 30, "both commands")
            await commands.poll()
            assert [v.get("command_id") for v in commands.values()].count(command_id) == 1, commands.values()
        [row] = await fetch(private, "SELECT version FROM orders WHERE order_id = 1033")
        assert row["version"] == 2  # Draft -> Confirmed, then ReadyToShip once
    finally:
        await asyncio.to_thread(broker.stop)


async def test_a_broker_process_ended_is_503_at_once_with_reads_served(secured):
    """The broker process ended (connections refused, not frozen) before a change: 503 with Retry-After within the
    gateway's wait, each time it is asked, and reads served. (The freeze above shows the retry after the outage: the
    embedded broker starts empty after a real restart, so that half is shown on a broker that keeps its data.)"""
    broker = new_broker("gateway-stopped")
    await asyncio.to_thread(broker.start)
    try:
        # a batch the producer cannot deliver expires after the request timeout: the gateway's stop waits for it
        private = secured.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers,
                                             "gateway_wait_s": 3.0, "kafka_request_timeout_ms": 5000})
        await seed(private)
        api = Client(private.gateway_port)
        change = dict(body={"status": 2}, headers={"Idempotency-Key": f"stopped-{uuid.uuid4()}"})
        async with running(run_gateway, private, "gateway"):
            await asyncio.to_thread(broker.stop)
            for _ in range(2):  # the second waits on the first one's send, never publishes another
                await unavailable_within_the_wait(api, change, private.gateway_wait_s)
            assert (await api.call("GET", "/api/orders/1033/status/transitions"))[0] == 200
    finally:
        await asyncio.to_thread(broker.stop)
