"""JSON Schemas of the wire contract (DESIGN §5.3, §6.1), generated from the pydantic models:
schemas/commands/*.schema.json and schemas/events/*.schema.json (written and checked by `python -m tools.contract`).

Commands are described as producers may send them (validation mode: defaults optional, unknown
fields allowed and ignored). Events are described as the service emits them (serialization mode:
every field is always present, null included, see `contract.events.event_json`), so every field is required.
"""

from __future__ import annotations

import json

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from service.contract.commands import ChangeOrderStatus, OverrideOrderStatuses
from service.contract.events import OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted

DRAFT = "https://json-schema.org/draft/2020-12/schema"
COMMANDS: tuple[type[BaseModel], ...] = (ChangeOrderStatus, OverrideOrderStatuses)
EVENTS: tuple[type[BaseModel], ...] = (OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted)
SUFFIX = ".schema.json"

EVENT_DESCRIPTIONS = {
    "OrderStatusChanged": "A status change was applied (topic order-status.events, key = order id; DESIGN §6.1).",
    "OrderStatusChangeRejected": "A command or override item was rejected and changed nothing (DESIGN §6.1).",
    "OrderStatusOverrideCompleted": "Summary of one override batch, results in item order (key = command id; DESIGN §6.1).",
}

# R4 in ActorModel's validator, which pydantic cannot express in JSON Schema by itself
CLIENT_NEEDS_CLIENT_ID = {
    "if": {"properties": {"role": {"const": "client"}}, "required": ["role"]},
    "then": {"properties": {"client_id": {"type": "string", "minLength": 1}}, "required": ["client_id"]},
}


class _EmittedSchema(GenerateJsonSchema):
    """Serialization mode where every field is required: events always carry every field."""

    def field_is_required(self, field, total: bool) -> bool:
        if self.mode == "serialization":
            return True
        return super().field_is_required(field, total)


def command_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(mode="validation")
    actor = schema.get("$defs", {}).get("ActorModel")
    if actor is not None:
        actor.update(CLIENT_NEEDS_CLIENT_ID)
    return {"$schema": DRAFT, **schema}


def event_schema(model: type[BaseModel]) -> dict:
    schema = model.model_json_schema(mode="serialization", schema_generator=_EmittedSchema)
    name = model.__name__
    schema.setdefault("description", EVENT_DESCRIPTIONS[name])
    return {"$schema": DRAFT, **schema}


def render_all() -> dict[str, str]:
    """Relative path -> file text of every schema, deterministic (same models, same bytes)."""
    files = {}
    for kind, models, build in (("commands", COMMANDS, command_schema), ("events", EVENTS, event_schema)):
        for model in models:
            files[f"{kind}/{model.__name__}{SUFFIX}"] = json.dumps(build(model), indent=2, ensure_ascii=False) + "\n"
    return files
