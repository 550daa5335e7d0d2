"""A message whose processing fails for a reason that is not an outage is isolated and dead-lettered."""

from __future__ import annotations

import json

import pytest

from service import processing
from service.adapters.database import create_pool
from service.adapters.rules_store import RulesCache
from service.handlers import SourceMessage, Topics
from service.unit_of_work import PostgresUnitOfWork
from tests.support import change, fetch, seed


@pytest.fixture
def handler_failing_for_order(monkeypatch):
    """Make the ChangeOrderStatus handler raise (a stand-in for any bug or refused write) for one order."""
    real = processing.HANDLERS["ChangeOrderStatus"]

    def failing(command, ctx):
        if command.order_id == 1031:
            raise ValueError("simulated failure")
        return real(command, ctx)

    monkeypatch.setitem(processing.HANDLERS, "ChangeOrderStatus", failing)


async def test_one_poisonous_message_is_dead_lettered_and_the_rest_apply(settings, handler_failing_for_order):
    """The batch falls back to one transaction per message: the good ones apply, the bad one goes to the DLQ."""
    await seed(settings)
    commands = [change(1033, "Confirmed"), change(1031, "Dispatched"), change(3001, "QuoteAccepted", role="manager")]
    sources = [SourceMessage("commands", 0, n, str(c["order_id"]).encode(), json.dumps(c).encode())
               for n, c in enumerate(commands)]
    pool = await create_pool(settings.database_url)
    try:
        cache = RulesCache()
        result = await processing.process_isolating_poison(
            sources, lambda: PostgresUnitOfWork(pool, cache), Topics("events", "dlq"), 50)
        again = await processing.process_isolating_poison(
            sources, lambda: PostgresUnitOfWork(pool, cache), Topics("events", "dlq"), 50)
    finally:
        await pool.close()
    assert [o.outcome for o in result.outcomes] == ["applied", "invalid:processing_failed", "applied"]
    assert again.outcomes == [] and again.duplicates == 3  # redelivery: nothing twice, the DLQ copy included
    versions = await fetch(settings, "SELECT order_id, version FROM orders WHERE order_id IN (1031, 1033, 3001) "
                                     "ORDER BY order_id")
    assert [tuple(r) for r in versions] == [(1031, 0), (1033, 1), (3001, 1)]
    letters = await fetch(settings, "SELECT payload, headers FROM outbox WHERE topic = 'dlq'")
    assert len(letters) == 1 and bytes(letters[0]["payload"]) == sources[1].value
    headers = {name: bytes.fromhex(value) for name, value in letters[0]["headers"]}
    assert headers["error.reason"] == b"processing_failed"
    assert b"simulated failure" in headers["error.message"]
    assert headers["original.offset"] == b"1"
