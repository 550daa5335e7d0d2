"""Redriving dead letters (DESIGN §11): the `redrive.*` headers, and what the worker's batch does with a
redriven command, over the fake unit of work (the same take-over runs against Postgres in
tests/integration/test_dlq_redrive.py).

A command recorded as invalid is processed once more after a redrive, once however often the redrive
is replayed; a redrive never applies a command that applied or was rejected; a redrive that fails
again is back in the DLQ with its count."""

from __future__ import annotations

import json

from service.contract.commands import InputLimits
from service.contract.events import Topics
from service.contract.redrive import Redrive, read_count, read_redrive, redrive_headers
from service.domain.events import event_id_for
from service.worker.batch import process_batch
from service.worker.config import BatchConfig
from service.worker.poison import process_isolating_poison
from tests.helpers.commands import change, override, source_messages
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork
from tests.helpers.redrive import redriven

TOPICS = Topics("events", "dlq")
TIGHT = InputLimits(max_wire_items=1)  # before the fix: an override of two items is invalid on the wire


def letters(db: FakeDatabase) -> list:
    return [m for m in db.outbox if m.topic == "dlq"]


def events(db: FakeDatabase) -> list[dict]:
    return [json.loads(m.value) for m in db.outbox if m.topic == "events"]


async def run(db: FakeDatabase, sources, limits: InputLimits = InputLimits()):
    return await process_isolating_poison(sources, lambda: FakeUnitOfWork(db),
                                          BatchConfig(TOPICS, 50, limits))


class TestHeaders:
    def test_a_redrive_counts_up_and_says_where_it_came_from(self):
        """The copy keeps the original's own headers, drops the DLQ's and earlier redrive headers, counts + 1."""
        dead = [("actor-token", b"jwt"), ("error.reason", b"not_json"), ("original.offset", b"4"),
                ("redrive.count", b"2"), ("redrive.dlq-offset", b"1"), ("trace", None)]
        headers = redrive_headers(dead, 3, 17)
        assert headers == [("actor-token", b"jwt"), ("trace", None), ("redrive.count", b"3"),
                           ("redrive.dlq-offset", b"17"), ("redrive.dlq-partition", b"3")]
        assert read_redrive(headers) == Redrive(count=3, dlq_partition=3, dlq_offset=17)

    def test_a_first_redrive_has_count_one(self):
        """A dead letter never redriven before goes back with redrive.count 1."""
        assert read_count(redrive_headers([("error.reason", b"processing_failed")], 0, 5)) == 1

    def test_unreadable_redrive_headers_make_an_ordinary_message(self):
        """A message without a readable DLQ offset is no redrive (it cannot take a record over)."""
        assert read_redrive([("redrive.count", b"1")]) is None
        assert read_redrive([("redrive.dlq-offset", b"-1")]) is None
        assert read_redrive([("redrive.dlq-offset", b"\xff")]) is None
        assert read_redrive([("redrive.dlq-offset", b"9"), ("redrive.dlq-partition", b"x")]) is None

    def test_the_key_names_the_dlq_record(self):
        """Two DLQ records never share a redrive key; the key cannot be a command id (it starts with @)."""
        assert Redrive(1, 0, 7).key("dlq") != Redrive(1, 1, 7).key("dlq")
        assert Redrive(1, 0, 7).key("dlq") == Redrive(5, 0, 7).key("dlq") == "@redrive:dlq:0:7"


class TestRedriveOfAnInvalidCommand:
    async def recorded_invalid(self):
        db = FakeDatabase.seeded()
        command = override([(1033, "OnHold"), (1031, "OnHold")])
        [original] = source_messages([command])
        result = await run(db, [original], TIGHT)
        assert [o.outcome for o in result.outcomes] == ["invalid:validation_failed"]
        [letter] = letters(db)
        return db, command, original, letter

    async def test_after_the_fix_the_redrive_applies_it_once_under_fresh_event_ids(self):
        """The once-invalid command takes its record over and applies; its events are new events."""
        db, command, _, letter = await self.recorded_invalid()
        result = await run(db, [redriven(letter, 0, offset=10)])
        assert [o.outcome for o in result.outcomes] == ["applied"]
        assert db.processed[command["command_id"]].outcome == "applied"
        assert {oid: db.orders[oid].version for oid in (1033, 1031)} == {1033: 1, 1031: 1}
        ids = [e["event_id"] for e in events(db)]
        assert len(ids) == len(set(ids)) == 4  # the rejection of the invalid command, two changes, a summary
        assert str(event_id_for(command["command_id"], 0)) == ids[0]  # only the first rejection has the usual id
        assert db.processed["@redrive:dlq:0:0"].outcome == "redrive:applied"

    async def test_a_replayed_or_repeated_redrive_changes_nothing(self):
        """The same redrive delivered again, sent again, or the original replayed: all duplicates."""
        db, _, original, letter = await self.recorded_invalid()
        first = redriven(letter, 0, offset=10)
        await run(db, [first])
        state = (dict(db.orders), list(db.outbox), {k: v.outcome for k, v in db.processed.items()})
        result = await run(db, [original, first, redriven(letter, 0, offset=11)])
        assert result.outcomes == [] and result.duplicates == 3
        assert (dict(db.orders), list(db.outbox), {k: v.outcome for k, v in db.processed.items()}) == state

    async def test_a_redrive_of_another_dead_letter_of_an_applied_command_is_a_duplicate(self):
        """A second DLQ record of the same command, redriven after it applied, applies nothing."""
        db, command, _, letter = await self.recorded_invalid()
        await run(db, [redriven(letter, 0, offset=10)])
        result = await run(db, [redriven(letter, 1, offset=11)])
        assert result.outcomes == [] and result.duplicates == 1
        assert db.orders[1033].version == 1
        assert db.processed["@redrive:dlq:0:1"].outcome == "redrive:duplicate"

    async def test_still_invalid_it_goes_back_to_the_dlq_with_its_count(self):
        """Without the fix the redrive is dead-lettered again, carrying redrive.count; the redrive is spent."""
        db, command, _, letter = await self.recorded_invalid()
        first = redriven(letter, 0, offset=10)
        result = await run(db, [first], TIGHT)
        assert [o.outcome for o in result.outcomes] == ["invalid:validation_failed"]
        second_letter = letters(db)[1]
        assert read_count(second_letter.headers) == 1
        assert dict(second_letter.headers)["original.offset"] == b"10"
        assert db.processed[command["command_id"]].outcome == "invalid:validation_failed"
        again = await run(db, [first], TIGHT)
        assert again.outcomes == [] and len(letters(db)) == 2
        # the next redrive, of the new dead letter, counts 2 and applies after the fix
        second = redriven(second_letter, 1, offset=11)
        assert read_redrive(second.headers).count == 2
        assert [o.outcome for o in (await run(db, [second])).outcomes] == ["applied"]

    async def test_the_original_replayed_in_the_redrives_batch_stays_a_duplicate(self):
        """A replay that brings the original and its (not yet processed) redrive into one batch: the
        redrive takes the record over, the original does not, whichever comes first."""
        db, command, original, letter = await self.recorded_invalid()
        result = await process_batch([original, redriven(letter, 0, offset=10)],  # one transaction, no isolation
                                     lambda: FakeUnitOfWork(db), BatchConfig(TOPICS, 50))
        assert [o.outcome for o in result.outcomes] == ["applied"] and result.duplicates == 1
        assert db.orders[1033].version == 1 and db.commits == 2

    async def test_two_redrives_of_one_command_in_one_batch_process_it_once(self):
        """Redrives of two DLQ records of the same command in one poll batch: the first takes it over."""
        db, _, _, letter = await self.recorded_invalid()
        result = await run(db, [redriven(letter, 0, offset=10), redriven(letter, 1, offset=11)])
        assert [o.outcome for o in result.outcomes] == ["applied"] and result.duplicates == 1
        assert db.orders[1033].version == 1


class TestRedriveOfOtherCommands:
    async def test_a_rejected_command_is_not_processed_again(self):
        """A redrive never re-runs a command that was decided (rejected) before."""
        db = FakeDatabase.seeded()
        command = change(2001, "Received")  # transition_not_allowed
        [original] = source_messages([command])
        assert [o.outcome for o in (await run(db, [original])).outcomes] == ["rejected:transition_not_allowed"]
        as_redriven = redriven(_letter_of(original), 0, offset=10)
        result = await run(db, [as_redriven])
        assert result.outcomes == [] and result.duplicates == 1
        assert len(events(db)) == 1

    async def test_a_processing_failure_redriven_after_the_fix_applies_with_the_usual_ids(self):
        """A processing_failed dead letter never recorded its command id: the redrive applies it as new."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(1033)
        command = change(1033, "Confirmed")
        await run(db, source_messages([command]))
        [letter] = letters(db)
        assert dict(letter.headers)["error.reason"] == b"processing_failed"
        db.refusals.clear()
        result = await run(db, [redriven(letter, 0, offset=10)])
        assert [o.outcome for o in result.outcomes] == ["applied"]
        assert [e["event_id"] for e in events(db)] == [str(event_id_for(command["command_id"], 0))]

    async def test_a_redrive_that_fails_again_is_back_in_the_dlq_and_spent(self):
        """Still failing, the redrive is dead-lettered again with its count; replayed, it stays spent."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(1033)
        await run(db, source_messages([change(1033, "Confirmed")]))
        first = redriven(letters(db)[0], 0, offset=10)
        await run(db, [first])
        assert len(letters(db)) == 2 and read_count(letters(db)[1].headers) == 1
        db.refusals.clear()
        again = await run(db, [first])
        assert again.outcomes == [] and db.orders[1033].version == 0
        assert db.processed["@redrive:dlq:0:0"].outcome == "redrive:invalid:processing_failed"



class TestRedriveNeedsAnAuthenticatedCommand:
    """Issue 23 item 2: `redrive.*` headers count only on a command the actor check accepts."""

    async def test_a_refused_redrive_spends_neither_the_redrive_nor_the_command_id(self):
        """A redrive refused by the actor check is recorded under its position only; the real redrive then applies."""
        db = FakeDatabase.seeded()
        db.refuse_changes_to(1033)
        command = change(1033, "Confirmed")
        await run(db, source_messages([command]))
        db.refusals.clear()

        def refuse(headers, actor, bound=None):
            return "no actor token"

        forged = await process_isolating_poison([redriven(letters(db)[0], 0, offset=10)],
                                                lambda: FakeUnitOfWork(db),
                                                BatchConfig(TOPICS, 50, check_actor=refuse))
        assert [o.outcome for o in forged.outcomes] == ["rejected:actor_not_authenticated"]
        assert "@redrive:dlq:0:0" not in db.processed and command["command_id"] not in db.processed
        result = await run(db, [redriven(letters(db)[0], 0, offset=11)])
        assert [o.outcome for o in result.outcomes] == ["applied"]


def _letter_of(source):
    """A dead letter of the message as the worker would write it (for a redrive of a message that was not
    actually dead-lettered: what an operator redriving the wrong record would send)."""
    from service.contract.events import dead_letter
    from service.domain.events import DeadLetter

    return dead_letter(DeadLetter(source, "processing_failed", "test"), "dlq", 1_048_576)
