"""The one outcome model (service/contract/outcome.py): when a command's events end, its verdict, its refusal."""

from __future__ import annotations

import pytest

from service.contract import events as wire
from service.contract.outcome import Outcome, Refusal, ends
from service.domain.events import OverrideResult
from tests.helpers.events import as_read, changed, override_completed, rejected

CHANGE, BATCH = "ChangeOrderStatus", "OverrideOrderStatuses"
CHANGED = as_read(changed(1).model_copy(update={"command_id": "c"}))
REJECTED = as_read(rejected(1, "c", "OnHold", "no_change", "Already."))
INVALID = as_read(rejected(1, "c", "OnHold", "invalid_command", "bad"))
ITEM_1 = wire.OverrideResult(order_id=1, status="OnHold", success=True)
ITEM_2 = wire.OverrideResult(order_id=2, status=21, success=False, reason="order_not_found", error="gone")
SUMMARY = as_read(override_completed("c", [ITEM_1, ITEM_2]))
ALL_GOOD = as_read(override_completed("c", [ITEM_1]))
TOO_LARGE = as_read(rejected(1, "c", "OnHold", "batch_too_large", "51"))
REFUSED_WHOLE = as_read(override_completed("c", [], item_count=51, reason="batch_too_large"))


def outcome(command_type, *events) -> Outcome:
    found = Outcome("c", command_type)
    for event in events:
        found.add(event)
    return found


class TestWhenTheEventsEnd:
    @pytest.mark.parametrize(("command_type", "event", "last"), [
        (CHANGE, CHANGED, True), (CHANGE, REJECTED, True), (CHANGE, {"type": "Future"}, True),
        (BATCH, CHANGED, False), (BATCH, REJECTED, False), (BATCH, TOO_LARGE, False),
        (BATCH, SUMMARY, True), (BATCH, INVALID, True), (None, CHANGED, True)])
    def test_a_change_has_one_event_a_batch_ends_with_its_summary(self, command_type, event, last):
        """A change's first event ends it; a batch's summary (or an invalid_command rejection) ends it."""
        assert ends(command_type, event) is last

    def test_add_sets_final_and_keeps_every_event(self):
        """A batch's item events do not end it; its summary does; every event is kept in arrival order."""
        found = Outcome("c", BATCH)
        assert found.add(CHANGED) is False and not found.final
        assert found.add(SUMMARY) is True and found.final
        assert found.events == [CHANGED, SUMMARY]

    @pytest.mark.parametrize("hostile", [{"type": ["x"], "reason": {"y": 1}}, {"results": 7}, {}])
    def test_a_hostile_event_never_raises(self, hostile):
        """Odd fields read as missing: add, verdict, refusal and item_results are total."""
        found = outcome(BATCH, hostile, {**SUMMARY, "results": [7, "x", ITEM_1.model_dump(mode="json")]})
        assert found.final and found.verdict == "rejected"
        assert found.refusal() is None and found.item_results() == [OverrideResult(1, "OnHold", True)]


class TestVerdict:
    @pytest.mark.parametrize(("found", "verdict"), [
        (outcome(CHANGE, CHANGED), "applied"),
        (outcome(CHANGE, REJECTED), "rejected"),
        (outcome(BATCH, CHANGED, ALL_GOOD), "applied"),
        (outcome(BATCH, CHANGED, SUMMARY), "rejected"),  # one item failed
        (outcome(BATCH, TOO_LARGE, REFUSED_WHOLE), "rejected"),
        (outcome(BATCH, {**SUMMARY, "results": "not a list"}), "rejected"),
        (outcome(BATCH, CHANGED), "timeout"),  # seen something, not the final event
        (outcome(CHANGE), "timeout")])
    def test_applied_only_when_every_change_happened(self, found, verdict):
        """Applied: the change, or every item; any rejection, a refused batch or a failed item: rejected."""
        assert found.verdict == verdict


class TestRefusal:
    def test_an_applied_change_is_not_refused(self):
        """A change whose event is OrderStatusChanged has no refusal."""
        assert outcome(CHANGE, CHANGED).refusal() is None

    def test_a_rejected_change_is_refused_with_its_reason_and_message(self):
        """A change's one rejection is its refusal."""
        assert outcome(CHANGE, REJECTED).refusal() == Refusal("no_change", "Already.")

    def test_a_batch_answered_item_by_item_is_not_refused(self):
        """A summary without a reason: no refusal, even with failed items; the items in item order."""
        found = outcome(BATCH, SUMMARY)
        assert found.refusal() is None
        assert found.item_results() == [OverrideResult(1, "OnHold", True),
                                        OverrideResult(2, 21, False, "order_not_found", "gone")]

    def test_a_batch_refused_whole_takes_its_rejections_message(self):
        """batch_too_large: the refusal is the rejection event's reason and message, whichever came first."""
        expected = Refusal("batch_too_large", "51")
        assert outcome(BATCH, TOO_LARGE, REFUSED_WHOLE).refusal() == expected
        assert outcome(BATCH, REFUSED_WHOLE, TOO_LARGE).refusal() == expected

    def test_an_invalid_batch_is_refused_without_a_summary(self):
        """An invalid batch has one invalid_command rejection and no summary: refused as invalid_command."""
        found = outcome(BATCH, INVALID)
        assert found.final and found.refusal() == Refusal("invalid_command", "bad")

    def test_the_summary_is_found_in_any_order(self):
        """Items and summary live on different partitions: an item event after the summary changes nothing."""
        found = outcome(BATCH, SUMMARY, REJECTED)
        assert found.summary() is SUMMARY and found.refusal() is None
