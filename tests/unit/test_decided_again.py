"""What the worker decides again after a rewind (issue 24: a failover lost the last commits, the commands are
read again) comes out the same: event ids from the command, event times from the command's record, so the
re-emitted events equal the ones already on the topic."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timezone

from service.contract.events import Topics
from service.worker.config import BatchConfig
from service.worker.handlers import decision_time
from service.worker.poison import process_isolating_poison
from tests.helpers.commands import change, override, source_messages
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("events", "dlq")
COMMANDS = [change(1033, "OnHold", role="manager"), override([(1031, "OnHold"), (1031, "CourierClaim")]),
            change(1029, "OnHold", role="manager"), change(1030, "Dispatched")]


def stamped(sources, first_ms: int = 1_780_000_000_000):
    return [dataclasses.replace(s, timestamp_ms=first_ms + 10 * i) for i, s in enumerate(sources)]


async def decided(sources) -> list[tuple]:
    """The outbox a fresh, seeded database holds after the batch: what the relay would publish."""
    db = FakeDatabase.seeded()
    await process_isolating_poison(sources, lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
    return [(m.topic, m.key, m.value, m.event_id, tuple(m.headers)) for m in db.outbox]


class TestDecisionTime:
    def test_the_command_records_timestamp_is_the_decision_time(self):
        """A record with a Kafka timestamp is decided at that time, whatever the clock says."""
        [source] = stamped(source_messages([change(1033, "OnHold")]), 1_780_000_000_123)
        clock = datetime(2030, 1, 1, tzinfo=timezone.utc)
        assert decision_time(source, clock) == datetime(2026, 5, 28, 20, 26, 40, 123000, tzinfo=timezone.utc)

    def test_a_record_without_a_timestamp_is_decided_at_the_clock(self):
        """Without a timestamp there is nothing else to go by: the clock."""
        [source] = source_messages([change(1033, "OnHold")])
        clock = datetime(2030, 1, 1, tzinfo=timezone.utc)
        assert decision_time(source, clock) == clock


class TestDecidedAgain:
    async def test_the_same_commands_on_the_same_state_make_byte_identical_events(self):
        """Deciding a batch again (a later clock, a database that lost it) gives the same event ids, values
        and headers — changes, rejections and an override's summary alike."""
        sources = stamped(source_messages(COMMANDS))
        first, again = await decided(sources), await decided(sources)
        kinds = [m[2].split(b'"', 4)[3] for m in first]
        assert kinds.count(b"OrderStatusChanged") >= 3 and b"OrderStatusChangeRejected" in kinds
        assert first == again

    async def test_without_the_records_timestamp_the_events_would_differ(self):
        """Negative control: records without a timestamp are decided at the clock, and the two decisions'
        events differ in their time — what the comparison above would catch."""
        sources = source_messages(COMMANDS)
        first, again = await decided(sources), await decided(sources)
        assert [m[3] for m in first] == [m[3] for m in again]  # the ids still come from the command
        assert [m[2] for m in first] != [m[2] for m in again]
