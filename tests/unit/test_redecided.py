"""Commands decided again after a rewind, compared with the events topic (issue 24, `worker/redecided.py`):
decided again in the same interleaving nothing differs; an override interleaved otherwise with another
partition's command re-emits an event id with other content, and that is found, logged and counted."""

from __future__ import annotations

import asyncio
import dataclasses

from service.contract.events import Topics
from service.runtime.metrics import Metrics
from service.worker.config import BatchConfig
from service.worker.poison import process_isolating_poison
from service.worker.redecided import RedecidedCheck, conflicts
from tests.helpers.commands import change, override, source_messages
from tests.helpers.fakes import FakeDatabase

TOPICS = Topics("events", "dlq")
CHANGE = change(1029, "OnHold", role="manager")  # order 1029's own command, on its own partition (1)
OVERRIDE = override([(1029, "CourierClaim"), (1031, "OnHold")])  # keyed by its command id: partition 0


class Topic:
    """The events topic as the check reads it: (event id, value) of every event published."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []

    async def since(self, stamp_ms: int) -> list[tuple[str, bytes]]:
        return list(self.events)


def sources():
    [own] = source_messages([CHANGE], partition=1)
    [batch] = source_messages([OVERRIDE], partition=0)
    return dataclasses.replace(own, timestamp_ms=1_780_000_000_000), dataclasses.replace(batch, timestamp_ms=1_780_000_000_005)


async def decide(db: FakeDatabase, units, check: RedecidedCheck | None = None, topic: Topic | None = None) -> None:
    """Each unit in its own batch, in this order; what the relay would publish goes to `topic`."""
    from tests.helpers.fakes import FakeUnitOfWork

    for unit in units:
        before = len(db.outbox)
        result = await process_isolating_poison(unit, lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        if check is not None:
            check.note(unit, result.outcomes)
        if topic is not None:
            topic.events += [(str(m.event_id), m.value) for m in db.outbox[before:] if m.topic == "events"]


async def decided_again(order) -> tuple[RedecidedCheck, Metrics]:
    """First the change, then the override (published); the database loses both and they are decided again in
    `order`, inside a rewound window of both partitions."""
    own, batch = sources()
    topic = Topic()
    await decide(FakeDatabase.seeded(), [[own], [batch]], topic=topic)
    metrics = Metrics("worker")
    check = RedecidedCheck(topic, TOPICS, metrics)
    check.rewound({("commands", 1): (0, 1), ("commands", 0): (0, 1)})
    await decide(FakeDatabase.seeded(), [[{"own": own, "batch": batch}[name]] for name in order], check)
    await asyncio.gather(*check.tasks)
    return check, metrics


class TestConflicts:
    def test_only_a_known_id_with_other_content_is_a_conflict(self):
        """Same id same content: none; same id other content: one, once; an id not decided again: ignored."""
        again = {"e1": ("c1", b"a"), "e2": ("c1", b"b")}
        found = conflicts(again, [("e1", b"a"), ("e2", b"x"), ("e2", b"x"), ("e9", b"z")])
        assert [(c.event_id, c.command_id, c.published, c.decided_again) for c in found] == [("e2", "c1", b"x", b"b")]


class TestDecidedAgain:
    async def test_the_same_interleaving_comes_out_the_same_and_nothing_is_reported(self):
        """Decided again in the original order: every event equals the one on the topic; no conflict."""
        check, metrics = await decided_again(["own", "batch"])
        assert check.checked > 0 and check.conflict_count == 0
        assert metrics.registry.get_sample_value("orderstatus_redecided_conflicts_total", {"service": "worker"}) in (
            None, 0.0)

    async def test_another_interleaving_of_an_override_is_found_and_counted(self):
        """The override decided before the order's own command this time: the override's item and the change
        carry other versions under their ids — each difference reported, counted and shown in the status."""
        check, metrics = await decided_again(["batch", "own"])
        assert check.conflict_count >= 2
        assert {c.command_id for c in check.found} == {CHANGE["command_id"], OVERRIDE["command_id"]}
        assert metrics.registry.get_sample_value(
            "orderstatus_redecided_conflicts_total", {"service": "worker"}) == check.conflict_count
        assert check.status()["conflicts"] == check.conflict_count and not check.status()["window_open"]
