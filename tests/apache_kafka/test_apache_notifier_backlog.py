"""A notifier that is behind (after an outage, a broker fault, a slow SMTP server) works through its backlog
on every partition in turn, so no order's emails wait for other orders' whole backlog (DESIGN §7.6).

The Kafka client hands out what one fetch brought for a partition before it moves on to the next one, and
Apache Kafka fills a fetch with up to `max.partition.fetch.bytes` of each partition: with 1 MiB that is
some 1,500 events, half a minute of emails at the notifier's pace, during which the orders of the other
partitions get nothing (measured in tests/apache_kafka/test_apache_cluster_faults.py: 15-24 s per order
while the notifier caught up after a fault)."""

from __future__ import annotations

import pytest

from tests.helpers.database import seed
from tests.helpers.events import changed
from tests.helpers.producing import produce
from tests.helpers.services import running_notifier
from tests.helpers.waiting import wait_until

PARTITIONS = 3
ORDER_IDS = [9001, 9002, 9003]  # one on each of the three partitions (murmur2 of the order id)
ORDERS = [{"order_id": oid, "order_type": "SO", "status": "Confirmed", "client_id": f"c-{oid}",
           "contacts": [{"email": f"ann.{oid}@example.com", "name": "Ann", "kind": "client"}]}
          for oid in ORDER_IDS]
PER_ORDER = 300  # ~190 KB of events per partition: one fetch of 1 MiB per partition holds all of them


@pytest.mark.timeout(600)
async def test_apache_a_notifier_behind_sends_every_orders_emails_in_turn(settings, mailbox):
    """A backlog on three partitions is mailed in turns: no order waits for a third of the backlog for its first or next email."""
    await seed(settings, ORDERS, partitions=PARTITIONS)
    events = [changed(oid, version=v, note=f"step {v}") for v in range(1, PER_ORDER + 1) for oid in ORDER_IDS]
    placed = await produce(settings, events, settings.events_topic)
    assert {m.partition for m in placed} == set(range(PARTITIONS))
    recipient_order = {o["contacts"][0]["email"]: o["order_id"] for o in ORDERS}
    total = len(events)
    async with running_notifier(settings):
        await wait_until(lambda: len(mailbox.messages) >= total, 300, f"{total} emails")
    orders = [recipient_order[m["To"].addresses[0].addr_spec] for m in mailbox.messages]
    first = {oid: orders.index(oid) for oid in ORDER_IDS}
    assert max(first.values()) < total // 3, f"position of each order's first email: {first}"
    longest_wait = {}
    for oid in ORDER_IDS:
        positions = [i for i, o in enumerate(orders) if o == oid]
        longest_wait[oid] = max(b - a for a, b in zip([-1, *positions], positions))
    print(f"\nposition of each order's first email {first}; most emails of others between two of an order's "
          f"{longest_wait} (of {total})")
    assert max(longest_wait.values()) < total // 3, f"most emails of others between two of an order's: {longest_wait}"
