"""parse_command: every outside message becomes a domain command or an InvalidCommand, never anything else."""

from __future__ import annotations

import json

import pytest

from service.contract.commands import BIGINT_MAX, parse_command
from service.domain.commands import ChangeOrderStatus, InvalidCommand, OverrideOrderStatuses


def _change(**overrides) -> dict:
    command = {"type": "ChangeOrderStatus", "command_id": "c-1", "order_id": 1029, "status": 21,
               "actor": {"id": "u-7", "role": "client", "client_id": "c-1"}}
    command.update(overrides)
    return command


def _bytes(data) -> bytes:
    return json.dumps(data).encode()


class TestValidCommands:
    def test_the_design_samples_parse(self):
        """Both sample commands of DESIGN §5.3 parse, with defaults for the optional fields."""
        change = parse_command(_bytes(_change(expected_status="Confirmed", note={"text": "x", "is_public": True})))
        assert isinstance(change, ChangeOrderStatus) and change.notify is True and change.note.file_id is None
        batch = parse_command(_bytes({"type": "OverrideOrderStatuses", "command_id": "b", "notify": False,
                                      "items": [{"order_id": 1, "status": "OnHold"}, {"order_id": 2, "status": 21}],
                                      "actor": {"id": "ops-1", "role": "manager"}, "note": {"text": "bulk fix"}}))
        assert isinstance(batch, OverrideOrderStatuses) and [i.status for i in batch.items] == ["OnHold", 21]

    def test_unknown_fields_are_ignored(self):
        """Unknown fields do not make a command invalid (DESIGN §5.3)."""
        assert parse_command(_bytes(_change(priority="high"))).order_id == 1029

    def test_the_largest_bigint_order_id_is_accepted(self):
        """An order id up to the bigint limit is a valid id."""
        assert parse_command(_bytes(_change(order_id=BIGINT_MAX))).order_id == BIGINT_MAX


@pytest.mark.parametrize(
    ("value", "reason", "command_id"),
    [
        (None, "not_json", None),
        (b"", "not_json", None),
        (b"\xff\xfe", "not_json", None),
        (b"[1, 2]", "not_json", None),
        (b"[" * 100_000, "not_json", None),
        (_bytes({"type": "DeleteOrder", "command_id": "c-9"}), "unknown_type", "c-9"),
        (_bytes({"command_id": "c-9"}), "unknown_type", "c-9"),
        (_bytes(_change(order_id=True)), "validation_failed", "c-1"),
        (_bytes(_change(order_id="1029")), "validation_failed", "c-1"),
        (_bytes(_change(order_id=0)), "validation_failed", "c-1"),
        (_bytes(_change(order_id=BIGINT_MAX + 1)), "validation_failed", "c-1"),
        (_bytes(_change(status=None)), "validation_failed", "c-1"),
        (_bytes(_change(status="")), "validation_failed", "c-1"),
        (_bytes(_change(actor={"id": "u", "role": "client"})), "validation_failed", "c-1"),
        (_bytes(_change(actor={"id": "u", "role": "admin"})), "validation_failed", "c-1"),
        (_bytes(_change(note={"text": "nul \x00 inside"})), "validation_failed", "c-1"),
        (_bytes(_change(note={"text": "lone \ud800 surrogate"})), "validation_failed", "c-1"),
        (_bytes(_change(note={"text": "x" * 10_001})), "validation_failed", "c-1"),
        (_bytes(_change(note={"file_id": BIGINT_MAX + 1})), "validation_failed", "c-1"),
        (_bytes(_change(command_id="bad \x00 id")), "validation_failed", None),
        (_bytes(_change(command_id=17)), "validation_failed", None),
        (_bytes({"type": "OverrideOrderStatuses", "command_id": "b", "items": [],
                 "actor": {"id": "m", "role": "manager"}}), "validation_failed", "b"),
    ],
    ids=lambda v: repr(v)[:40] if isinstance(v, (bytes, type(None))) else str(v),
)
def test_invalid_messages_become_invalid_command(value, reason, command_id):
    """Garbage of every kind is an InvalidCommand with its reason and the command id when readable."""
    invalid = parse_command(value)
    assert isinstance(invalid, InvalidCommand)
    assert invalid.reason == reason
    assert invalid.command_id == command_id
    assert invalid.message
