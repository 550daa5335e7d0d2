"""`orderstatus gateway`: the three seed APIs over HTTP (DESIGN §11), as request-reply over Kafka.

Each request is authenticated (bearer token -> principal; no actor field is read from the body),
turned into our command with a token of its own in `actor-token` (signed with the gateway's key, bound to
the command's id and value, short-lived: the caller's token is never put on Kafka), published, and answered from its
outcome event, read by command id from the events topic (EventsTail: no consumer group, so every
replica sees every event). No outcome within ORDERSTATUS_GATEWAY_WAIT_S: 202 and a Location to poll.
An `Idempotency-Key` header becomes the command id — scoped to the caller: the command id is derived
from the token's issuer and subject and the key (`idempotency_command_id`), so two callers never share
one, and one caller's key can neither reveal nor pre-empt another's command (issue 23). The key is
bound, in Postgres, to the fingerprint of its first request (method, path and the command it made);
the same key with another request is answered 422 `idempotency_key_reused` and nothing is published
(DESIGN §12). A retried request (same key, same request) never applies twice: a command already
processed is answered from Postgres, after the access check of `GET /commands/{id}`, without
publishing again. A command the broker refuses to take (the gateway's Write ACL revoked) is answered 503
`service_unavailable`, logged as the refusal, while reads go on being served. So is a command the broker does not
take within ORDERSTATUS_GATEWAY_WAIT_S (an outage: stopped, unreachable, frozen), with a Retry-After; its send is
kept, so a retry with the same key does not publish it twice (`gateway/publishing.py`). The wait bounds the whole
answer: the publish and then the outcome share it."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from xml.etree.ElementTree import Element, SubElement, tostring

import structlog
from aiohttp import web
from defusedxml import ElementTree as SafeXml
from pydantic import BaseModel, ValidationError

from service.adapters.errors import AccessRefused
from service.contract.commands import BIGINT_MAX, InputLimits, order_id_in_range, parse_command
from service.contract.http import (
    BrightpearlStatusChange,
    StoreFeederOverride,
    StoreFeederResult,
    WordbeeStatusChange,
)
from service.contract.json_text import parse_json
from service.contract.keys import command_key
from service.contract.outcome import Outcome
from service.contract.validation import first_error, is_storable_text
from service.domain.access import may_see_command, shown, viewer_of
from service.domain.commands import InvalidCommand
from service.domain.model import Principal
from service.domain.read_views import ReadViews
from service.gateway import translate
from service.gateway import docs as api_docs
from service.gateway.docs import openapi_document, render_docs
from service.gateway.limits import CHANGE_BODY_MAX, InFlight, Limited, override_body_max, read_body
from service.gateway.ports import CommandRecords
from service.gateway.publishing import CommandPublisher, NotPublished
from service.runtime.auth import TOKEN_HEADER, NotAuthenticated
from service.runtime.health import note_auth_failure, note_principal

log = structlog.get_logger("orderstatus.gateway")

_XML = re.compile(r"\b(application|text)/xml\b")
_HELD = web.RequestKey("orderstatus.gateway.principal_slot", str)  # whose per-principal slot the request holds


# the answer (503) when a dependency refuses the gateway's own access, e.g. the broker its Write on the commands
# topic: the caller may retry; what was refused, and to whom, goes to the log, not to the caller
UNAVAILABLE = "service_unavailable"
# Retry-After (seconds) of a 503 for a broker outage: a retry sooner would most likely meet the outage again
OUTAGE_RETRY_AFTER_S = 5


class Refusal(Exception):
    """An answer instead of the outcome (nothing published, or not known to be): a status and the error body."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = headers or {}


class Gateway:
    # issue 23: requests in flight capped per replica and per principal (None: no cap), and how long a body
    # may take to arrive; run_gateway sets both from the settings
    in_flight: InFlight | None = None
    body_timeout_s: float = 30.0

    def __init__(self, *, records: CommandRecords, read_views: ReadViews, producer, tail,
                 authenticate: Callable[[str | None], Principal], commands_topic: str, wait_s: float,
                 limits: InputLimits, issuer: str | None = None,
                 sign_command: Callable[[Principal, str, bytes], str] | None = None) -> None:
        self.records = records  # idempotency keys bound, outcomes the worker recorded (`gateway/ports.py`)
        self.read_views = read_views  # the Wordbee transitions, as the read API reads them (its own rules cache)
        # the command's own bound token (issue 23): the caller's never leaves here; run_gateway always gives one
        self.sign_command = sign_command
        self.producer = producer
        self.publisher = CommandPublisher(producer, commands_topic)  # bounded, and once per command id (outages)
        self.tail = tail
        self.authenticate = authenticate
        self.commands_topic = commands_topic
        self.wait_s = wait_s
        self.limits = limits
        self.issuer = issuer or ""  # the verifier enforces it when set: every token here is of this issuer

    def routes(self) -> list:
        return [
            ("PUT", "/api/orders/{order_id}/status", self.wordbee_change),
            ("GET", "/api/orders/{order_id}/status/transitions", self.wordbee_transitions),
            ("PUT", "/orders/override-order-statuses", self.storefeeder_override),
            ("PUT", "/order-service/order/{order_id}/status", self.brightpearl_change),
            ("GET", "/commands/{command_id}", self.command),
            ("GET", "/openapi.json", self.openapi),
            ("GET", "/docs", self.docs),
            ("GET", api_docs.SPEC_30, self.docs_spec),
            ("GET", api_docs.INIT, self.docs_init),
            ("GET", api_docs.ASSET_ROOT + "{name}", self.docs_asset),
        ]

    # ------------------------------------------------------------------ the seed routes

    async def wordbee_change(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self._change(request, WordbeeStatusChange, translate.wordbee_command))

    async def brightpearl_change(self, request: web.Request) -> web.StreamResponse:
        return await self._answer(request, self._change(request, BrightpearlStatusChange,
                                                        translate.brightpearl_command))

    async def storefeeder_override(self, request: web.Request) -> web.StreamResponse:
        async def run():
            principal, token = self._principal(request)
            items = await self._override_items(request)
            command_id, keyed = self._command_id(request, principal)
            command = translate.storefeeder_command(items, principal, command_id)
            return await self._submit(request, principal, command, token, translate.override_answer, keyed)

        return await self._answer(request, run())

    async def wordbee_transitions(self, request: web.Request) -> web.StreamResponse:
        async def run():
            principal, _ = self._principal(request)
            order_id = _order_id(request)
            found = await self.read_views.transitions(order_id, principal.actor())
            if found is None:
                return 404, translate.error("order_not_found",
                                            f"Order {order_id} does not exist or you do not have access to it.")
            return 200, found

        return await self._answer(request, run())

    async def command(self, request: web.Request) -> web.StreamResponse:
        async def run():
            principal, _ = self._principal(request)
            command_id = request.match_info["command_id"]
            found = await self.records.outcome(command_id)
            # a client sees only the commands it issued; one it may not see looks unknown, like an order (R4)
            viewer = viewer_of(principal)
            if found is None or not may_see_command(viewer, found["events"]):
                return 404, translate.error("command_not_found", f"No outcome is known for command {command_id}.")
            # what the history hides from a client, this hides too
            return 200, {**found, "events": [shown(viewer, e) for e in found["events"]]}

        return await self._answer(request, run())

    async def openapi(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(openapi_document())

    async def docs(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=render_docs(openapi_document()), content_type="text/html")

    async def docs_spec(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(api_docs.openapi_30())

    async def docs_init(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=api_docs.INIT_SCRIPT, content_type="application/javascript")

    async def docs_asset(self, request: web.Request) -> web.StreamResponse:
        found = api_docs.asset(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, media = found
        return web.Response(body=body, content_type=media, headers={"Cache-Control": "public, max-age=86400"})

    # ------------------------------------------------------------------ the request-reply machinery

    async def _change(self, request: web.Request, model: type[BaseModel], build):
        principal, token = self._principal(request)
        order_id = _order_id(request)
        body = _validated(model, await self._json(request))
        command_id, keyed = self._command_id(request, principal)
        return await self._submit(request, principal, build(order_id, body, principal, command_id), token,
                                  translate.change_answer, keyed)

    async def _submit(self, request: web.Request, principal: Principal, command: dict, token: str, answer,
                      keyed: bool):
        value = json.dumps(command).encode()
        parsed = parse_command(value, self.limits)
        if isinstance(parsed, InvalidCommand):
            raise Refusal(422, "invalid_command", parsed.message)
        command_id = parsed.command_id
        if keyed:  # the key stays bound to its first request: another request under it is refused, unpublished
            fingerprint = request_fingerprint(request.method, request.path, command)
            if await self.records.bind_key(command_id, fingerprint) != fingerprint:
                raise Refusal(422, "idempotency_key_reused",
                              "This Idempotency-Key was already used for a different request; use a new key for a "
                              "new request, or repeat the first request exactly to get its outcome.")
        known = await self.records.outcome(command_id)
        if known is not None and known["events"]:  # a retried request: the first one's answer, nothing new
            if not may_see_command(viewer_of(principal), known["events"]):  # GET /commands/{id}'s check, every replay
                raise Refusal(422, "idempotency_key_reused", "This Idempotency-Key was already used for a different "
                                                             "request; use a new key for a new request.")
            return answer(Outcome(command_id, parsed.type, known["events"], final=True))
        key = command_key(command)  # DESIGN §5.3
        deadline = asyncio.get_running_loop().time() + self.wait_s  # publish and outcome share the wait
        self.tail.expect(command_id, parsed.type)  # before publishing: the outcome cannot slip past
        try:
            if self.sign_command is None:
                raise RuntimeError("the gateway has no command signing key (ORDERSTATUS_GATEWAY_SIGNING_KEY_FILE)")
            bound = self.sign_command(principal, command_id, value)  # only good for this command id and value
            await self.publisher.publish(command_id, value, key, [(TOKEN_HEADER, bound.encode())], self.wait_s)
        except NotPublished as outage:  # the broker away: no fault of the caller's, who may retry later
            self.tail.forget(command_id)
            log.warning("command not published: Kafka unavailable", command_id=command_id, dependency="kafka",
                        error=str(outage))
            raise Refusal(503, UNAVAILABLE, "The service could not take the command in time; it may still be "
                                            "applied. Try again later with the same Idempotency-Key: under one key "
                                            "a command is applied once.",
                          {"Retry-After": str(OUTAGE_RETRY_AFTER_S)}) from None
        except AccessRefused as refused:  # e.g. its Write ACL revoked while it runs: no fault of the caller's
            self.tail.forget(command_id)
            log.error("command not published: access refused", command_id=command_id, dependency=refused.dependency,
                      error=str(refused))
            raise Refusal(503, UNAVAILABLE, "The service cannot accept commands right now and nothing was published; "
                                            "try again later (with the same Idempotency-Key, if any).") from None
        except BaseException:
            self.tail.forget(command_id)  # the waiting table is cleaned on every path
            raise
        outcome = await self.tail.wait(command_id, max(0.0, deadline - asyncio.get_running_loop().time()))
        if outcome.final:
            return answer(outcome)
        return 202, {"command_id": command_id, "status": "accepted"}, {"Location": command_location(command_id)}

    async def _answer(self, request: web.Request, work) -> web.StreamResponse:
        try:
            if self.in_flight is not None:
                self.in_flight.enter()  # the replica's cap, before anything is read
        except Limited as limited:
            work.close()
            status, body, extra = limited.status, translate.error(limited.reason, limited.message), [limited.headers]
        else:
            try:
                status, body, *extra = await work
            except Refusal as refusal:
                status, body = refusal.status, translate.error(refusal.reason, refusal.message)
                extra = [refusal.headers]
            except Limited as limited:
                status, body = limited.status, translate.error(limited.reason, limited.message)
                extra = [limited.headers]
            finally:
                if self.in_flight is not None:
                    self.in_flight.leave()
                    if request.get(_HELD) is not None:
                        self.in_flight.leave_principal(request[_HELD])
        headers = extra[0] if extra else {}
        if status == 401:
            headers = {**headers, "WWW-Authenticate": 'Bearer realm="orderstatus"'}
        if isinstance(body, list) and _wants_xml(request):
            return web.Response(status=status, body=_results_xml(body), content_type="application/xml",
                                headers=headers)
        if isinstance(body, list):
            body = [item.model_dump(exclude_none=True) for item in body]
        return web.json_response(body, status=status, headers=headers)

    def _principal(self, request: web.Request) -> tuple[Principal, str]:
        header = request.headers.get("Authorization")
        try:
            principal = self.authenticate(header)
        except NotAuthenticated as exc:
            note_auth_failure(request, str(exc))
            raise Refusal(401, "actor_not_authenticated", str(exc)) from None
        except Exception:  # whatever a hostile header provokes is a refusal, never a 500
            note_auth_failure(request, "the bearer token cannot be read")
            raise Refusal(401, "actor_not_authenticated", "the bearer token cannot be read") from None
        note_principal(request, principal.sub)
        if self.in_flight is not None and request.get(_HELD) is None:
            self.in_flight.enter_principal(principal.sub)  # one caller's cap (429), released by _answer
            request[_HELD] = principal.sub
        return principal, header.partition(" ")[2].strip()

    def _command_id(self, request: web.Request, principal: Principal) -> tuple[str, bool]:
        """(command id, whether an Idempotency-Key gave it): a fresh uuid, or the key's id for this caller."""
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return str(uuid.uuid4()), False
        if not (is_storable_text(key) and 0 < len(key) <= 200 and not key.startswith("@")):
            raise Refusal(422, "invalid_command", "Idempotency-Key must be 1-200 characters, not starting with '@'")
        return idempotency_command_id(self.issuer, principal.sub, key), True

    async def _body(self, request: web.Request) -> bytes:
        """The body, capped for its route before anything is parsed, read within body_timeout_s."""
        override = request.path == "/orders/override-order-statuses"
        limit = (override_body_max(self.limits.max_wire_items, self.limits.max_message_bytes) if override
                 else CHANGE_BODY_MAX)
        return await read_body(request, limit, self.body_timeout_s)

    async def _json(self, request: web.Request):
        body = await self._body(request)
        try:
            return parse_json(body)
        except (ValueError, RecursionError):
            raise Refusal(422, "invalid_command", "the body is not JSON") from None

    async def _override_items(self, request: web.Request) -> list[StoreFeederOverride]:
        if _XML.search(request.headers.get("Content-Type", "")):
            raw = _override_items_from_xml(await self._body(request))
        else:
            raw = await self._json(request)
        if not isinstance(raw, list):
            raise Refusal(422, "invalid_command", "the body must be a list of {OrderNumber, OrderStatus}")
        if len(raw) > self.limits.max_wire_items:
            raise Refusal(422, "invalid_command", f"at most {self.limits.max_wire_items} items are read")
        return [_validated(StoreFeederOverride, item, where=f"item {n}") for n, item in enumerate(raw)]


def idempotency_command_id(issuer: str, subject: str, key: str) -> str:
    """The command id of an `Idempotency-Key` sent by one caller: `idem-` and the base64url SHA-256 of issuer,
    subject and key (NUL-separated, so no two triples collide by concatenation). Two callers never share it; the
    same caller and key always get it back."""
    digest = hashlib.sha256("\0".join((issuer, subject, key)).encode()).digest()
    return "idem-" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def request_fingerprint(method: str, path: str, command: dict) -> str:
    """What makes two requests under one key "the same request": the method, the path and the command they
    make (the command id aside). Equal JSON in other spacing or key order, or the same batch in XML and in JSON,
    is the same request; any other body is not."""
    what = {k: v for k, v in command.items() if k != "command_id"}
    canonical = json.dumps([method, path, what], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_location(command_id: str) -> str:
    """The Location of a command's outcome, its id URL-encoded (a path segment, nothing else)."""
    return "/commands/" + urllib.parse.quote(command_id, safe="")


def _validated(model: type[BaseModel], data, where: str = "body"):
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Refusal(422, "invalid_command", f"{where}: {first_error(exc, whole=where)}") from None


def _order_id(request: web.Request) -> int:
    order_id = order_id_in_range(request.match_info["order_id"])
    if order_id is None:
        raise Refusal(422, "invalid_command", f"the order id must be an integer from 1 to {BIGINT_MAX}")
    return order_id


def _wants_xml(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    sent_xml = _XML.search(request.headers.get("Content-Type", ""))
    return bool(_XML.search(accept) or (sent_xml and "json" not in accept))


def _override_items_from_xml(body: bytes) -> list[dict]:
    """StoreFeeder's ArrayOfOverrideOrderStatusModel, parsed with defusedxml (no entities, no DTDs)."""
    try:
        root = SafeXml.fromstring(body)
    except Exception:  # ParseError and defusedxml's refusals of entities and DTDs alike
        raise Refusal(422, "invalid_command", "the body is not acceptable XML") from None
    items = []
    for element in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in element}
        number = fields.get("OrderNumber", "")
        if order_id_in_range(number) is None:
            raise Refusal(422, "invalid_command", f"OrderNumber {number[:40]!r} must match ^[1-9]\\d*$")
        items.append({"OrderNumber": int(number), "OrderStatus": fields.get("OrderStatus", "")})
    return items


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _results_xml(results: list[StoreFeederResult]) -> bytes:
    root = Element("ArrayOfOverrideOrderStatusResponse")
    for result in results:
        item = SubElement(root, "OverrideOrderStatusResponse")
        SubElement(item, "Success").text = "true" if result.Success else "false"
        if result.Error is not None:
            SubElement(item, "Error").text = result.Error
        if result.Reason is not None:
            SubElement(item, "Reason").text = result.Reason
        SubElement(item, "OrderNumber").text = str(result.OrderNumber)
        SubElement(item, "OrderStatus").text = str(result.OrderStatus)
    return tostring(root, encoding="utf-8", xml_declaration=True)
