"""One contract suite of the gateway's command records (`service.gateway.ports.CommandRecords`), run against every
implementation as eventsourcing runs one abstract test case per backend: `tests/unit/test_fake_command_records.py`
runs it against the in-memory records over the fake database, `tests/integration/test_postgres_command_records.py`
against `PostgresCommandRecords` on a real Postgres. A subclass provides a `backend` fixture: the records (built
with MAX_EVENTS), seeding, and the unit of work of the same backend to write through. The outcomes are what that
other port committed, so records that echo or invent state fail the suite.

What the gateway relies on (DESIGN §11, §12): an idempotency key stays bound to its first request's fingerprint;
a command's outcome is its processed record and exactly its own outcome events, as published, in order; nothing
for a command no worker has recorded."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Protocol

from service.gateway.ports import CommandRecords
from service.worker.ports import UnitOfWork
from tests.helpers.contract_suite import SeededContractSuite
from tests.helpers.unit_of_work_contract import CONFIRMED, FREE, ON_HOLD, ORDERS, PAID, Prepared, applied, key, rejected

MAX_EVENTS = 3


class Backend(Protocol):
    """What a concrete suite provides: the records (with MAX_EVENTS), seeding, and a unit of work on the same state."""

    records: CommandRecords

    async def seed(self, orders: list[dict]) -> None:
        """Load the sample rules and import these orders (orders-file format, DESIGN §5.2)."""

    def unit_of_work(self) -> UnitOfWork: ...


async def commit(backend: Backend, *commands: Prepared) -> None:
    """Process the commands through the backend's unit of work, one each, as the worker does."""
    for command in commands:
        async with backend.unit_of_work() as uow:
            await uow.claim([key(command.command_id)])
            await uow.lock_orders({c.order_id for c in command.changes})
            command.add_to(uow)
            await uow.commit()


def published(command: Prepared) -> list[dict]:
    """The command's outcome events as a reader of the events topic decodes them."""
    return [json.loads(m.value) for m in command.messages]


class CommandRecordsContract(SeededContractSuite):
    """The behaviour every implementation of the gateway's command records keeps."""

    orders = ORDERS

    async def test_a_key_stays_bound_to_its_first_fingerprint(self, backend):
        """The first binding wins: a later request with another fingerprint gets the first one back."""
        assert await backend.records.bind_key("k-1", "first") == "first"
        assert await backend.records.bind_key("k-1", "second") == "first"
        assert await backend.records.bind_key("k-1", "first") == "first"

    async def test_keys_are_bound_independently(self, backend):
        """Another command id takes its own fingerprint."""
        await backend.records.bind_key("k-1", "first")
        assert await backend.records.bind_key("k-2", "other") == "other"

    async def test_no_outcome_before_a_worker_recorded_the_command(self, seeded):
        """A command id no unit of work committed has no outcome."""
        assert await seeded.records.outcome("never-sent") is None

    async def test_an_applied_command_has_its_record_and_its_events_in_order(self, seeded):
        """The processed record (type, outcome, when) and the command's events as published, in the order written."""
        command = applied("a", (FREE, CONFIRMED, ON_HOLD, 1), (FREE, ON_HOLD, CONFIRMED, 2))
        before = datetime.now(timezone.utc)
        await commit(seeded, command)
        found = await seeded.records.outcome("a")
        processed_at = datetime.fromisoformat(found.pop("processed_at"))
        assert found == {"command_id": "a", "command_type": "ChangeOrderStatus", "outcome": "applied",
                         "events": published(command)}
        assert before - timedelta(seconds=5) <= processed_at <= datetime.now(timezone.utc) + timedelta(seconds=5)

    async def test_a_rejected_command_has_its_rejection(self, seeded):
        """A rejection's outcome names its reason and its one event is the rejection."""
        command = rejected("r", PAID, "cancel_has_payments")
        await commit(seeded, command)
        found = await seeded.records.outcome("r")
        assert (found["outcome"], found["events"]) == ("rejected:cancel_has_payments", published(command))
        assert found["events"][0]["type"] == "OrderStatusChangeRejected"

    async def test_only_the_commands_own_events_are_found(self, seeded):
        """Events of other commands, committed before and after, are not part of the outcome."""
        first, mine, last = (applied("x", (FREE, CONFIRMED, ON_HOLD, 1)), rejected("m", PAID),
                             applied("y", (FREE, ON_HOLD, CONFIRMED, 2)))
        await commit(seeded, first, mine, last)
        assert (await seeded.records.outcome("m"))["events"] == published(mine)

    async def test_events_beyond_the_bound_are_not_found(self, seeded):
        """A command's events are looked up by their ids 0 .. MAX_EVENTS-1: a further one is not read."""
        steps = [(FREE, CONFIRMED, ON_HOLD, 1), (FREE, ON_HOLD, CONFIRMED, 2), (FREE, CONFIRMED, ON_HOLD, 3),
                 (FREE, ON_HOLD, CONFIRMED, 4)]
        command = applied("long", *steps)
        await commit(seeded, command)
        assert (await seeded.records.outcome("long"))["events"] == published(command)[:MAX_EVENTS]
