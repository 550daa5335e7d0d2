"""The gateway's answers from what is recorded (GET /commands/{id}, a retried Idempotency-Key request, the Wordbee
transitions) over the fake command records and read views on the fake database: no Postgres, no broker."""

from __future__ import annotations

import dataclasses

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.contract.commands import InputLimits
from service.contract.events import to_wire
from service.domain.model import Actor, Note, Principal
from service.gateway.app import Gateway, idempotency_command_id
from service.runtime.auth import NotAuthenticated
from tests.helpers.fake_command_records import FakeCommandRecords
from tests.helpers.fake_read_views import FakeReadViews
from tests.helpers.fakes import FakeDatabase, FakeProducer, FakeUnitOfWork
from tests.helpers.unit_of_work_contract import CANCELLED, CONFIRMED, FREE, ORDERS, TOPICS, Prepared, applied, key

ANN = Principal("ann", "client", "c-1")  # FREE's client
TOKENS = {"Bearer ann": ANN, "Bearer bob": Principal("bob", "client", "c-2"), "Bearer sam": Principal("sam", "staff")}


def authenticate(header: str | None) -> Principal:
    if header not in TOKENS:
        raise NotAuthenticated("no bearer token" if header is None else "the token's signature is not valid")
    return TOKENS[header]


def issued_by_ann(command_id: str) -> Prepared:
    """FREE cancelled by its client Ann, with a private note (what a client must not see of another's work)."""
    [change] = applied(command_id, (FREE, CONFIRMED, CANCELLED, 1)).changes
    change = dataclasses.replace(change, actor=Actor("ann", "client", "c-1"), note=Note("private reason"),
                                 override=False)
    return Prepared(command_id, "applied", [change], [to_wire(change, TOPICS)])


class Stack:
    """The gateway over one fake database; its producer records what would be published."""

    def __init__(self) -> None:
        self.db = FakeDatabase.seeded(ORDERS)
        self.producer = FakeProducer()
        self.gateway = Gateway(records=FakeCommandRecords(self.db, max_events=3), read_views=FakeReadViews(self.db),
                               producer=self.producer, tail=None, authenticate=authenticate,
                               commands_topic="commands", wait_s=1, limits=InputLimits(1_048_576, 1000),
                               sign_command=lambda principal, command_id, value: "signed")

    async def processed(self, command: Prepared) -> None:
        async with FakeUnitOfWork(self.db) as uow:
            await uow.claim([key(command.command_id)])
            await uow.lock_orders([FREE])
            command.add_to(uow)
            await uow.commit()


@pytest.fixture
async def stack():
    found = Stack()
    app = web.Application()
    for method, path, handler in found.gateway.routes():
        app.router.add_route(method, path, handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    found.http = client
    yield found
    await client.close()


def bearer(who: str) -> dict:
    return {"Authorization": f"Bearer {who}"}


class TestCommandOutcome:
    async def test_the_issuer_sees_its_command_as_a_client_sees_it(self, stack):
        """Ann gets her command's outcome, the private note and her full actor left out."""
        await stack.processed(issued_by_ann("c-ann"))
        response = await stack.http.get("/commands/c-ann", headers=bearer("ann"))
        body = await response.json()
        assert (response.status, body["outcome"], len(body["events"])) == (200, "applied", 1)
        assert (body["events"][0]["note"], body["events"][0]["actor"]) == (None, {"role": "client"})

    async def test_staff_see_it_whole_and_another_client_not_at_all(self, stack):
        """Staff see the note and the actor; another client gets command_not_found, as for an unknown id."""
        await stack.processed(issued_by_ann("c-ann"))
        staff = await (await stack.http.get("/commands/c-ann", headers=bearer("sam"))).json()
        assert (staff["events"][0]["note"]["text"], staff["events"][0]["actor"]["id"]) == ("private reason", "ann")
        for path, who in (("/commands/c-ann", "bob"), ("/commands/unknown", "sam")):
            response = await stack.http.get(path, headers=bearer(who))
            assert (response.status, (await response.json())["reason"]) == (404, "command_not_found")


class TestRetriedRequest:
    async def test_a_retried_key_is_answered_from_the_records_without_publishing(self, stack):
        """The first request under a key was processed: its repeat gets that outcome (200) and nothing is sent."""
        command_id = idempotency_command_id("", "ann", "k-1")
        await stack.processed(issued_by_ann(command_id))
        response = await stack.http.put(f"/api/orders/{FREE}/status", json={"status": CANCELLED.id},
                                        headers={**bearer("ann"), "Idempotency-Key": "k-1"})
        assert response.status == 200, await response.text()
        assert stack.producer.sent == []

    async def test_the_key_with_another_request_is_refused_unpublished(self, stack):
        """A key bound to one request and reused with another body is 422 idempotency_key_reused."""
        command_id = idempotency_command_id("", "ann", "k-1")
        await stack.processed(issued_by_ann(command_id))
        headers = {**bearer("ann"), "Idempotency-Key": "k-1"}
        assert (await stack.http.put(f"/api/orders/{FREE}/status", json={"status": CANCELLED.id},
                                     headers=headers)).status == 200
        response = await stack.http.put(f"/api/orders/{FREE}/status", json={"status": CANCELLED.id,
                                                                            "message": "changed my mind"},
                                        headers=headers)
        assert (response.status, (await response.json())["reason"]) == (422, "idempotency_key_reused")
        assert stack.producer.sent == []


class TestTransitions:
    async def test_the_callers_transitions_and_another_clients_order_missing(self, stack):
        """The Wordbee transitions are the read views' for the token's actor; another client's order is a 404."""
        response = await stack.http.get(f"/api/orders/{FREE}/status/transitions", headers=bearer("ann"))
        body = await response.json()
        assert (response.status, [s["code"] for s in body["transitions"]]) == (200, ["CancelledByClient"])
        response = await stack.http.get(f"/api/orders/{FREE}/status/transitions", headers=bearer("bob"))
        assert (response.status, (await response.json())["reason"]) == (404, "order_not_found")
