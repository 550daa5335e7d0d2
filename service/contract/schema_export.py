"""JSON Schemas of the wire contract (DESIGN §5.3, §6.1), generated from the pydantic models.

    python -m service.contract.schema_export            write schemas/commands/*.schema.json and schemas/events/*.schema.json
    python -m service.contract.schema_export --check    exit 1 (one line naming the stale files) when they are out of date

Commands are described as producers may send them (validation mode: defaults optional, unknown
fields allowed and ignored). Events are described as the service emits them (serialization mode:
every field is always present, null included, see `contract.events.event_json`), so every field is required.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema

from service.contract.commands import ChangeOrderStatus, OverrideOrderStatuses
from service.contract.events import OrderStatusChanged, OrderStatusChangeRejected, OrderStatusOverrideCompleted
from service.contract.generated import shown

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "schemas"
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


def stale_files(directory: Path) -> list[str]:
    """Relative paths that are missing, different, or generated schemas no model produces any more."""
    expected = render_all()
    stale = []
    for rel, text in expected.items():
        path = directory / rel
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(rel)
    for kind in ("commands", "events"):
        for path in sorted((directory / kind).glob(f"*{SUFFIX}")):
            rel = f"{kind}/{path.name}"
            if rel not in expected:
                stale.append(rel)
    return sorted(stale)


def write_all(directory: Path) -> list[str]:
    """Write every schema (and drop generated files no model produces any more); returns what changed."""
    changed = stale_files(directory)
    expected = render_all()
    for rel in changed:
        path = directory / rel
        if rel in expected:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(expected[rel], encoding="utf-8")
        else:
            path.unlink()
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.contract.schema_export", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if any schema file is stale")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"schemas directory (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.dir)
        if stale:
            names = ", ".join(shown(args.dir / rel) for rel in stale)
            print(f"stale JSON Schemas (run `python -m service.contract.schema_export`): {names}", file=sys.stderr)
            return 1
        print(f"{len(render_all())} JSON Schemas in {args.dir} are up to date")
        return 0
    changed = write_all(args.dir)
    print(f"wrote {len(changed)} of {len(render_all())} JSON Schemas in {args.dir}" + (f": {', '.join(changed)}" if changed else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
