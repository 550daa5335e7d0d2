"""Smoke: one command through the real broker and Postgres to its event."""

from tests.helpers.commands import change
from tests.helpers.database import fetch, seed
from tests.helpers.producing import produce
from tests.helpers.services import running_worker
from tests.helpers.topics import TopicReader, events_for


async def test_cancel_through_broker_and_postgres(settings):
    """A client's cancel of its own order is applied, noted and published with version 1."""
    await seed(settings)
    cmd = change(1029, 21, role="client", client_id="c-1", note={"text": "Customer asked to cancel", "is_public": True})
    async with running_worker(settings), TopicReader(settings, settings.events_topic) as reader:
        await produce(settings, [cmd])
        events = await events_for(reader, {cmd["command_id"]})
    assert [e["type"] for e in events] == ["OrderStatusChanged"]
    assert events[0]["version"] == 1
    assert events[0]["removed_reservations"] == ["R-1"]
    rows = await fetch(settings, "SELECT status_id, version FROM orders WHERE order_id = 1029")
    assert (rows[0]["status_id"], rows[0]["version"]) == (21, 1)
