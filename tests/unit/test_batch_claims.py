"""The claims step of the worker's batch (`service/worker/claims.py`) on the fake unit of work: it returns what
it claimed — the messages to process, which of them a redrive took over, and the redrive keys spent on a
duplicate — and writes nothing itself."""

from __future__ import annotations

from service.contract.commands import InputLimits
from service.contract.events import Topics, WireMessage
from service.worker.claims import Claimed, authenticate, claim, parse
from service.worker.config import BatchConfig, trust_the_command
from service.worker.poison import process_isolating_poison
from tests.helpers.commands import change, override, source_messages
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork
from tests.helpers.redrive import redriven

TOPICS = Topics("events", "dlq")


def parsed(sources, limits: InputLimits = InputLimits()):
    return [authenticate(parse(s, limits), trust_the_command) for s in sources]


async def claimed(db: FakeDatabase, sources) -> Claimed:
    async with FakeUnitOfWork(db) as uow:
        return await claim(uow, parsed(sources), TOPICS)


def offsets(result: Claimed) -> list[tuple[int, bool]]:
    return [(f.parsed.source.offset, f.retaken) for f in result.fresh]


class TestFreshCommands:
    async def test_new_commands_are_fresh_in_batch_order_and_a_repeated_id_counts_once(self):
        """Three messages, the third repeating the first's command id: the first two are fresh, in order."""
        first, second = change(1033, "OnHold"), change(1031, "OnHold")
        result = await claimed(FakeDatabase.seeded(), source_messages([first, second, first]))
        assert offsets(result) == [(0, False), (1, False)] and result.spent_on_duplicates == []

    async def test_a_command_recorded_before_is_not_fresh(self):
        """A command id committed by an earlier batch is claimed by nobody now: a duplicate."""
        db, command = FakeDatabase.seeded(), change(1033, "OnHold")
        await process_isolating_poison(source_messages([command]), lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        result = await claimed(db, source_messages([command]))
        assert result.fresh == [] and result.spent_on_duplicates == []

    async def test_claiming_writes_nothing(self):
        """The claims step commits nothing: the database is as it was."""
        db = FakeDatabase.seeded()
        await claimed(db, source_messages([change(1033, "OnHold")]))
        assert db.processed == {} and db.commits == 0


class TestRedrives:
    async def recorded(self, command, limits: InputLimits = InputLimits()) -> tuple[FakeDatabase, object]:
        db = FakeDatabase.seeded()
        await process_isolating_poison(source_messages([command]), lambda: FakeUnitOfWork(db),
                                       BatchConfig(TOPICS, 50, limits))
        [letter] = [m for m in db.outbox if m.topic == "dlq"] or [None]
        return db, letter

    async def test_a_redrive_of_a_command_recorded_invalid_is_fresh_and_taken_over(self):
        """The redrive takes the invalid record over: fresh, marked retaken (its events get fresh ids)."""
        db, letter = await self.recorded(override([(1033, "OnHold"), (1031, "OnHold")]), InputLimits(max_wire_items=1))
        result = await claimed(db, [redriven(letter, 0, offset=10)])
        assert offsets(result) == [(10, True)] and result.spent_on_duplicates == []

    async def test_a_redrive_of_a_command_that_applied_spends_its_key_on_a_duplicate(self):
        """A command that applied stays a duplicate; the redrive's key is returned as spent."""
        command = change(1033, "OnHold")
        db, _ = await self.recorded(command)
        [original] = source_messages([command])
        letter = WireMessage("dlq", original.key, original.value, headers=list(original.headers))
        result = await claimed(db, [redriven(letter, 3, offset=10)])
        assert result.fresh == [] and result.spent_on_duplicates == ["@redrive:dlq:0:3"]

    async def test_one_redrive_twice_in_a_batch_counts_once(self):
        """The same DLQ record redriven twice in one batch: its key is claimed once, the second is a duplicate."""
        db, letter = await self.recorded(override([(1033, "OnHold"), (1031, "OnHold")]), InputLimits(max_wire_items=1))
        result = await claimed(db, [redriven(letter, 0, offset=10), redriven(letter, 0, offset=11)])
        assert offsets(result) == [(10, True)]
