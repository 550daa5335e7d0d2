"""Poison isolation (DESIGN §7.5): a message whose processing fails for a reason that is not an outage
is isolated from its batch and dead-lettered once; the rest of the batch applies.

`service.worker.poison.process_isolating_poison` runs over the fake unit of work (which keeps the same
contract as the Postgres one); the fake database refuses any change to one order, as Postgres
refuses data it cannot store."""

from __future__ import annotations

import copy

import pytest

from service.contract.events import Topics
from service.runtime.faults import is_outage
from service.worker.config import BatchConfig
from service.worker.poison import process_isolating_poison
from tests.helpers.commands import change, source_messages
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork

TOPICS = Topics("events", "dlq")
POISONED = 1031  # ReadyToShip -> Dispatched is a valid change: only the database refuses it


def batch() -> list:
    return source_messages([change(1033, "Confirmed"), change(POISONED, "Dispatched"),
                            change(3001, "QuoteAccepted", role="manager")])


class TestPoisonIsolation:
    async def test_the_poisonous_message_is_dead_lettered_once_and_the_rest_apply(self):
        """The good messages apply, the bad one is dead-lettered once with its offset, a redelivery changes nothing."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(POISONED)
        sources = batch()
        result = await process_isolating_poison(sources, lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        state = copy.deepcopy((db.orders, db.outbox, db.processed))
        again = await process_isolating_poison(sources, lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))

        assert [o.outcome for o in result.outcomes] == ["applied", "invalid:processing_failed", "applied"]
        assert again.outcomes == [] and again.duplicates == 3  # redelivery: nothing twice, the DLQ copy included
        assert (db.orders, db.outbox, db.processed) == state
        assert {oid: db.orders[oid].version for oid in (POISONED, 1033, 3001)} == {POISONED: 0, 1033: 1, 3001: 1}
        letters = [m for m in db.outbox if m.topic == "dlq"]
        assert len(letters) == 1 and letters[0].value == sources[1].value
        headers = dict(letters[0].headers)
        assert headers["error.reason"] == b"processing_failed"
        assert b"simulated refusal of order 1031" in headers["error.message"]
        assert headers["original.offset"] == b"1"
        assert {m.order_id for m in db.outbox if m.topic == "events"} == {1033, 3001}

    async def test_a_batch_without_poison_is_one_unit_of_work(self):
        """The same batch with nothing refused commits once and applies every message."""
        db = FakeDatabase.seeded()
        result = await process_isolating_poison(batch(), lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        assert [o.outcome for o in result.outcomes] == ["applied"] * 3
        assert db.commits == 1 and not [m for m in db.outbox if m.topic == "dlq"]

    async def test_an_outage_is_raised_not_dead_lettered(self):
        """A failure that is an outage (the connection went away) propagates for a retry; nothing is written."""
        db = FakeDatabase.seeded()
        outage = ConnectionResetError("connection reset by peer")
        assert is_outage(outage)
        db.refuse_changes_to(POISONED, outage)
        with pytest.raises(ConnectionResetError):
            await process_isolating_poison(batch(), lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        assert db.outbox == [] and db.processed == {} and db.commits == 0
