"""The gateway's pure translation: seed requests to our commands, our events to the seeds' answers."""

from __future__ import annotations

import json

import pytest

from service.contract.commands import parse_command
from service.contract.events import OverrideResult
from service.contract.http import BrightpearlStatusChange, StoreFeederOverride, WordbeeStatusChange
from service.contract.outcome import Outcome
from service.contract.openapi import openapi_document
from service.domain.commands import ChangeOrderStatus, OverrideOrderStatuses
from service.domain.model import Principal, Reason
from service.gateway import translate
from service.gateway.docs import render_docs
from tests.helpers.events import as_read, changed, override_completed, rejected

CLIENT = Principal("u-7", "client", "c-1", "Ann")


def change(events: list[dict]) -> Outcome:
    return Outcome("c", "ChangeOrderStatus", events, final=True)


def batch(events: list[dict]) -> Outcome:
    return Outcome("c", "OverrideOrderStatuses", events, final=True)


class TestRequests:
    def test_the_actor_is_the_principal_and_wordbee_messages_are_public(self):
        """Wordbee's body names no actor: the command acts as the token's principal; `message` is public."""
        body = WordbeeStatusChange.model_validate({"status": 21, "message": "Please cancel", "notify": False})
        command = parse_command(json.dumps(translate.wordbee_command(1029, body, CLIENT, "c1")).encode())
        assert isinstance(command, ChangeOrderStatus)
        assert (command.actor.id, command.actor.role, command.actor.client_id) == ("u-7", "client", "c-1")
        assert command.note.text == "Please cancel" and command.note.is_public and command.notify is False

    def test_brightpearl_note_keeps_its_visibility_and_file(self):
        """orderNote {text, isPublic, fileId} becomes the note as given (isPublic defaults to false)."""
        body = BrightpearlStatusChange.model_validate({"orderStatusId": 21, "orderNote": {"text": "x", "fileId": 28}})
        command = parse_command(json.dumps(translate.brightpearl_command(1029, body, CLIENT, "c2")).encode())
        assert (command.status, command.note.is_public, command.note.file_id) == (21, False, 28)

    def test_storefeeder_items_become_one_override(self):
        """The array becomes one OverrideOrderStatuses, items in order, codes or ids as given."""
        items = [StoreFeederOverride.model_validate(i) for i in
                 ({"OrderNumber": 1, "OrderStatus": "OnHold"}, {"OrderNumber": 2, "OrderStatus": 21})]
        command = parse_command(json.dumps(translate.storefeeder_command(items, CLIENT, "c3")).encode())
        assert isinstance(command, OverrideOrderStatuses) and [(i.order_id, i.status) for i in command.items] == [
            (1, "OnHold"), (2, 21)]

    @pytest.mark.parametrize("body", [{"status": "21"}, {"status": True}, {"status": 21, "notify": "yes"}, {}])
    def test_malformed_wordbee_bodies_are_refused(self, body):
        """A body that is not the seed's shape does not validate (the gateway answers 422)."""
        with pytest.raises(ValueError):
            WordbeeStatusChange.model_validate(body)


class TestAnswers:
    def test_every_reason_has_a_status_code(self):
        """DESIGN §11 maps every reason code to an HTTP status."""
        assert set(translate.STATUS_BY_REASON) == set(Reason)

    @pytest.mark.parametrize(("reason", "status"), [
        ("order_not_found", 404), ("role_not_permitted", 403), ("override_not_allowed", 403), ("no_change", 409),
        ("stale_status", 409), ("transition_not_allowed", 409), ("cancel_has_payments", 409),
        ("status_not_found", 422), ("status_hidden", 422), ("invalid_command", 422), ("batch_too_large", 413),
        ("actor_not_authenticated", 401)])
    def test_a_rejection_answers_its_status_and_error_body(self, reason, status):
        """A rejected change answers the mapped status with {reason, message}."""
        refused = [as_read(rejected(1029, "c", "OnHold", reason, "why"))]
        assert translate.change_answer(change(refused)) == (status, {"reason": reason, "message": "why"})

    def test_an_applied_change_answers_200_with_an_empty_object(self):
        """The seeds answer a successful change with {}."""
        assert translate.change_answer(change([as_read(changed(1029))])) == (200, {})

    def test_a_batch_answers_a_result_per_item_and_a_refused_batch_its_status(self):
        """StoreFeeder: 200 and a result per item; a batch refused whole answers its own status."""
        summary = as_read(override_completed("c", [
            OverrideResult(order_id=1, status="OnHold", success=True),
            OverrideResult(order_id=2, status=21, success=False, reason="order_not_found", error="gone")]))
        status, results = translate.override_answer(batch([summary]))
        assert status == 200 and [(r.OrderNumber, r.Success, r.Reason, r.Error) for r in results] == [
            (1, True, None, None), (2, False, "order_not_found", "gone")]
        refused = [as_read(rejected(1, "c", "OnHold", "batch_too_large", "51 > 50")),
                   as_read(override_completed("c", [], item_count=51, reason="batch_too_large"))]
        assert translate.override_answer(batch(refused)) == (413, {"reason": "batch_too_large", "message": "51 > 50"})


    def test_the_summary_is_found_whatever_order_the_events_arrived_in(self):
        """Items and summary live on different partitions: an item event after the summary changes nothing."""
        summary = as_read(override_completed("c", [
            OverrideResult(order_id=9, status="OnHold", success=False, reason="order_not_found", error="gone")]))
        late_item = as_read(rejected(9, "c", "OnHold", "order_not_found", "gone"))
        status, results = translate.override_answer(batch([summary, late_item]))
        assert status == 200 and results[0].Reason == "order_not_found"


class TestOpenApi:
    def test_the_document_is_valid_openapi_3_1(self):
        """The generated document passes openapi-spec-validator."""
        from openapi_spec_validator import validate

        validate(openapi_document())

    def test_the_docs_page_is_swagger_ui_from_the_package_and_loads_nothing_from_elsewhere(self):
        """/docs is Swagger UI: every script and stylesheet it loads is served by the gateway from the
        swagger-ui-bundle package (no CDN), and the UI is given a valid OpenAPI 3.0 view with every route."""
        from html.parser import HTMLParser

        from openapi_spec_validator import validate

        from service.gateway import docs

        class Links(HTMLParser):
            def __init__(self):
                super().__init__()
                self.urls = []

            def handle_starttag(self, tag, attrs):
                self.urls += [value for name, value in attrs if name in ("src", "href")]

        links = Links()
        links.feed(render_docs(openapi_document()))
        assert f"{docs.ASSET_ROOT}swagger-ui-bundle.js" in links.urls and docs.INIT in links.urls
        for url in links.urls:
            assert url.startswith(docs.ASSET_ROOT) or url in (docs.INIT, "/openapi.json"), url
            if url.startswith(docs.ASSET_ROOT):
                body, _ = docs.asset(url.removeprefix(docs.ASSET_ROOT))
                assert len(body) > 500
        assert docs.asset("../../../etc/passwd") is None and docs.asset("index.html") is None
        assert docs.SPEC_30 in docs.INIT_SCRIPT and "SwaggerUIBundle(" in docs.INIT_SCRIPT
        view = docs.as_openapi_30(openapi_document())
        validate(view)  # OpenAPI 3.0, which the bundled Swagger UI renders (it does not render 3.1)
        assert view["openapi"] == "3.0.3" and view["paths"].keys() == openapi_document()["paths"].keys()
        note = view["components"]["schemas"]["BrightpearlNote"]["properties"]["text"]
        assert note["type"] == "string" and note["nullable"] is True and "anyOf" not in note
        for name in ("WordbeeStatusChange", "BrightpearlStatusChange", "StoreFeederOverride"):  # the seeds' examples
            example = view["components"]["schemas"][name]["example"]
            assert example == openapi_document()["components"]["schemas"][name]["examples"][0]
            getattr(__import__("service.contract.http", fromlist=[name]), name).model_validate(example)


class TestIdempotencyIdentity:
    """The command id of an Idempotency-Key is the caller's; the fingerprint is the request's."""

    def test_command_ids_differ_by_caller_and_key_and_are_valid_command_ids(self):
        """Two callers (or issuers, or keys) never share a command id; one caller and key always get the same."""
        from service.gateway.app import idempotency_command_id

        ids = {idempotency_command_id(iss, sub, key) for iss, sub, key in [
            ("i", "u-7", "k"), ("i", "u-4", "k"), ("j", "u-7", "k"), ("i", "u-7", "k2"), ("i", "u-7\0k", ""),
            ("", "i\0u-7", "k")]}
        assert len(ids) == 6
        assert idempotency_command_id("i", "u-7", "k") == idempotency_command_id("i", "u-7", "k")
        command = translate.wordbee_command(1029, WordbeeStatusChange.model_validate({"status": 21}),
                                            Principal("u-7", "client", "c-1"), idempotency_command_id("i", "u-7", "k"))
        assert isinstance(parse_command(json.dumps(command).encode()), ChangeOrderStatus)

    def test_the_fingerprint_is_the_request_not_its_spelling(self):
        """Same method, path and command: same fingerprint (whatever the command id); anything else differs."""
        from service.gateway.app import request_fingerprint

        base = {"type": "ChangeOrderStatus", "command_id": "a", "order_id": 1, "status": 2}
        same = request_fingerprint("PUT", "/api/orders/1/status", base)
        assert request_fingerprint("PUT", "/api/orders/1/status", {**base, "command_id": "b"}) == same
        assert request_fingerprint("PUT", "/api/orders/1/status", {**base, "status": 3}) != same
        assert request_fingerprint("PUT", "/api/orders/2/status", base) != same
        assert request_fingerprint("PUT", "/order-service/order/1/status", base) != same
