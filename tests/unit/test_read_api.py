"""The worker's read API (`service/queries/http.py`) over the fake read views: its answers, paging, refusals and who
sees what, with no Postgres (aiohttp's test server serves the real routes)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.domain.model import Actor, Principal
from service.queries.http import routes
from service.runtime.auth import NotAuthenticated
from tests.helpers.fake_read_views import FakeReadViews
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork
from tests.helpers.read_views_contract import HOLD, RELEASE, commit
from tests.helpers.unit_of_work_contract import FREE, MISSING, ORDERS, PAID

TOKENS = {"Bearer ann": Principal("ann", "client", "c-1"), "Bearer sam": Principal("sam", "staff")}


def authenticate(header: str | None) -> Principal:
    """The bearer check of the tests: two known tokens, anything else refused as the verifier refuses."""
    if header not in TOKENS:
        raise NotAuthenticated("no bearer token" if header is None else "the token's signature is not valid")
    return TOKENS[header]


class Backend:
    """The fake database with the sample orders, FREE changed twice (a public note, then a private one)."""

    def __init__(self) -> None:
        self.db = FakeDatabase.seeded(ORDERS)
        self.views = FakeReadViews(self.db)

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)


async def client_of(read_routes: list) -> TestClient:
    app = web.Application()
    for method, path, handler in read_routes:
        app.router.add_route(method, path, handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def backend() -> Backend:
    found = Backend()
    await commit(found, HOLD, RELEASE)
    return found


@pytest.fixture
async def tokenless(backend):
    """ACTOR_AUTH off with no keys: no token is read at all."""
    client = await client_of(routes(backend.views, None))
    yield client
    await client.close()


@pytest.fixture
async def with_tokens(backend):
    """ACTOR_AUTH optional: a presented token is verified and is the actor; none is still served."""
    client = await client_of(routes(backend.views, authenticate, token_required=False))
    yield client
    await client.close()


async def json_of(response) -> tuple[int, dict]:
    return response.status, await response.json()


class TestTransitions:
    async def test_the_query_names_the_actor_without_a_token(self, tokenless, backend):
        """?role=manager answers what the views give the manager for that order."""
        status, body = await json_of(await tokenless.get(f"/orders/{FREE}/status/transitions",
                                                         params={"role": "manager", "actor_id": "m-1"}))
        assert status == 200
        assert body == await backend.views.transitions(FREE, Actor("m-1", "manager"))
        assert body["version"] == 2

    async def test_an_unknown_role_is_a_400_and_a_missing_order_a_404(self, tokenless):
        """A role outside ROLES is refused before any read; an order that does not exist is order_not_found."""
        status, body = await json_of(await tokenless.get(f"/orders/{FREE}/status/transitions",
                                                         params={"role": "admin"}))
        assert (status, body["reason"]) == (400, "invalid_request")
        status, body = await json_of(await tokenless.get(f"/orders/{MISSING}/status/transitions",
                                                         params={"role": "manager"}))
        assert (status, body["reason"]) == (404, "order_not_found")

    async def test_the_token_is_the_actor_not_the_query(self, with_tokens):
        """A client's token sees its own order's transitions whatever ?role= says, and another's order as missing."""
        own = await with_tokens.get(f"/orders/{FREE}/status/transitions", params={"role": "manager"},
                                    headers={"Authorization": "Bearer ann"})
        status, body = await json_of(own)
        assert (status, body["overrides"], body["can_override_status"]) == (200, [], False)
        other = await with_tokens.get(f"/orders/{PAID}/status/transitions", headers={"Authorization": "Bearer ann"})
        assert other.status == 404

    async def test_a_bad_token_is_a_401_with_why(self, with_tokens):
        """A token that does not verify is refused with actor_not_authenticated and a Bearer challenge."""
        response = await with_tokens.get(f"/orders/{FREE}/status/transitions",
                                         headers={"Authorization": "Bearer forged"})
        status, body = await json_of(response)
        assert (status, body["reason"]) == (401, "actor_not_authenticated")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


class TestHistory:
    async def test_without_a_token_the_history_is_shown_as_to_a_client(self, tokenless):
        """No token and no ORDERSTATUS_READ_API_OPEN: actors by role only, the private note left out."""
        status, body = await json_of(await tokenless.get(f"/orders/{FREE}/history"))
        assert status == 200
        assert [e["actor"] for e in body["history"]] == [{"role": "manager"}, {"role": "manager"}]
        assert [e["note"] for e in body["history"]] == [HOLD.note.as_dict(), None]

    async def test_open_reads_show_everything_without_a_token(self, backend):
        """ORDERSTATUS_READ_API_OPEN (a dev setup): the private note and the full actor are shown."""
        client = await client_of(routes(backend.views, None, open_reads=True))
        try:
            status, body = await json_of(await client.get(f"/orders/{FREE}/history"))
        finally:
            await client.close()
        assert status == 200
        assert body["history"][1]["note"] == RELEASE.note.as_dict()
        assert body["history"][0]["actor"]["id"] == "m-1"

    async def test_pages_follow_next_cursor(self, tokenless):
        """?limit=1 gives the first change and its cursor; the cursor gives the last page (cursor null)."""
        status, first = await json_of(await tokenless.get(f"/orders/{FREE}/history", params={"limit": "1"}))
        assert (status, [e["version"] for e in first["history"]], first["next_cursor"]) == (200, [1], "1")
        status, last = await json_of(await tokenless.get(f"/orders/{FREE}/history",
                                                         params={"limit": "1", "cursor": first["next_cursor"]}))
        assert (status, [e["version"] for e in last["history"]], last["next_cursor"]) == (200, [2], None)

    @pytest.mark.parametrize("query", [{"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"cursor": "-1"}])
    async def test_a_bad_page_is_a_422(self, tokenless, query):
        """A limit outside 1..1000 or a cursor that is no next_cursor is invalid_request."""
        status, body = await json_of(await tokenless.get(f"/orders/{FREE}/history", params=query))
        assert (status, body["reason"]) == (422, "invalid_request")

    async def test_a_client_token_sees_its_own_orders_only(self, with_tokens):
        """A client's token gets its own order's history and another client's order as missing (R4)."""
        own = await with_tokens.get(f"/orders/{FREE}/history", headers={"Authorization": "Bearer ann"})
        assert own.status == 200
        other = await with_tokens.get(f"/orders/{PAID}/history", headers={"Authorization": "Bearer ann"})
        assert (other.status, (await other.json())["reason"]) == (404, "order_not_found")

    async def test_an_order_id_out_of_range_is_a_422(self, tokenless):
        """An id that is not a positive bigint is refused before any read."""
        status, body = await json_of(await tokenless.get("/orders/0/history"))
        assert (status, body["reason"]) == (422, "invalid_request")


class TestStatuses:
    async def test_statuses_of_one_order_type(self, tokenless, backend):
        """?order_type= answers the views' statuses of that type."""
        status, body = await json_of(await tokenless.get("/statuses", params={"order_type": "PO"}))
        assert status == 200
        assert body == await backend.views.statuses("PO")
        assert body and len(body) < len(await backend.views.statuses())
