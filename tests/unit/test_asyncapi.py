"""The AsyncAPI document of the three topics (schemas/asyncapi.yaml): generated, current, valid.

Its staleness is checked with every other generated contract file (test_contract_files.py); here it is
checked by the official `@asyncapi/parser` through `tools/asyncapi/validate.mjs` (which must also fail on broken copies, so
the validation can fail), and its payload $refs and examples against the JSON Schemas with Python's
own draft-07 and 2020-12 validators (the draft-07 declaration is true, not only accepted).

The Node tests need `npm ci --prefix tools/asyncapi` to have run (`make test` does it); without it
they fail with that instruction, they never skip."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from tools.contract import asyncapi
from tools.contract import json_schemas

REPO = Path(__file__).resolve().parents[2]
SCHEMAS = REPO / "schemas"
DOCUMENT = SCHEMAS / "asyncapi.yaml"
TOOLS = REPO / "tools" / "asyncapi"
VALIDATE = TOOLS / "validate.mjs"
RENDER = TOOLS / "render.mjs"  # `make docs`: offline HTML into docs/asyncapi/ (built, not committed)

EXPECTED_MESSAGES = {
    "commands": {"ChangeOrderStatus", "OverrideOrderStatuses"},
    "events": {"OrderStatusChanged", "OrderStatusChangeRejected", "OrderStatusOverrideCompleted"},
    "deadLetters": {"DeadLetter"},
}


def committed() -> dict:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def resolve(document: dict, ref: str) -> dict:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


# ---------------------------------------------------------------------------- validation (Node)

@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with tools/asyncapi's packages installed; fails (never skips) when either is missing."""
    binary = shutil.which("node")
    if binary is None:
        pytest.fail("node is not on PATH: install Node.js 20+ (the AsyncAPI validator is @asyncapi/parser)")
    if not (TOOLS / "node_modules" / "@asyncapi" / "parser" / "package.json").is_file():
        pytest.fail(f"{TOOLS / 'node_modules'} is missing: run `npm ci --prefix tools/asyncapi` first "
                    "(`make test` does it)")
    return binary


def validate(node: str, document: Path) -> subprocess.CompletedProcess:
    return subprocess.run([node, str(VALIDATE), str(document)], cwd=REPO, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.subprocess
def test_official_parser_accepts_the_committed_document(node):
    """`node tools/asyncapi/validate.mjs` parses schemas/asyncapi.yaml, resolving its $refs, with no error."""
    result = subprocess.run([node, str(VALIDATE)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"AsyncAPI validation failed:\n{result.stdout}{result.stderr}"
    assert "valid AsyncAPI 3.0.0 (3 channels, 3 operations, 6 messages" in result.stdout, result.stdout


def _remove_schema_file(copy_dir: Path) -> str:
    (copy_dir / "events" / "OrderStatusChanged.schema.json").unlink()
    return "OrderStatusChanged.schema.json"


def _operation_on_unknown_channel(copy_dir: Path) -> str:
    path = copy_dir / "asyncapi.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["operations"]["sendEvents"]["channel"] = {"$ref": "#/channels/nowhere"}
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return "#/channels/nowhere"


def _channel_address_not_a_string(copy_dir: Path) -> str:
    path = copy_dir / "asyncapi.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["channels"]["commands"]["address"] = 42
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return "channels/commands/address"


def _payload_schema_not_draft07(copy_dir: Path) -> str:
    path = copy_dir / "commands" / "ChangeOrderStatus.schema.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["properties"]["order_id"]["type"] = "int64"  # no such JSON Schema type
    path.write_text(json.dumps(schema), encoding="utf-8")
    return "ChangeOrderStatus.schema.json"


@pytest.mark.parametrize(
    "break_copy",
    [_remove_schema_file, _operation_on_unknown_channel, _channel_address_not_a_string, _payload_schema_not_draft07],
    ids=["referenced-schema-file-missing", "operation-on-unknown-channel", "channel-address-not-a-string",
         "payload-schema-breaks-draft-07"],
)
@pytest.mark.subprocess
def test_official_parser_rejects_a_broken_copy(node, tmp_path, break_copy):
    """A copy of schemas/ with one defect fails validate.mjs with exit 1 and an error naming the defect."""
    copy_dir = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, copy_dir)
    assert validate(node, copy_dir / "asyncapi.yaml").returncode == 0  # the intact copy passes
    named = break_copy(copy_dir)
    result = validate(node, copy_dir / "asyncapi.yaml")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "INVALID" in result.stderr, output
    errors = [line for line in result.stdout.splitlines() if line.startswith("error\t")]
    assert errors and any(named in line for line in errors), output


# ------------------------------------------------------------------------- content and schemas

def test_channels_operations_and_keys_follow_the_design():
    """Three topics with their Kafka bindings; receive on commands, send on events and DLQ; keys as DESIGN §5.3/§6.1 say."""
    document = committed()
    assert document["asyncapi"] == "3.0.0"
    addresses = {name: channel["address"] for name, channel in document["channels"].items()}
    assert addresses == {"commands": "order-status.commands", "events": "order-status.events",
                         "deadLetters": "order-status.commands.dlq"}
    for name, channel in document["channels"].items():
        assert channel["bindings"]["kafka"]["topic"] == channel["address"]
        assert set(channel["messages"]) == EXPECTED_MESSAGES[name]
    actions = {resolve(document, op["channel"]["$ref"])["address"]: op["action"]
               for op in document["operations"].values()}
    assert actions == {"order-status.commands": "receive", "order-status.events": "send",
                       "order-status.commands.dlq": "send"}
    production = document["servers"]["production"]
    assert production["protocol"] == "kafka-secure" and production["security"]
    assert document["servers"]["dev"]["protocol"] == "kafka"
    messages = document["components"]["messages"]
    keys = {name: message["bindings"]["kafka"]["key"]["description"] for name, message in messages.items()}
    for name in ("ChangeOrderStatus", "OrderStatusChanged", "OrderStatusChangeRejected"):
        assert keys[name].startswith("The order id"), name
    for name in ("OverrideOrderStatuses", "OrderStatusOverrideCompleted"):
        assert keys[name].startswith("The command id"), name


def test_headers_are_the_documented_ones():
    """CloudEvents headers on events, actor-token/traceparent on commands, error.*/original.*/redrive.* on dead letters."""
    document = committed()
    messages = document["components"]["messages"]

    def headers(name: str) -> dict:
        return resolve(document, messages[name]["headers"]["$ref"])

    cloudevents = {"ce_specversion", "ce_id", "ce_type", "ce_source", "ce_subject", "ce_time", "content-type"}
    for name in EXPECTED_MESSAGES["events"]:
        schema = headers(name)
        assert set(schema["required"]) == cloudevents
        assert set(schema["properties"]) == cloudevents | {"traceparent"}
        assert schema["properties"]["ce_type"]["const"] == name
    for name in EXPECTED_MESSAGES["commands"]:
        schema = headers(name)
        assert schema.get("required", []) == []
        assert {"actor-token", "traceparent"} <= set(schema["properties"])
    dead = headers("DeadLetter")
    assert set(dead["required"]) == {"error.reason", "error.message", "original.topic", "original.partition",
                                     "original.offset"}
    assert {"error.truncated", "original.size", "redrive.count", "redrive.dlq-offset"} <= set(dead["properties"])
    assert messages["DeadLetter"]["contentType"] == "application/octet-stream"
    assert "type" not in messages["DeadLetter"]["payload"]  # any bytes


def test_payloads_reference_the_schema_files_not_copies():
    """Every JSON payload is a draft-07 multi-format schema whose only content is a relative $ref to an existing file."""
    document = committed()
    referenced = set()
    for name, message in document["components"]["messages"].items():
        if name == "DeadLetter":
            continue
        payload = message["payload"]
        assert payload["schemaFormat"] == "application/schema+json;version=draft-07"
        assert set(payload["schema"]) == {"$ref"}, f"{name}: the payload schema must be only a $ref"
        ref = payload["schema"]["$ref"]
        assert re.fullmatch(r"\./(commands|events)/\w+\.schema\.json", ref), ref
        assert (SCHEMAS / ref).is_file(), ref
        referenced.add(ref.removeprefix("./"))
    assert referenced == set(json_schemas.render_all())


def test_payload_schemas_mean_the_same_under_draft07():
    """The 2020-12 schema files pass the draft-07 compatibility check, and the check catches 2020-12-only constructs."""
    for rel, text in json_schemas.render_all().items():
        schema = json.loads(text)
        assert asyncapi.draft07_problems(schema) == [], rel
        Draft7Validator.check_schema(schema)
    bad = {
        "$schema": json_schemas.DRAFT,
        "$defs": {"A": {"type": "string"}},
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "ignored by draft-07"},
            "b": {"prefixItems": [{"type": "string"}]},
            "c": {"dependentRequired": {"x": ["y"]}},
            "d": {"unevaluatedProperties": False},
        },
    }
    problems = asyncapi.draft07_problems(bad)
    assert len(problems) == 4, problems
    assert any("sibling" in p for p in problems) and any("prefixItems" in p for p in problems)


def test_examples_validate_under_both_drafts():
    """Each message example (made by the service's own code) validates against its payload file as draft-07 and as
    2020-12, and its headers against the message's header schema."""
    document = committed()
    for name, message in document["components"]["messages"].items():
        header_schema = resolve(document, message["headers"]["$ref"])
        assert message["examples"], name
        for example in message["examples"]:
            Draft7Validator(header_schema, format_checker=Draft7Validator.FORMAT_CHECKER).validate(example["headers"])
            if name == "DeadLetter":
                assert isinstance(example["payload"], str)
                continue
            schema = json.loads((SCHEMAS / message["payload"]["schema"]["$ref"]).read_text(encoding="utf-8"))
            for validator in (Draft7Validator, Draft202012Validator):
                validator(copy.deepcopy(schema), format_checker=validator.FORMAT_CHECKER).validate(example["payload"])


@pytest.mark.subprocess
def test_rendered_docs_load_nothing_from_the_network(node, tmp_path):
    """The HTML that `make docs` builds (render.mjs, not committed) shows the current document's headers and uses
    only its local css/ and js/ files: no CDN, no remote script or style."""
    rendered = subprocess.run([node, str(RENDER), str(DOCUMENT), str(tmp_path)], cwd=REPO, capture_output=True,
                              text=True, timeout=120)
    assert rendered.returncode == 0, rendered.stderr
    docs = tmp_path / "index.html"
    html = docs.read_text(encoding="utf-8")
    assert "redrive.dlq-partition" in html  # rendered from today's document (the committed copy lacked it)
    assert not re.search(r"cdn|unpkg|jsdelivr|googleapis|cdnjs", html, re.IGNORECASE)
    resources = re.findall(r"<(?:script|link)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", html)
    assert resources, "no stylesheet or script found"
    for resource in resources:
        assert not re.match(r"(?:[a-z]+:)?//", resource), f"remote resource {resource}"
        assert (docs.parent / resource).is_file(), f"missing local asset {resource}"
