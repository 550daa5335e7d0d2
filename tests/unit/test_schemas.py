"""The committed JSON Schemas of the wire contract (schemas/) match the models, and the DESIGN §5.3
sample commands are valid commands.

A sample is checked twice: by the pydantic model the worker parses with, and against the committed
schema file with the `jsonschema` validator (what other teams would use)."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from service.contract.commands import COMMAND_ADAPTER, ChangeOrderStatus, OverrideOrderStatuses
from service.contract.events import (
    OrderStatusChanged,
    OrderStatusChangeRejected,
    OrderStatusOverrideCompleted,
    OverrideResult,
    event_json,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"

# DESIGN §5.3 as written (the ellipses are part of the sample ids), except that the placeholder
# "optional ISO-8601" of issued_at is replaced by a timestamp
SAMPLE_CHANGE = {
    "type": "ChangeOrderStatus", "command_id": "6f1c…uuid", "order_id": 1029,
    "status": 21, "expected_status": "Confirmed",
    "note": {"text": "Customer asked to cancel", "is_public": True, "file_id": 28},
    "notify": True,
    "actor": {"id": "u-7", "role": "client", "client_id": "c-1"},
    "correlation_id": "optional", "issued_at": "2024-05-01T10:00:00Z",
}
SAMPLE_OVERRIDE = {
    "type": "OverrideOrderStatuses", "command_id": "…uuid",
    "items": [{"order_id": 1, "status": "OnHold"}, {"order_id": 2, "status": 21}],
    "actor": {"id": "ops-1", "role": "manager"}, "note": {"text": "bulk fix"}, "notify": False,
}


SchemaError = jsonschema.ValidationError


def check(instance, schema: dict) -> None:
    """Validate with a real JSON Schema 2020-12 validator (formats checked too)."""
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER).validate(instance)


def committed(rel: str) -> dict:
    return json.loads((SCHEMAS / rel).read_text(encoding="utf-8"))


def validate(instance, rel: str) -> None:
    schema = committed(rel)
    check(instance, schema)


@pytest.mark.parametrize(
    ("sample", "model", "rel"),
    [
        (SAMPLE_CHANGE, ChangeOrderStatus, "commands/ChangeOrderStatus.schema.json"),
        (SAMPLE_OVERRIDE, OverrideOrderStatuses, "commands/OverrideOrderStatuses.schema.json"),
    ],
    ids=["ChangeOrderStatus", "OverrideOrderStatuses"],
)
def test_design_sample_commands_are_valid(sample, model, rel):
    """The DESIGN §5.3 sample validates against its committed schema and parses to its model."""
    validate(sample, rel)
    parsed = COMMAND_ADAPTER.validate_python(sample)
    assert isinstance(parsed, model)
    assert parsed.command_id == sample["command_id"]


def test_optional_fields_may_be_left_out_and_unknown_fields_pass():
    """Only type, command_id, actor and order_id/status (or items) are required; unknown fields are allowed."""
    minimal = {"type": "ChangeOrderStatus", "command_id": "c", "order_id": 7, "status": "OnHold",
               "actor": {"id": "u", "role": "staff"}, "x-extra": 1}
    validate(minimal, "commands/ChangeOrderStatus.schema.json")
    assert ChangeOrderStatus.model_validate(minimal).notify is True
    schema = committed("commands/OverrideOrderStatuses.schema.json")
    assert sorted(schema["required"]) == ["actor", "command_id", "items", "type"]


@pytest.mark.parametrize(
    ("mutate", "rel"),
    [
        (lambda c: c["actor"].pop("client_id"), "commands/ChangeOrderStatus.schema.json"),
        (lambda c: c.update(order_id=0), "commands/ChangeOrderStatus.schema.json"),
        (lambda c: c.update(status=""), "commands/ChangeOrderStatus.schema.json"),
        (lambda c: c.update(status=2.5), "commands/ChangeOrderStatus.schema.json"),
        (lambda c: c["actor"].update(role="admin"), "commands/ChangeOrderStatus.schema.json"),
        (lambda c: c.update(items=[]), "commands/OverrideOrderStatuses.schema.json"),
        (lambda c: c["items"][0].pop("status"), "commands/OverrideOrderStatuses.schema.json"),
        (lambda c: c.update(type="ChangeOrderStatus"), "commands/OverrideOrderStatuses.schema.json"),
    ],
    ids=["client-without-client_id", "order_id-zero", "empty-status", "float-status", "unknown-role",
         "no-items", "item-without-status", "wrong-type"],
)
def test_broken_commands_fail_schema_and_model(mutate, rel):
    """A command the worker would dead-letter is refused by the schema too (schema and model agree)."""
    sample = copy.deepcopy(SAMPLE_CHANGE if rel.startswith("commands/Change") else SAMPLE_OVERRIDE)
    mutate(sample)
    with pytest.raises(SchemaError):
        validate(sample, rel)
    model = ChangeOrderStatus if rel.startswith("commands/Change") else OverrideOrderStatuses
    with pytest.raises(ValidationError):
        model.model_validate(sample)


def test_emitted_events_validate_with_every_field_required():
    """Events as the service serialises them validate against the event schemas, which require every field."""
    now = datetime(2024, 5, 1, tzinfo=timezone.utc)
    actor = {"id": "u-7", "role": "client", "client_id": "c-1"}
    ref = {"id": 2, "code": "Confirmed", "name": "Confirmed"}
    events = [
        OrderStatusChanged(
            event_id="e1", command_id="c1", order_id=1029, order_type="SO", version=1, from_status=ref,
            to_status={"id": 21, "code": "CancelledByClient", "name": "Cancelled"}, override=True, notify=False,
            actor=actor, note={"text": "bulk fix", "is_public": False}, removed_reservations=["R-1"],
            removed_coupons=[], occurred_at=now,
        ),
        OrderStatusChangeRejected(
            event_id="e2", command_id="c1", order_id=None, requested_status=None, reason="batch_too_large",
            message="too many", actor=None, occurred_at=now,
        ),
        OrderStatusOverrideCompleted(
            event_id="e3", command_id="c1", occurred_at=now, item_count=2,
            results=[OverrideResult(order_id=1, status="OnHold", success=True),
                     OverrideResult(order_id=2, status=21, success=False, reason="order_not_found", error="gone")],
        ),
        OrderStatusOverrideCompleted(
            event_id="e4", command_id="c2", occurred_at=now, item_count=51, results=[], reason="batch_too_large",
        ),
    ]
    for event in events:
        rel = f"events/{type(event).__name__}.schema.json"
        schema = committed(rel)
        assert sorted(schema["required"]) == sorted(schema["properties"]), rel
        payload = json.loads(event_json(event))
        check(payload, schema)
        del payload["correlation_id"]
        with pytest.raises(SchemaError):
            check(payload, schema)
