"""`events tail` lines and `send --wait` outcomes and exit codes (`service.ops.events`), without a broker."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from service.contract.events import EventActor, OverrideResult, StatusRefModel
from service.contract.outcome import Outcome
from service.ops import events as ops
from tests.helpers.events import as_read, changed, override_completed, rejected

AT = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)
CHANGED = as_read(changed(1029, version=4).model_copy(update={
    "command_id": "c1", "occurred_at": AT,
    "to_status": StatusRefModel(id=21, code="CancelledByClient", name="Cancelled"),
    "actor": EventActor(id="u-7", role="client", client_id="c-1")}))
REJECTED = as_read(rejected(1030, "c2", 21, "cancel_has_payments", "Order 1030 has payments.", occurred_at=AT))
SUMMARY = as_read(override_completed("c3", [
    OverrideResult(order_id=1, status="OnHold", success=True),
    OverrideResult(order_id=2, status=21, success=False, reason="order_not_found")], occurred_at=AT))


class TestDescribe:
    def test_one_readable_line_per_event_type(self):
        """What changed (or why not), on which order, by whom, for which command."""
        assert ops.describe(CHANGED) == ("2026-03-01T12:00:00Z OrderStatusChanged order 1029 v4: Confirmed -> "
                                         "CancelledByClient by client u-7 (client c-1) [command c1]")
        assert ops.describe(REJECTED) == ("2026-03-01T12:00:00Z OrderStatusChangeRejected order 1030: 21 refused, "
                                          "cancel_has_payments: Order 1030 has payments. [command c2]")
        assert ops.describe(SUMMARY) == ("2026-03-01T12:00:00Z OrderStatusOverrideCompleted: 1/2 items applied "
                                         "[command c3]")
        whole = {**SUMMARY, "results": [], "reason": "batch_too_large", "item_count": 90}
        assert ops.describe(whole).endswith("0/90 items applied, refused whole: batch_too_large [command c3]")

    def test_fields_from_the_topic_are_escaped(self):
        """A hostile event cannot drive the terminal or forge a second line."""
        line = ops.describe({**REJECTED, "message": "\x1b[2Jgone\nOrderStatusChanged order 1 v1"})
        assert "\x1b" not in line and "\n" not in line and "\\x1b[2Jgone\\nOrderStatusChanged" in line

    def test_an_unknown_type_is_shown_as_json(self):
        """An event type added later still gets a line."""
        assert ops.describe({"type": "Future", "x": 1}).endswith('Future {"type": "Future", "x": 1}')


class TestConcerns:
    @pytest.mark.parametrize("event, order_id, event_type, shown", [
        (CHANGED, None, None, True),
        (CHANGED, 1029, None, True),
        (CHANGED, 1030, None, False),
        (CHANGED, None, "OrderStatusChangeRejected", False),
        (SUMMARY, 2, None, True),
        (SUMMARY, 3, None, False),
        (SUMMARY, 2, "OrderStatusOverrideCompleted", True),
    ])
    def test_filters(self, event, order_id, event_type, shown):
        """--order-id matches the event's order or any item of a batch summary; --type the exact type."""
        assert ops.concerns(event, order_id, event_type) is shown


class TestVerdict:
    @pytest.mark.parametrize("events, final, outcome, code", [
        ([CHANGED], True, "applied", 0),
        ([REJECTED], True, "rejected", 3),
        ([SUMMARY], True, "rejected", 3),  # one item failed
        ([{**SUMMARY, "results": [{"order_id": 1, "success": True}]}], True, "applied", 0),
        ([{**SUMMARY, "results": [], "reason": "batch_too_large"}], True, "rejected", 3),
        ([CHANGED], False, "timeout", 4),  # seen something, but not the final event
        ([], False, "timeout", 4),
    ])
    def test_outcome_and_exit_code(self, events, final, outcome, code):
        """0 applied, 3 rejected in whole or in part, 4 no final event in time."""
        found = Outcome("c", None, events, final)
        assert (found.verdict, ops.exit_code([found])) == (outcome, code)

    def test_the_worst_outcome_decides_the_exit_code(self):
        """Any timeout makes 4, else any rejection 3, else 0."""
        applied, rejected, late = (Outcome("c", None, [CHANGED], True), Outcome("c", None, [REJECTED], True),
                                   Outcome("c", None, [], False))
        assert ops.exit_code([applied, applied]) == 0
        assert ops.exit_code([applied, rejected]) == 3
        assert ops.exit_code([rejected, late, applied]) == 4


class TestOutcomeLines:
    """`send --wait` on a terminal: one human line per outcome."""

    def test_applied_rejected_batch_and_timeout_each_read_as_one_line(self):
        """applied: order N From -> To vV; rejected: reason — message; batch items one line each; a timeout says so."""
        assert ops.outcome_lines(Outcome("c1", None, [CHANGED], True)) == [
            "applied: order 1029 Confirmed -> CancelledByClient v4"]
        assert ops.outcome_lines(Outcome("c2", None, [REJECTED], True)) == [
            "rejected: cancel_has_payments — Order 1030 has payments. (order 1030)"]
        assert ops.outcome_lines(Outcome("c3", None, [SUMMARY], True)) == [
            "applied: order 1 -> OnHold", "rejected: order_not_found — order 2 -> 21"]
        whole = {**SUMMARY, "results": [], "reason": "batch_too_large"}
        assert ops.outcome_lines(Outcome("c3", None, [whole], True)) == [
            "rejected: batch_too_large — the whole batch was refused"]
        assert ops.outcome_lines(Outcome("c4", None, [], False)) == ["timed out: no outcome for command c4 yet"]

    def test_fields_from_the_topic_are_escaped(self):
        """A hostile message cannot forge a second outcome line."""
        forged = {**REJECTED, "message": "x\napplied: order 1 A -> B v1"}
        [line] = ops.outcome_lines(Outcome("c2", None, [forged], True))
        assert "\n" not in line
