"""Authenticated actors against the real worker (DESIGN §11): on Kafka, a command acts only as the actor its
`actor-token` vouches for; on HTTP, the read API answers only a bearer token, as the token's actor."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import aiohttp
import pytest

from service.devkit.embedded import free_port
from service.runtime.auth import issue_token, new_key_pair
from tests.helpers.cli import ok, run_cli_async
from tests.helpers.command_chains import wait_processed
from tests.helpers.commands import change, override
from tests.helpers.database import fetch, seed
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for

ISSUER, AUDIENCE = "https://id.example.com", "orderstatus"
PRIVATE, PUBLIC = new_key_pair()
ATTACKER_PRIVATE, _ = new_key_pair()


@pytest.fixture
def keys(tmp_path):
    private, public = tmp_path / "signing.pem", tmp_path / "signing.pub.pem"
    private.write_bytes(PRIVATE)
    public.write_bytes(PUBLIC)
    return private, public


@pytest.fixture
def secured(settings, keys):
    """Settings with ACTOR_AUTH=required and our verification key."""
    return settings.model_copy(update={"actor_auth": "required", "auth_public_keys": str(keys[1]),
                                       "auth_issuer": ISSUER, "auth_audience": AUDIENCE, "http_port": free_port()})


def token(private: bytes = PRIVATE, **claims) -> str:
    base = dict(sub="staff-1", role="staff", issuer=ISSUER, audience=AUDIENCE)
    base.update(claims)
    return issue_token(private, **base)


def signed(command: dict, value: str | None) -> tuple[dict, list]:
    return command, [] if value is None else [("actor-token", value.encode())]


async def test_only_a_valid_matching_token_lets_a_command_act(secured):
    """Missing, forged, expired, wrong-issuer and mismatched tokens are rejected with
    actor_not_authenticated and change nothing; the valid one applies, named in the event."""
    await seed(secured)
    expired = token(ttl=timedelta(seconds=1), now=datetime.now(timezone.utc) - timedelta(hours=2))
    cases = {
        "missing": signed(change(1033, "Confirmed"), None),
        "forged": signed(change(1033, "Confirmed"), token(ATTACKER_PRIVATE)),
        "expired": signed(change(1033, "Confirmed"), expired),
        "wrong-issuer": signed(change(1033, "Confirmed"), token(issuer="https://evil.example.com")),
        "mismatched": signed(change(1033, "Confirmed", role="system"), token()),  # staff token, system actor
        "override-forged": signed(override([(1034, "OnHold")]), token(ATTACKER_PRIVATE, sub="manager-1",
                                                                       role="manager")),
    }
    valid = change(1033, "Confirmed")
    async with running_worker(secured), TopicReader(secured, secured.events_topic) as events:
        for command, headers in cases.values():
            await produce(secured, [command], headers=headers)
        await produce(secured, [valid], headers=[("actor-token", token(name="Sam Staff").encode())])
        ids = {c["command_id"] for c, _ in cases.values()} | {valid["command_id"]}
        found = await events_for(events, ids, timeout=30)
    by_command = {}
    for event in found:
        by_command.setdefault(event["command_id"], []).append(event)
    for name, (command, _) in cases.items():
        first = by_command[command["command_id"]][0]
        assert (first["type"], first["reason"]) == ("OrderStatusChangeRejected", "actor_not_authenticated"), name
    summary = by_command[cases["override-forged"][0]["command_id"]][-1]
    assert (summary["reason"], summary["results"]) == ("actor_not_authenticated", [])
    [applied] = by_command[valid["command_id"]]
    assert applied["type"] == "OrderStatusChanged" and applied["actor"]["name"] == "Sam Staff"
    versions = await fetch(secured, "SELECT order_id, version FROM orders WHERE order_id IN (1033, 1034) ORDER BY 1")
    assert [tuple(r) for r in versions] == [(1033, 1), (1034, 0)]  # only the valid command applied


async def test_optional_auth_accepts_no_token_and_refuses_a_bad_one(secured):
    """ACTOR_AUTH=optional: a command without a token applies; one with a forged token does not."""
    await seed(secured)
    optional = secured.model_copy(update={"actor_auth": "optional"})
    plain, forged = change(1033, "Confirmed"), change(3001, "QuoteAccepted", role="manager")
    async with running_worker(optional), TopicReader(optional, optional.events_topic) as events:
        await produce(optional, [plain])
        await produce(optional, [forged], headers=[("actor-token", token(ATTACKER_PRIVATE).encode())])
        found = {e["command_id"]: e for e in await events_for(events, {plain["command_id"], forged["command_id"]})}
    assert found[plain["command_id"]]["type"] == "OrderStatusChanged"
    assert found[forged["command_id"]]["reason"] == "actor_not_authenticated"


async def _get(port: int, path: str, bearer: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}{path}", headers=headers) as response:
            return response.status, await response.json()


async def test_the_read_api_answers_only_a_token_and_as_its_actor(secured):
    """Without a valid bearer token every read route is 401; a client sees its own order with public notes
    only (the private one is absent), another client's order looks missing, `?role=` lifts nothing."""
    await seed(secured)
    private_note = change(1029, "OnHold", role="manager", note={"text": "internal: payment disputed"})
    public_note = change(1029, "Confirmed", role="manager", note={"text": "Back on track", "is_public": True})
    manager = token(sub="manager-1", role="manager")
    client_c1 = token(sub="u-7", role="client", client_id="c-1")
    client_c9 = token(sub="u-9", role="client", client_id="c-9")
    port = secured.http_port
    async with running_worker(secured), TopicReader(secured, secured.events_topic) as events:
        await produce(secured, [private_note], headers=[("actor-token", manager.encode())])
        await events_for(events, {private_note["command_id"]})
        await produce(secured, [public_note], headers=[("actor-token", manager.encode())])
        await events_for(events, {public_note["command_id"]})

        for path in ("/statuses", "/orders/1029/history", "/orders/1029/status/transitions?role=manager"):
            assert (await _get(port, path))[0] == 401
            status, body = await _get(port, path, token(ATTACKER_PRIVATE, sub="manager-1", role="manager"))
            assert status == 401 and body["reason"] == "actor_not_authenticated"
        assert (await _get(port, "/healthz"))[0] == 200  # probes stay open

        status, mine = await _get(port, "/orders/1029/history", client_c1)
        assert status == 200
        notes = [entry["note"] for entry in mine["history"]]
        assert notes == [None, {"text": "Back on track", "is_public": True, "file_id": None}]
        assert all(set(entry["actor"]) == {"role"} for entry in mine["history"])
        assert "internal" not in json.dumps(mine)

        assert (await _get(port, "/orders/1029/history", client_c9))[0] == 404
        assert (await _get(port, "/orders/1029/status/transitions?role=manager", client_c9))[0] == 404
        status, seen = await _get(port, "/orders/1029/status/transitions?role=manager", client_c1)
        assert status == 200 and seen["can_override_status"] is False  # the token's role, not the query's

        status, full = await _get(port, "/orders/1029/history", manager)
        assert [e["note"]["text"] for e in full["history"]] == ["internal: payment disputed", "Back on track"]


async def test_the_read_api_can_have_its_own_port(secured):
    """ORDERSTATUS_READ_API_PORT serves the read API apart from the probes."""
    await seed(secured)
    read_port = free_port()
    apart = secured.model_copy(update={"read_api_port": read_port})
    async with running_worker(apart):
        assert (await _get(read_port, "/statuses", token()))[0] == 200
        assert (await _get(apart.http_port, "/healthz"))[0] == 200
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{apart.http_port}/statuses") as response:
                assert response.status == 404  # not on the probes' port


async def test_tokens_issue_and_send_token_act_end_to_end(secured, cli_env, keys):
    """`orderstatus tokens issue` signs a token that `orderstatus send --token` attaches, and the worker
    accepts it; the same command without the token is refused."""
    await seed(secured)
    env = {**cli_env, "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE": str(keys[0]), "ORDERSTATUS_AUTH_ISSUER": ISSUER,
           "ORDERSTATUS_AUTH_AUDIENCE": AUDIENCE}
    issued = ok(await run_cli_async(env, "tokens", "issue", "--sub", "staff-1", "--role", "staff", "--ttl", "10m"))
    signed_token = issued.stdout.strip()
    with_token, without = change(1033, "Confirmed"), change(1033, "Confirmed")
    async with running_worker(secured), TopicReader(secured, secured.events_topic) as events:
        ok(await run_cli_async(env, "send", "--token", signed_token, json.dumps(with_token)))
        ok(await run_cli_async(env, "send", json.dumps(without)))
        found = {e["command_id"]: e for e in await events_for(events, {with_token["command_id"], without["command_id"]})}
    assert found[with_token["command_id"]]["type"] == "OrderStatusChanged"
    assert found[without["command_id"]]["reason"] == "actor_not_authenticated"


class TestTokensMeanTheSameOnBothFaces:
    """Issue 20: with `optional` (the dev default) and with `off` and keys, a token is never required, always
    verified when presented (read API and `send --token`), refused in words; the read API acts as the token."""

    @pytest.mark.parametrize("mode", ["optional", "off"])
    async def test_the_read_api_verifies_a_presented_token_and_requires_none(self, secured, mode):
        """No token: served as before (`?role=`); a bad token: 401 in one sentence; a good one: its role, no `?role=`."""
        await seed(secured)
        relaxed = secured.model_copy(update={"actor_auth": mode})
        port = relaxed.http_port
        async with running_worker(relaxed):
            assert (await _get(port, "/orders/1029/status/transitions?role=manager"))[0] == 200
            assert (await _get(port, "/orders/1029/history"))[0] == 200
            for bad in ("not-a-jwt", "abc.t7c.xyz", token(ATTACKER_PRIVATE, sub="m-1", role="manager")):
                for path in ("/statuses", "/orders/1029/history", "/orders/1029/status/transitions"):
                    status, body = await _get(port, path, bad)
                    assert status == 401 and body["reason"] == "actor_not_authenticated", (bad, path, body)
                    assert "codec" not in body["message"] and "Invalid header" not in body["message"]
            status, body = await _get(port, "/orders/1029/status/transitions", "not-a-jwt")
            assert "not a JWT" in body["message"]
            status, seen = await _get(port, "/orders/1029/status/transitions",
                                      token(sub="u-7", role="client", client_id="c-1"))
            assert status == 200 and seen["can_override_status"] is False
            status, seen = await _get(port, "/orders/1029/status/transitions", token(sub="m-1", role="manager"))
            assert status == 200 and seen["can_override_status"] is True
            assert (await _get(port, "/orders/1029/history", token(sub="u-9", role="client", client_id="c-9")))[0] == 404

    async def test_send_refuses_a_bad_token_in_one_line_and_publishes_nothing(self, secured, cli_env, keys):
        """`send --token` checks the token before publishing: garbage, a forged or an expired one is one line on
        stderr (exit 1), never a silent publish; a good one is sent."""
        from tests.helpers.cli import user_error

        await seed(secured)
        env = {**cli_env, "ORDERSTATUS_AUTH_PRIVATE_KEY_FILE": str(keys[0]), "ORDERSTATUS_AUTH_ISSUER": ISSUER,
               "ORDERSTATUS_AUTH_AUDIENCE": AUDIENCE}
        expired = token(ttl=timedelta(minutes=1), now=datetime.now(timezone.utc) - timedelta(minutes=5))
        refused = change(1033, "Confirmed")
        for bad, words in (("not-a-jwt", "not a JWT"), (token(ATTACKER_PRIVATE), "signature"), (expired, "expired")):
            line = user_error(await run_cli_async(env, "send", "--token", bad, json.dumps(refused)), "--token", words)
            assert "codec" not in line
        without_keys = {k: v for k, v in cli_env.items() if not k.startswith("ORDERSTATUS_AUTH_")}
        user_error(await run_cli_async(without_keys, "send", "--token", "not-a-jwt", json.dumps(refused)), "not a JWT")
        good = change(1033, "Confirmed")
        async with running_worker(secured), TopicReader(secured, secured.events_topic) as events:
            ok(await run_cli_async(env, "send", "--token", token(), json.dumps(good)))
            found = await events_for(events, {good["command_id"]})
        assert [e["command_id"] for e in found] == [good["command_id"]]
        assert await fetch(secured, "SELECT 1 FROM processed_commands WHERE command_id = $1", refused["command_id"]) == []


async def test_a_refused_command_claims_nothing_it_names(secured):
    """Issue 23 item 2: with ACTOR_AUTH=required a command without a valid token is recorded under its
    position, not its id, its redrive.* headers spend no redrive key and its rejection carries no actor —
    so the victim's own command under that id still applies, with an event id of its own."""
    await seed(secured)
    victim = change(1033, "Confirmed")
    forged_redrive = [("redrive.count", b"1"), ("redrive.dlq-partition", b"0"), ("redrive.dlq-offset", b"7")]
    unreadable = b'{"command_id": "victim-of-garbage", "type": "ChangeOrderStatus"'
    async with running_worker(secured), TopicReader(secured, secured.events_topic) as events:
        await produce(secured, [{**victim, "actor": {"id": "victim", "role": "manager"}}],
                      headers=[("actor-token", token(ATTACKER_PRIVATE).encode()), *forged_redrive])
        [refused] = await events_for(events, {victim["command_id"]})
        await produce(secured, [unreadable], headers=forged_redrive)
        await produce(secured, [victim], headers=[("actor-token", token().encode())])
        both = await events.wait_for(lambda values: [v["type"] for v in values if v.get("command_id") ==
                                                     victim["command_id"]] == [refused["type"], "OrderStatusChanged"],
                                     30, "the victim's own event after the refused one")
        applied = [v for v in both if v.get("command_id") == victim["command_id"]][-1]
        await wait_processed(secured, 3)  # the refused one, the unreadable one, the victim's
    assert (refused["reason"], refused["actor"]) == ("actor_not_authenticated", None)
    assert applied["type"] == "OrderStatusChanged" and applied["event_id"] != refused["event_id"]
    records = {r["command_id"]: (r["command_type"], r["outcome"])
               for r in await fetch(secured, "SELECT command_id, command_type, outcome FROM processed_commands")}
    assert records[victim["command_id"]] == ("ChangeOrderStatus", "applied")
    refused_at = [key for key, (kind, _) in records.items() if kind == "unauthenticated"]
    assert len(refused_at) == 1 and refused_at[0].startswith(f"@{secured.commands_topic}")
    assert "victim-of-garbage" not in records  # the unreadable one's claimed id is not burnt either
    assert not [key for key in records if key.startswith("@redrive:")]  # no forged redrive key spent
