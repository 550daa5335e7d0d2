"""No single input stops a face (issue 23, item 5): order ids held to their column's range, and the gateway's
events reader, which no event can stop and whose waiting table is cleaned on every path."""

from __future__ import annotations

import asyncio

import pytest

from service.adapters.kafka.replies import EventsTail
from service.contract.events import EventActor
from service.domain.access import shown, viewer_of
from service.contract.commands import BIGINT_MAX, order_id_in_range
from service.domain.model import Principal
from service.gateway.app import command_location
from tests.helpers.events import as_read, changed


class ScriptedTail(EventsTail):
    """The events reader with its records from a list instead of a broker (the dispatch logic is what is tested)."""

    def __init__(self, events: list) -> None:  # no consumer: records() below replaces the broker
        self._waiting, self._waiters, self._task, self._started = {}, {}, None, False
        self.feed: asyncio.Queue = asyncio.Queue()
        for event in events:
            self.feed.put_nowait(event)

    async def records(self, poll_ms: int = 200):
        while True:
            event = await self.feed.get()
            if isinstance(event, BaseException):
                raise event
            yield None, event


class TestOrderIdRange:
    @pytest.mark.parametrize("text", ["1", "42", str(BIGINT_MAX)])
    def test_ids_in_the_bigint_range_pass(self, text):
        """1 to 2^63-1 in ASCII digits is the id."""
        assert order_id_in_range(text) == int(text)

    @pytest.mark.parametrize("text", ["0", "-1", "+1", "1_0", "01", " 1", "1 ", "1.0", "", "abc", "1e3",
                                      str(BIGINT_MAX + 1), "9" * 19, "9" * 40, "١٢", "１２", "1\u0663", "²"])
    def test_anything_else_is_none(self, text):
        """Zero, signs, underscores, leading zeros, spaces, Unicode digits and ids beyond bigint: None (a 422)."""
        assert order_id_in_range(text) is None


def applied(command_id: str) -> dict:
    """An OrderStatusChanged for `command_id` as the events reader decodes it from the topic."""
    return as_read(changed(1029).model_copy(update={"command_id": command_id}))


class TestEventsReaderIsTotal:
    @pytest.mark.parametrize("hostile", [
        {"command_id": ["not", "hashable"]}, {"command_id": {"a": 1}}, {"command_id": 7}, {"command_id": None},
        {}, None, {"command_id": "c-1", "type": ["x"], "reason": {"y": 1}},
    ])
    async def test_no_event_stops_the_reader(self, hostile):
        """A non-hashable or odd command_id, a missing one, a non-object: skipped; the next outcome still arrives."""
        tail = ScriptedTail([hostile, applied("c-1")])
        tail.expect("c-1", "ChangeOrderStatus")
        outcome = await tail.wait("c-1", 5)
        assert outcome.final and outcome.events[-1]["type"] == "OrderStatusChanged"
        assert tail.stopped is None
        tail._task.cancel()

    async def test_a_reader_that_stopped_is_reported(self):
        """If the reader ever ends (here: the broker client raises), `stopped` says so, for readiness to turn red."""
        tail = ScriptedTail([RuntimeError("fetch failed")])
        tail.expect("c-2", "ChangeOrderStatus")
        await asyncio.wait_for(asyncio.gather(tail._task, return_exceptions=True), 5)
        assert tail.stopped == "events reader stopped: RuntimeError"
        tail.forget("c-2")


class TestWaitingTable:
    async def test_two_requests_for_one_command_both_get_the_outcome(self):
        """Two concurrent waits for one command id (one Idempotency-Key twice): both answered, then the table is empty."""
        tail = ScriptedTail([])
        tail.expect("c-3", "ChangeOrderStatus")
        tail.expect("c-3", "ChangeOrderStatus")
        first = asyncio.create_task(tail.wait("c-3", 5))
        second = asyncio.create_task(tail.wait("c-3", 5))
        tail.feed.put_nowait(applied("c-3"))
        outcomes = await asyncio.gather(first, second)
        assert all(o.final for o in outcomes)
        assert tail._waiting == {} and tail._waiters == {}
        tail._task.cancel()

    async def test_one_timed_out_wait_leaves_the_other_waiting(self):
        """The first of two waits ending (202) does not take the entry from the second."""
        tail = ScriptedTail([])
        tail.expect("c-4", None)
        tail.expect("c-4", None)
        assert not (await tail.wait("c-4", 0.01)).final
        second = asyncio.create_task(tail.wait("c-4", 5))
        tail.feed.put_nowait(applied("c-4"))
        assert (await second).final
        assert tail._waiting == {}
        tail._task.cancel()

    async def test_forget_after_a_failed_send_cleans_the_entry(self):
        """A publish that failed ends its expect with forget: nothing is left behind."""
        tail = ScriptedTail([])
        tail.expect("c-5", None)
        tail.forget("c-5")
        assert tail._waiting == {} and tail._waiters == {}
        tail._task.cancel()


class TestLocation:
    @pytest.mark.parametrize(("command_id", "location"), [
        ("idem-abc_-9", "/commands/idem-abc_-9"),
        ("a/b?c#d e", "/commands/a%2Fb%3Fc%23d%20e"),
        ("ü\r\nX-Evil: 1", "/commands/%C3%BC%0D%0AX-Evil%3A%201"),
    ])
    def test_the_command_id_is_url_encoded(self, command_id, location):
        """A command id is one encoded path segment in Location: no slash, query, fragment or header break."""
        assert command_location(command_id) == location


class TestClientsSeeWhatTheHistoryShows:
    def test_a_command_outcome_hides_from_clients_what_the_history_hides(self):
        """GET /commands/{id} for a client: no reservation refs or coupon codes, no private note, the actor's role and
        verified name only (as the history and the emails show them)."""
        event = as_read(changed(1029, note="internal", public=False).model_copy(update={
            "command_id": "c-1", "actor": EventActor(id="u-7", role="client", client_id="c-1", name="Ann"),
            "removed_reservations": ["R-1"], "removed_coupons": ["SPRING"]}))
        client = viewer_of(Principal(sub="u-7", role="client", client_id="c-1"))
        seen = shown(client, event)
        assert seen["removed_reservations"] == [] and seen["removed_coupons"] == []
        assert seen["note"] is None and seen["actor"] == {"role": "client", "name": "Ann"}
        assert event["removed_coupons"] == ["SPRING"]  # the stored event is untouched
        public = shown(client, {**event, "note": {"text": "on its way", "is_public": True}})
        assert public["note"] == {"text": "on its way", "is_public": True}
        assert shown(client, {"type": "ChangeRejected", "reason": "x"}) == {
            "type": "ChangeRejected", "reason": "x"}
