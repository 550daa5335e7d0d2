"""One contract suite of the unit-of-work port (`service.worker.ports.UnitOfWork`), run against every
implementation (pyeventsourcing style): `tests/unit/test_fake_unit_of_work.py` runs it against the
in-memory fake, `tests/integration/test_postgres_unit_of_work.py` against `PostgresUnitOfWork` on a
real Postgres. A subclass provides a `backend` fixture: a unit-of-work factory, a way to seed it, and
a small reader of the state it committed. The suite looks at that state through the reader, not only
through the port, so a fake that merely echoes what it was given would fail it.

What the worker relies on (DESIGN §7.1, §7.2): claims dedupe command ids; the orders' facts are read
under a lock; nothing is visible before `commit`; `commit` makes the changes, the history notes, the
outbox rows and the outcomes visible together; leaving the `async with` without a commit keeps nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Protocol

import pytest

from service.adapters.errors import PositionGap, RulesNotLoaded
from service.contract.events import Topics, WireMessage, to_wire
from service.contract.rules_file import load_rules_file
from service.domain.events import ChangeRejected, StatusChanged, event_id_for
from service.domain.model import Actor, Note, OrderFacts, RuleSet
from service.worker.ports import UnitOfWork
from tests.helpers.contract_suite import SeededContractSuite
from tests.helpers.database import SAMPLE_RULES

RULES = load_rules_file(SAMPLE_RULES)
TOPICS = Topics(events="events", dlq="dlq")
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
MANAGER = Actor("m-1", "manager")
CONFIRMED, ON_HOLD, COURIER_CLAIM, CANCELLED = (RULES.status(c) for c in ("Confirmed", "OnHold", "CourierClaim",
                                                                           "CancelledByClient"))
FREE, PAID, MISSING = 11, 12, 99
ORDERS = [
    {"order_id": FREE, "order_type": "SO", "status": "Confirmed", "client_id": "c-1", "payments_total": "0",
     "reservations": ["R-2", "R-1"], "coupons": ["C-1"]},
    {"order_id": PAID, "order_type": "SO", "status": "Confirmed", "payments_total": "12.50",
     "goods_out_notes": ["G-1"]},
]


class Backend(Protocol):
    """What a concrete suite provides: the port, seeding, and a reader of the committed state."""

    def unit_of_work(self) -> UnitOfWork: ...

    async def seed(self, orders: list[dict]) -> None:
        """Load the sample rules and import these orders (orders-file format, DESIGN §5.2)."""

    async def processed_outcomes(self) -> dict[str, str]:
        """Every processed-command record: command id -> outcome (`pending` until one is recorded)."""

    async def outbox_messages(self) -> list[WireMessage]:
        """Every outbox row, in the order it was written."""

    async def order_versions(self) -> dict[int, tuple[int, int]]:
        """Every order: order id -> (status id, version)."""

    async def history(self) -> list[tuple[int, int, str, uuid.UUID]]:
        """Every history note as (order id, version, command id, event id), by order and version."""

    async def positions(self) -> dict[tuple[str, int], int]:
        """The consumer's positions the units of work wrote: (topic, partition) -> next offset."""


@dataclass
class Prepared:
    """What one command's outcome hands to `add`."""

    command_id: str
    outcome: str
    changes: list[StatusChanged]
    messages: list[WireMessage]

    def add_to(self, uow: UnitOfWork) -> None:
        uow.add(self.command_id, self.outcome, self.changes, self.messages)


def applied(command_id: str, *steps: tuple[int, object, object, int], removed_reservations=(),
            removed_coupons=()) -> Prepared:
    """An applied command: one StatusChanged per (order id, from status, to status, version) step."""
    changes = [
        StatusChanged(
            event_id=event_id_for(command_id, index), command_id=command_id, order_id=order_id, order_type="SO",
            version=version, from_status=before.label(), to_status=after.label(), override=True, notify=False,
            actor=MANAGER, note=Note(f"step {index}"), removed_reservations=tuple(removed_reservations),
            removed_coupons=tuple(removed_coupons), occurred_at=NOW,
        )
        for index, (order_id, before, after, version) in enumerate(steps)
    ]
    return Prepared(command_id, "applied", changes, [to_wire(c, TOPICS) for c in changes])


def rejected(command_id: str, order_id: int, reason: str = "transition_not_allowed") -> Prepared:
    """A rejected command: its outcome and its rejection event, no change."""
    event = ChangeRejected(event_id=event_id_for(command_id, 0), command_id=command_id, order_id=order_id,
                           requested_status="OnHold", reason=reason, message="refused", actor=MANAGER,
                           occurred_at=NOW)
    return Prepared(command_id, f"rejected:{reason}", [], [to_wire(event, TOPICS)])


def key(command_id: str, offset: int = 0) -> tuple[str, str, str]:
    """A claim key: (command id, command type, source position)."""
    return command_id, "ChangeOrderStatus", f"commands:0:{offset}"


class Boom(Exception):
    """Raised inside a unit of work to leave it with an error."""


class UnitOfWorkContract(SeededContractSuite):
    """The unit-of-work behaviour the batch processing relies on. Subclasses provide `backend`."""

    orders = ORDERS

    # ------------------------------------------------------------------ claims (DESIGN §7.2)

    async def test_claim_returns_the_new_ids(self, seeded):
        """A first claim of some ids returns all of them; committed, each has a processed record."""
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([key("a", 0), key("b", 1)]) == {"a", "b"}
            await uow.commit()
        assert await seeded.processed_outcomes() == {"a": "pending", "b": "pending"}

    async def test_a_committed_id_is_a_duplicate_in_a_later_unit_of_work(self, seeded):
        """Claiming an id committed before returns only the ids that are new; the old record stays as it was."""
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            rejected("a", FREE).add_to(uow)
            await uow.commit()
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([key("a", 5), key("c", 6)]) == {"c"}
            await uow.commit()
        assert await seeded.processed_outcomes() == {"a": "rejected:transition_not_allowed", "c": "pending"}

    async def test_an_id_repeated_in_one_claim_counts_once(self, seeded):
        """The same id twice in one claim is returned once and recorded once."""
        async with seeded.unit_of_work() as uow:
            assert await uow.claim(iter([key("a", 0), key("a", 1), key("b", 2)])) == {"a", "b"}
            await uow.commit()
        assert await seeded.processed_outcomes() == {"a": "pending", "b": "pending"}

    async def test_an_id_claimed_again_in_the_same_unit_of_work_is_not_new(self, seeded):
        """A second claim of an id inside the unit of work that claimed it returns nothing."""
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([key("a")]) == {"a"}
            assert await uow.claim([key("a", 1)]) == set()
            await uow.commit()

    async def test_claiming_nothing_returns_nothing(self, seeded):
        """An empty claim returns an empty set and records nothing."""
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([]) == set()
            await uow.commit()
        assert await seeded.processed_outcomes() == {}

    # ------------------------------------------------------------------ a redrive takes an invalid record over

    async def recorded(self, backend, command_id: str, outcome: str) -> None:
        async with backend.unit_of_work() as uow:
            await uow.claim([key(command_id)])
            uow.add(command_id, outcome, [], [])
            await uow.commit()

    async def test_an_invalid_record_is_taken_over_and_gets_its_new_outcome(self, seeded):
        """`take_over_invalid` returns an id recorded as `invalid:*`; committed, its record has the new outcome."""
        await self.recorded(seeded, "a", "invalid:too_large")
        async with seeded.unit_of_work() as uow:
            assert await uow.take_over_invalid([key("a", 7)]) == {"a"}
            rejected("a", FREE).add_to(uow)
            await uow.commit()
        assert await seeded.processed_outcomes() == {"a": "rejected:transition_not_allowed"}

    async def test_a_record_with_any_other_outcome_is_not_taken_over(self, seeded):
        """An applied, rejected or unknown id is not taken over (a redrive never applies a command twice)."""
        await self.recorded(seeded, "a", "applied")
        await self.recorded(seeded, "b", "rejected:transition_not_allowed")
        async with seeded.unit_of_work() as uow:
            assert await uow.take_over_invalid([key("a", 7), key("b", 8), key("new", 9)]) == set()
            await uow.commit()
        assert await seeded.processed_outcomes() == {"a": "applied", "b": "rejected:transition_not_allowed"}

    async def test_a_take_over_without_commit_leaves_the_invalid_record(self, seeded):
        """Leaving the unit of work without a commit keeps the record as it was: invalid, to be taken over later."""
        await self.recorded(seeded, "a", "invalid:too_large")
        async with seeded.unit_of_work() as uow:
            assert await uow.take_over_invalid([key("a", 7)]) == {"a"}
        assert await seeded.processed_outcomes() == {"a": "invalid:too_large"}

    # ------------------------------------------------------------------ orders and rules

    async def test_lock_orders_returns_the_facts_of_existing_orders_only(self, seeded):
        """Every fact of an existing order (lists sorted); a missing id is simply absent."""
        async with seeded.unit_of_work() as uow:
            found = await uow.lock_orders(iter([PAID, MISSING, FREE, FREE]))
        assert found == {
            FREE: OrderFacts(FREE, "SO", CONFIRMED.id, 0, "c-1", Decimal("0"), (), ("R-1", "R-2"), ("C-1",)),
            PAID: OrderFacts(PAID, "SO", CONFIRMED.id, 0, None, Decimal("12.50"), ("G-1",), (), ()),
        }

    async def test_lock_orders_of_no_ids_returns_nothing(self, seeded):
        """No ids, no facts."""
        async with seeded.unit_of_work() as uow:
            assert await uow.lock_orders([]) == {}

    async def test_rules_raise_rules_not_loaded_before_any_are_loaded(self, backend):
        """Without a rule set the unit of work raises RulesNotLoaded (the worker waits instead of rejecting)."""
        async with backend.unit_of_work() as uow:
            with pytest.raises(RulesNotLoaded):
                await uow.rules()

    async def test_rules_are_the_loaded_rule_set(self, seeded):
        """After a load, rules() is that rule set: its statuses, transitions and override roles (in any order)."""
        async with seeded.unit_of_work() as uow:
            rules: RuleSet = await uow.rules()
        assert set(rules.statuses) == set(RULES.statuses)
        assert set(rules.transitions) == set(RULES.transitions)
        assert rules.override_roles == RULES.override_roles

    # ------------------------------------------------------------------ commit (DESIGN §7.1)

    async def test_commit_makes_change_history_outbox_and_outcome_visible(self, seeded):
        """One commit: the new status and version, the history note, the outbox rows and the outcome, together."""
        command = applied("a", (FREE, CONFIRMED, ON_HOLD, 1))
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([key("a")]) == {"a"}
            await uow.lock_orders([FREE])
            command.add_to(uow)
            await uow.commit()
        assert await seeded.order_versions() == {FREE: (ON_HOLD.id, 1), PAID: (CONFIRMED.id, 0)}
        assert await seeded.history() == [(FREE, 1, "a", command.changes[0].event_id)]
        assert await seeded.outbox_messages() == command.messages
        assert await seeded.processed_outcomes() == {"a": "applied"}
        async with seeded.unit_of_work() as uow:  # the next unit of work decides on the new facts
            facts = (await uow.lock_orders([FREE]))[FREE]
        assert (facts.status_id, facts.version, facts.reservations) == (ON_HOLD.id, 1, ("R-1", "R-2"))

    async def test_a_cancel_removes_the_listed_reservations_and_coupons(self, seeded):
        """R7: the reservations and coupons a change lists are gone after commit; the others stay."""
        command = applied("a", (FREE, CONFIRMED, CANCELLED, 1), removed_reservations=["R-1"], removed_coupons=["C-1"])
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            command.add_to(uow)
            await uow.commit()
        async with seeded.unit_of_work() as uow:
            facts = (await uow.lock_orders([FREE]))[FREE]
        assert (facts.status_id, facts.version, facts.reservations, facts.coupons) == (CANCELLED.id, 1, ("R-2",), ())

    async def test_changes_of_one_order_in_one_commit_apply_in_turn(self, seeded):
        """Two commands changing one order in one unit of work: versions 1 and 2, two history notes."""
        first = applied("a", (FREE, CONFIRMED, ON_HOLD, 1))
        second = applied("b", (FREE, ON_HOLD, COURIER_CLAIM, 2), (PAID, CONFIRMED, ON_HOLD, 1))
        async with seeded.unit_of_work() as uow:
            assert await uow.claim([key("a", 0), key("b", 1)]) == {"a", "b"}
            first.add_to(uow)
            second.add_to(uow)
            await uow.commit()
        assert await seeded.order_versions() == {FREE: (COURIER_CLAIM.id, 2), PAID: (ON_HOLD.id, 1)}
        assert [h[:3] for h in await seeded.history()] == [(FREE, 1, "a"), (FREE, 2, "b"), (PAID, 1, "b")]
        assert await seeded.outbox_messages() == first.messages + second.messages
        assert await seeded.processed_outcomes() == {"a": "applied", "b": "applied"}

    async def test_a_rejection_writes_only_its_outcome_and_its_event(self, seeded):
        """R9: a rejected command leaves the orders and the history as they were."""
        command = rejected("a", FREE)
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            await uow.lock_orders([FREE])
            command.add_to(uow)
            await uow.commit()
        assert await seeded.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
        assert await seeded.history() == []
        assert await seeded.outbox_messages() == command.messages
        assert await seeded.processed_outcomes() == {"a": "rejected:transition_not_allowed"}

    async def test_outbox_rows_keep_the_order_they_were_added_in(self, seeded):
        """Within a commit and across commits, outbox rows read back in the order they were added."""
        batches = [[rejected("b", PAID), applied("a", (FREE, CONFIRMED, ON_HOLD, 1))],
                   [applied("c", (FREE, ON_HOLD, CONFIRMED, 2)), rejected("d", FREE, "no_change")]]
        for offset, batch in enumerate(batches):
            async with seeded.unit_of_work() as uow:
                await uow.claim([key(p.command_id, offset) for p in batch])
                for prepared in batch:
                    prepared.add_to(uow)
                await uow.commit()
        assert await seeded.outbox_messages() == [m for batch in batches for p in batch for m in p.messages]

    @pytest.mark.parametrize(
        "step",
        [(FREE, CONFIRMED, ON_HOLD, 2), (FREE, CONFIRMED, ON_HOLD, 0), (MISSING, CONFIRMED, ON_HOLD, 1)],
        ids=["skips-a-version", "repeats-a-version", "missing-order"],
    )
    async def test_a_change_that_does_not_follow_the_order_is_refused_and_nothing_commits(self, seeded, step):
        """A change not following its order's version (or of no order) fails the commit and nothing commits."""
        good, bad = applied("good", (PAID, CONFIRMED, ON_HOLD, 1)), applied("bad", step)
        with pytest.raises(RuntimeError):
            async with seeded.unit_of_work() as uow:
                await uow.claim([key("good", 0), key("bad", 1)])
                good.add_to(uow)
                bad.add_to(uow)
                await uow.commit()
        assert await seeded.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
        assert await seeded.processed_outcomes() == {}
        assert (await seeded.outbox_messages(), await seeded.history()) == ([], [])

    # ------------------------------------------------------------------ nothing without a commit

    async def test_leaving_with_an_exception_commits_nothing(self, seeded):
        """An error inside the `async with` before commit drops the claims, changes, outbox rows and outcomes."""
        with pytest.raises(Boom):
            async with seeded.unit_of_work() as uow:
                assert await uow.claim([key("a")]) == {"a"}
                await uow.lock_orders([FREE])
                applied("a", (FREE, CONFIRMED, ON_HOLD, 1)).add_to(uow)
                raise Boom()
        assert await seeded.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
        assert await seeded.processed_outcomes() == {}
        assert (await seeded.outbox_messages(), await seeded.history()) == ([], [])
        async with seeded.unit_of_work() as uow:  # the id was never taken: a redelivery is new
            assert await uow.claim([key("a")]) == {"a"}

    async def test_leaving_without_commit_commits_nothing(self, seeded):
        """A unit of work that ends without calling commit keeps nothing either."""
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            applied("a", (FREE, CONFIRMED, ON_HOLD, 1)).add_to(uow)
        assert await seeded.order_versions() == {FREE: (CONFIRMED.id, 0), PAID: (CONFIRMED.id, 0)}
        assert await seeded.processed_outcomes() == {}
        assert (await seeded.outbox_messages(), await seeded.history()) == ([], [])

    # ------------------------------------------------------------------ the consumer's position (issue 24)

    async def test_positions_are_written_with_the_commit_and_only_with_it(self, seeded):
        """`advance` moves the consumer's positions in the same commit as the work; without a commit, nowhere."""
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            uow.advance({("commands", 0): 5})
        assert await seeded.positions() == {}
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a")])
            uow.advance({("commands", 0): 5, ("commands", 2): 1})
            await uow.commit()
        assert await seeded.positions() == {("commands", 0): 5, ("commands", 2): 1}
        assert await seeded.processed_outcomes() == {"a": "pending"}

    async def test_a_position_never_moves_back(self, seeded):
        """A unit of work that covers older messages (a batch redone after a rebalance) leaves a later position."""
        for offset in (9, 4):
            async with seeded.unit_of_work() as uow:
                uow.advance({("commands", 1): offset})
                await uow.commit()
        assert await seeded.positions() == {("commands", 1): 9}

    async def test_a_unit_that_starts_past_the_stored_position_commits_nothing_and_names_the_gap(self, seeded):
        """The stored position is 5 but the unit starts at 8 (the database lost commits): PositionGap with the
        stored position, and neither its claims nor its position are committed; from 5 on it commits."""
        async with seeded.unit_of_work() as uow:
            uow.advance({("commands", 0): 5})
            await uow.commit()
        with pytest.raises(PositionGap) as gap:
            async with seeded.unit_of_work() as uow:
                await uow.claim([key("a", 8)])
                uow.advance({("commands", 0): 9}, {("commands", 0): 8})
                await uow.commit()
        assert gap.value.positions == {("commands", 0): 5}
        assert await seeded.positions() == {("commands", 0): 5} and await seeded.processed_outcomes() == {}
        async with seeded.unit_of_work() as uow:
            await uow.claim([key("a", 5)])
            uow.advance({("commands", 0): 9}, {("commands", 0): 5})
            await uow.commit()
        assert await seeded.positions() == {("commands", 0): 9} and await seeded.processed_outcomes() == {"a": "pending"}
