"""The command handlers are pure: domain commands, rules and order facts in, domain events out (and on
the wire, through the contract, the messages the outbox publishes)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from service.domain.model import OrderFacts
from service.contract.commands import parse_command
from service.contract.events import Topics, to_wire
from service.contract.rules_file import load_rules_file
from service.domain.commands import InvalidCommand, SourceMessage
from service.worker.handlers import Context, handle_change_order_status, handle_invalid, handle_override_order_statuses

RULES = load_rules_file(Path(__file__).resolve().parents[2] / "service" / "devkit" / "samples" / "rules.yaml")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
TOPICS = Topics(events="events", dlq="dlq")


def ctx(*orders: OrderFacts, limit: int = 50) -> Context:
    return Context(rules=RULES, orders={o.order_id: o for o in orders}, now=NOW, max_batch_items=limit)


def command(**data):
    return parse_command(json.dumps(data).encode())


def messages(outcome):
    return [to_wire(e, TOPICS) for e in outcome.emitted]


def payloads(outcome) -> list[dict]:
    return [json.loads(m.value) for m in messages(outcome)]


MANAGER = {"id": "m-1", "role": "manager"}


class TestChangeOrderStatus:
    def test_accepted_change_yields_one_change_and_one_event(self):
        """A valid change becomes one AppliedChange and one OrderStatusChanged keyed by the order id."""
        cmd = command(type="ChangeOrderStatus", command_id="c1", order_id=7, status="OnHold", actor=MANAGER)
        outcome = handle_change_order_status(cmd, ctx(OrderFacts(7, "SO", 2, version=3)))
        assert outcome.outcome == "applied" and len(outcome.changes) == 1
        [event] = payloads(outcome)
        assert event["type"] == "OrderStatusChanged" and event["version"] == 4
        assert messages(outcome)[0].key == b"7" and messages(outcome)[0].topic == "events"

    def test_event_ids_are_deterministic(self):
        """Handling the same command twice gives the same event id (a redelivery can never fork ids)."""
        cmd = command(type="ChangeOrderStatus", command_id="c1", order_id=7, status="OnHold", actor=MANAGER)
        first = handle_change_order_status(cmd, ctx(OrderFacts(7, "SO", 2)))
        second = handle_change_order_status(cmd, ctx(OrderFacts(7, "SO", 2)))
        assert payloads(first)[0]["event_id"] == payloads(second)[0]["event_id"]

    def test_rejection_yields_no_change(self):
        """A rejected command produces only its rejection event (R9)."""
        cmd = command(type="ChangeOrderStatus", command_id="c2", order_id=7, status="Dispatched", actor=MANAGER)
        outcome = handle_change_order_status(cmd, ctx(OrderFacts(7, "SO", 2)))
        assert outcome.changes == [] and outcome.outcome == "rejected:transition_not_allowed"
        assert [e["reason"] for e in payloads(outcome)] == ["transition_not_allowed"]


class TestOverrideOrderStatuses:
    def test_items_apply_in_order_on_the_same_order(self):
        """Two items on one order: the second sees the first applied (versions 1 then 2)."""
        cmd = command(type="OverrideOrderStatuses", command_id="b1", actor=MANAGER,
                      items=[{"order_id": 7, "status": "OnHold"}, {"order_id": 7, "status": "CourierClaim"}])
        outcome = handle_override_order_statuses(cmd, ctx(OrderFacts(7, "SO", 6)))
        assert [c.version for c in outcome.changes] == [1, 2]
        *items, summary = payloads(outcome)
        assert [e["to_status"]["code"] for e in items] == ["OnHold", "CourierClaim"]
        assert summary["type"] == "OrderStatusOverrideCompleted" and messages(outcome)[-1].key == b"b1"

    def test_mixed_results_are_reported_per_item(self):
        """A missing order and a non-overridable status fail alone; the summary lists results in item order."""
        cmd = command(type="OverrideOrderStatuses", command_id="b2", actor=MANAGER,
                      items=[{"order_id": 7, "status": "OnHold"}, {"order_id": 8, "status": "OnHold"},
                             {"order_id": 9, "status": "Dispatched"}])
        outcome = handle_override_order_statuses(cmd, ctx(OrderFacts(7, "SO", 2), OrderFacts(9, "SO", 2)))
        assert outcome.outcome == "partial"
        summary = payloads(outcome)[-1]
        assert [(r["order_id"], r["success"], r["reason"]) for r in summary["results"]] == [
            (7, True, None), (8, False, "order_not_found"), (9, False, "override_not_allowed")]

    def test_a_batch_over_the_limit_applies_nothing(self):
        """More items than the limit: one batch_too_large rejection, a compact summary (the count, the
        reason, no result per item), no change."""
        cmd = command(type="OverrideOrderStatuses", command_id="b3", actor=MANAGER,
                      items=[{"order_id": 7, "status": "OnHold"}] * 3)
        outcome = handle_override_order_statuses(cmd, ctx(OrderFacts(7, "SO", 2), limit=2))
        assert outcome.changes == [] and outcome.outcome == "rejected:batch_too_large"
        rejection, summary = payloads(outcome)
        assert rejection["reason"] == "batch_too_large" and rejection["order_id"] is None
        assert (summary["results"], summary["item_count"], summary["reason"]) == ([], 3, "batch_too_large")


class TestInvalid:
    def test_dead_letter_keeps_bytes_and_adds_headers(self):
        """The DLQ copy is the original bytes with the original headers plus the §6.2 error headers."""
        source = SourceMessage("commands", 2, 41, b"k", b"{not json", (("trace", b"t-1"),))
        outcome = handle_invalid(InvalidCommand("not_json", "the value is not JSON"), source, ctx())
        [letter] = messages(outcome)
        assert letter.topic == "dlq" and letter.value == b"{not json" and letter.key == b"k"
        headers = dict(letter.headers)
        assert headers["trace"] == b"t-1" and headers["error.reason"] == b"not_json"
        assert (headers["original.topic"], headers["original.partition"], headers["original.offset"]) == (
            b"commands", b"2", b"41")
        assert outcome.command_id == "@commands:2:41"

    def test_readable_command_id_also_gets_a_rejection(self):
        """An invalid command whose id can be read is also answered with invalid_command."""
        invalid = parse_command(b'{"type": "ChangeOrderStatus", "command_id": "c9", "order_id": 7, "status": "OnHold"}')
        assert isinstance(invalid, InvalidCommand)
        outcome = handle_invalid(invalid, SourceMessage("commands", 0, 1, b"7", b"{}"), ctx())
        rejection = json.loads(messages(outcome)[1].value)
        assert (rejection["reason"], rejection["order_id"], rejection["requested_status"]) == (
            "invalid_command", 7, "OnHold")
        assert outcome.command_id == "c9"
