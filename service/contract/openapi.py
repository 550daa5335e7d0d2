"""The OpenAPI 3.1 document of the HTTP faces (DESIGN §11): the gateway's seed APIs and the worker's
read API, generated from the pydantic models of `service.contract.http`.

The gateway serves it at `/openapi.json`; `python -m tools.contract` writes it to schemas/openapi.json
(and `--check` finds that file stale).
"""

from __future__ import annotations

from pydantic.json_schema import models_json_schema

from service.contract import http
from service.domain.model import Reason

REF = "#/components/schemas/{model}"


def _ref(model) -> dict:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict) -> dict:
    return {"application/json": {"schema": schema}}


ERROR = _json(_ref(http.ErrorBody))
UNAUTHORIZED = {"description": "No or bad bearer token (reason actor_not_authenticated).", "content": ERROR}
UNAVAILABLE = {"description": "The command could not be published now (the broker refuses the gateway's writes: "
                              "nothing was published; or the broker did not take it within "
                              "ORDERSTATUS_GATEWAY_WAIT_S: it may still be applied); try again later, with the same "
                              "Idempotency-Key, under which it is applied once (reason service_unavailable).",
               "headers": {"Retry-After": {"schema": {"type": "integer"},
                                           "description": "seconds to wait before a retry (a broker outage)"}},
               "content": ERROR}
ACCEPTED = {
    "description": "No outcome within ORDERSTATUS_GATEWAY_WAIT_S: poll the Location (GET /commands/{command_id}).",
    "headers": {"Location": {"schema": {"type": "string"}, "description": "/commands/{command_id}"}},
    "content": _json(_ref(http.Accepted)),
}


def _refusals(*codes: int) -> dict:
    reasons = {
        403: "role_not_permitted, override_not_allowed",
        404: "order_not_found",
        409: "no_change, stale_status, transition_not_allowed, cancel_has_goods_out_notes, cancel_order_invoiced, "
             "cancel_has_payments",
        413: "batch_too_large",
        422: "status_not_found, status_not_available, status_hidden, invalid_command, idempotency_key_reused (an "
             "Idempotency-Key already used by this caller for a different request)",
    }
    return {str(code): {"description": f"Refused: {reasons[code]}.", "content": ERROR} for code in codes}


ORDER_ID = {"name": "orderId", "in": "path", "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}}
IDEMPOTENCY_KEY = {"name": "Idempotency-Key", "in": "header", "required": False,
                   "description": "Becomes the command id, per caller (derived from the token's issuer and "
                                  "subject and the key, so two callers never share one): a retried request never "
                                  "applies twice and is answered with the first one's outcome. The key stays bound "
                                  "to its first request: reused with another request it is answered 422 "
                                  "idempotency_key_reused and nothing is published.",
                   "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^@]"}}
SECURED = [{"bearer": []}]


def _change(summary: str, model, seed: str) -> dict:
    return {"put": {
        "tags": ["gateway"], "summary": summary, "description": f"{seed} Answers once the outcome is known.",
        "security": SECURED, "parameters": [ORDER_ID, IDEMPOTENCY_KEY],
        "requestBody": {"required": True, "content": _json(_ref(model))},
        "responses": {"200": {"description": "Applied.", "content": _json(_ref(http.Empty))}, "202": ACCEPTED,
                      "401": UNAUTHORIZED, **_refusals(403, 404, 409, 422), "503": UNAVAILABLE},
    }}


def _read(summary: str, description: str, parameters: list, tag: str = "read API") -> dict:
    return {"get": {
        "tags": [tag], "summary": summary, "description": description, "security": SECURED,
        "parameters": parameters,
        "responses": {"200": {"description": "Found.", "content": _json({"type": "object"})}, "401": UNAUTHORIZED,
                      **_refusals(404)},
    }}


def openapi_document() -> dict:
    _, schemas = models_json_schema([(model, "validation") for model in http.HTTP_MODELS],
                                    ref_template=REF)
    results = {"type": "array", "items": _ref(http.StoreFeederResult)}
    items = {"type": "array", "items": _ref(http.StoreFeederOverride)}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "orderstatus HTTP faces",
            "version": "2",
            "description": "The seed APIs (Wordbee, StoreFeeder, Brightpearl) served by `orderstatus gateway` as "
                           "request-reply over Kafka, and the worker's read API. Every route needs "
                           "`Authorization: Bearer <actor token>`; the actor is the token's principal. Reason codes: "
                           + ", ".join(r.value for r in Reason) + ".",
        },
        "servers": [{"url": "http://127.0.0.1:8082", "description": "gateway (ORDERSTATUS_GATEWAY_PORT)"},
                    {"url": "http://127.0.0.1:8080", "description": "worker read API (ORDERSTATUS_HTTP_PORT)"}],
        "paths": {
            "/api/orders/{orderId}/status": _change(
                "Change an order's status (Wordbee)", http.WordbeeStatusChange,
                "Wordbee PUT orders/{orderId}/status: `message` becomes a public note (it is in the email)."),
            "/api/orders/{orderId}/status/transitions": _read(
                "Available next statuses (Wordbee, R13)", "For the token's actor.", [ORDER_ID], tag="gateway"),
            "/orders/override-order-statuses": {"put": {
                "tags": ["gateway"], "summary": "Override order statuses (StoreFeeder)",
                "description": "Up to ORDERSTATUS_MAX_BATCH_ITEMS (50) items, each applied or refused on its own; "
                               "JSON or XML (ArrayOfOverrideOrderStatusModel), answered in kind or per Accept.",
                "security": SECURED, "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": items}, "application/xml": {"schema": items}}},
                "responses": {
                    "200": {"description": "A result per item, in item order.",
                            "content": {"application/json": {"schema": results},
                                        "application/xml": {"schema": results}}},
                    "202": ACCEPTED, "401": UNAUTHORIZED, **_refusals(413, 422), "503": UNAVAILABLE},
            }},
            "/order-service/order/{orderId}/status": _change(
                "Change an order's status (Brightpearl)", http.BrightpearlStatusChange,
                "Brightpearl PUT order/{ORDER-ID}/status with orderStatusId and orderNote."),
            "/commands/{command_id}": {"get": {
                "tags": ["gateway"], "summary": "A command's outcome, once known", "security": SECURED,
                "parameters": [{"name": "command_id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "Known.", "content": _json(_ref(http.CommandOutcome))},
                              "401": UNAUTHORIZED,
                              "404": {"description": "Not known (yet), or not yours.", "content": ERROR}},
            }},
            "/statuses": _read("The statuses (of one order type)", "DESIGN §6.3.",
                               [{"name": "order_type", "in": "query", "required": False, "schema": {"type": "string"}}]),
            "/orders/{orderId}/status/transitions": _read("Available next statuses (R13)", "For the token's actor.",
                                                          [ORDER_ID]),
            "/orders/{orderId}/history": _read(
                "The order's changes and notes",
                "A client sees its own orders and public notes only (so does a request without a token, unless "
                "ORDERSTATUS_READ_API_OPEN). Each change's `actor` has its `role` (staff and above also see `id` and "
                "`client_id`) and, when a verified token named it, `name` (absent otherwise, and without a token). "
                "Paged: the body's `next_cursor` (null on the last page) is the next page's `cursor`.",
                [ORDER_ID,
                 {"name": "limit", "in": "query", "required": False,
                  "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 1000}},
                 {"name": "cursor", "in": "query", "required": False,
                  "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}}]),
        },
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                                           "description": "An actor token: sub, role, client_id, name (DESIGN §11)."}},
        },
    }
