"""One contract suite of the relay's outbox port (`service.worker.relay_store.OutboxStore`), run against
every implementation: `tests/unit/test_relay_fake_outbox.py` against the in-memory fake,
`tests/integration/test_postgres_outbox_store.py` against `PostgresOutboxStore` on a real Postgres. A
subclass provides a `backend` fixture: the store, the writer that commits rows to it (the unit of
work's), and a reader of the committed rows that does not go through the port.

What the relay relies on (DESIGN §7.4): a round has each locked shard's rows after its cursor, in id
order, at most its share of the limits; a shard is in one round at a time; what a round settles is kept
only when the round ends without an error; rows of a line with a parked row come held behind it (the
rule `service.domain.outbox.held_back`, which the Postgres store says in SQL: checked here)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import pytest

from service.contract.events import WireMessage
from service.domain.outbox import OutboxStats, Parking, StoredMessage, held_back
from service.worker.relay_store import OutboxStore
from tests.helpers.contract_suite import ContractSuite

BIG = 8 * 1_048_576
HOUR = 3600.0


@dataclass(frozen=True)
class Row:
    """A row as the reader sees it: `state` is waiting, published (marked, or passed by its cursor) or parked."""

    id: int
    shard: int
    topic: str
    key: bytes | None
    value: bytes
    state: str
    held_behind: int | None = None

    def stored(self) -> StoredMessage:
        return StoredMessage(self.id, self.topic, self.key, self.value, [], shard=self.shard)


class Backend(Protocol):
    store: OutboxStore

    async def write(self, messages: list[WireMessage]) -> None:
        """Commit these rows, as the unit of work's writer does."""

    async def rows(self) -> list[Row]:
        """Every row, in id order, read past the port."""

    async def age(self, value: str, seconds: float) -> None:
        """Make the row written with this value as old as that, by the store's own clock (its created time)."""


def msg(value: str, shard: int = 0, key: bytes | None = b"1", topic: str = "events") -> WireMessage:
    return replace(WireMessage(topic, key, value.encode()), shard=shard)


async def ids(backend) -> dict[str, int]:
    """value -> row id."""
    return {r.value.decode(): r.id for r in await backend.rows()}


class OutboxStoreContract(ContractSuite):
    # --- a round of rows
    async def test_a_round_has_each_shards_rows_after_its_cursor_in_shard_then_id_order(self, backend):
        """Rows of several shards written interleaved come shard by shard, each shard's in id order."""
        await backend.write([msg("a", 1), msg("b", 0), msg("c", 1), msg("d", 0, key=None)])
        async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
            assert [(r.shard, r.value) for r in batch.rows] == [(0, b"b"), (0, b"d"), (1, b"a"), (1, b"c")]
            assert (batch.held, batch.more) == ({}, set())

    async def test_only_the_shards_asked_for_are_in_the_round(self, backend):
        """A shard not asked for is not read."""
        await backend.write([msg("a", 1), msg("b", 0)])
        async with backend.store.lock_round(1000, [1], BIG) as batch:
            assert [r.value for r in batch.rows] == [b"a"]

    async def test_a_shard_another_round_holds_is_left_out_and_none_when_every_one_is(self, backend):
        """One round per shard at a time: a second round gets the others, or None."""
        await backend.write([msg("a", 0), msg("b", 1)])
        async with backend.store.lock_round(1000, [0], BIG) as first:
            assert [r.value for r in first.rows] == [b"a"]
            async with backend.store.lock_round(1000, [0, 1], BIG) as second:
                assert [r.value for r in second.rows] == [b"b"]
            async with backend.store.lock_round(1000, [0], BIG) as third:
                assert third is None
        async with backend.store.lock_round(1000, [0], BIG) as again:  # released with its round
            assert [r.value for r in again.rows] == [b"a"]

    async def test_an_empty_outbox_gives_a_round_without_rows(self, backend):
        """Nothing written: the round is locked, and empty."""
        async with backend.store.lock_round(1000, [0, 3], BIG) as batch:
            assert batch is not None and batch.rows == [] and batch.more == set()

    async def test_the_row_limit_is_shared_by_the_shards_and_a_cut_shard_is_more(self, backend):
        """Four rows allowed over two shards: two of each; the shard with rows left is in `more`."""
        await backend.write([msg(f"{s}{n}", s) for s in (0, 1) for n in range(3 if s == 0 else 2)])
        async with backend.store.lock_round(4, [0, 1], BIG) as batch:
            assert [r.value for r in batch.rows] == [b"00", b"01", b"10", b"11"]
            assert 0 in batch.more

    async def test_the_byte_limit_cuts_a_shard_after_at_least_one_row(self, backend):
        """Rows are taken while the bytes before them are under the share: one row even if it is larger."""
        await backend.write([msg("x" * 60), msg("y" * 60), msg("z" * 10)])
        async with backend.store.lock_round(1000, [0], 100) as batch:
            assert [len(r.value) for r in batch.rows] == [60, 60]
            assert batch.more == {0}
        async with backend.store.lock_round(1000, [0], 10) as batch:
            assert [len(r.value) for r in batch.rows] == [60]

    # --- settling a round
    async def test_settling_moves_the_cursors_and_marks_published_and_parked_rows(self, backend):
        """The cursor passes settled rows; a row published beyond it and parked rows are marked; the next
        round has only what is still to publish."""
        await backend.write([msg("a"), msg("b", key=b"2"), msg("c", key=b"3"), msg("d", key=b"4"), msg("e", 1)])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
            await batch.settle({0: row["b"], 1: row["e"]}, [row["d"]], [Parking(row["b"], "refused")])
        states = {r.value.decode(): r.state for r in await backend.rows()}
        assert states == {"a": "published", "b": "parked", "c": "waiting", "d": "published", "e": "published"}
        async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
            assert [r.value for r in batch.rows] == [b"c"]

    async def test_a_round_that_ends_with_an_error_settles_nothing(self, backend):
        """Settled, then the block raises: the rows are read again by the next round."""
        await backend.write([msg("a"), msg("b")])
        row = await ids(backend)
        with pytest.raises(RuntimeError):
            async with backend.store.lock_round(1000, [0], BIG) as batch:
                await batch.settle({0: row["b"]}, [], [Parking(row["a"], "refused")])
                raise RuntimeError("the round failed before it committed")
        assert {r.state for r in await backend.rows()} == {"waiting"}
        async with backend.store.lock_round(1000, [0], BIG) as batch:
            assert [r.value for r in batch.rows] == [b"a", b"b"]

    async def test_the_later_rows_of_a_parked_rows_line_come_held_behind_it(self, backend):
        """A parked row holds back its shard's later rows of its topic and key, not other keys, topics, shards
        or rows without a key; the store's answer is the domain rule's (`held_back`)."""
        await backend.write([msg("head"), msg("other", key=b"2"), msg("elsewhere", 1)])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
            await batch.settle({0: row["other"], 1: row["elsewhere"]}, [], [Parking(row["head"], "refused")])
        await backend.write([msg("same"), msg("key 2", key=b"2"), msg("other topic", topic="dlq"),
                             msg("no key", key=None), msg("other shard", 1), msg("same again")])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0, 1], BIG) as batch:
            assert batch.held == {row["same"]: row["head"], row["same again"]: row["head"]}
            parked = [r.stored() for r in await backend.rows() if r.state == "parked" and r.held_behind is None]
            assert batch.held == held_back(batch.rows, parked)
            await batch.settle({0: row["same again"], 1: row["other shard"]}, [],
                               [Parking(row["same"], "held", row["head"]),
                                Parking(row["same again"], "held", row["head"])])
        held = {r.value.decode(): r.held_behind for r in await backend.rows() if r.state == "parked"}
        assert held == {"head": None, "same": row["head"], "same again": row["head"]}

    async def test_the_first_parked_row_of_a_line_is_the_one_held_behind(self, backend):
        """Two parked rows of one line: later rows wait behind the first."""
        await backend.write([msg("first"), msg("second")])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0], BIG) as batch:
            await batch.settle({0: row["second"]}, [], [Parking(row["first"], "refused"),
                                                        Parking(row["second"], "refused")])
        await backend.write([msg("later")])
        async with backend.store.lock_round(1000, [0], BIG) as batch:
            assert batch.held == {(await ids(backend))["later"]: row["first"]}

    # --- what the relay watches
    async def test_stats_count_the_rows_to_publish_and_the_parked_rows(self, backend):
        """Backlog: rows after the cursors not published or parked; parked: rows refused themselves; the age is the
        oldest row still to publish's (older parked and published rows do not count)."""
        assert await backend.store.stats() == OutboxStats(0, None, 0)
        await backend.write([msg("a"), msg("b"), msg("c", key=b"2"), msg("d", 1)])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0], BIG) as batch:
            await batch.settle({0: row["b"]}, [], [Parking(row["a"], "refused"), Parking(row["b"], "held", row["a"])])
        await backend.age("a", 3 * HOUR)  # parked
        await backend.age("b", 2 * HOUR)  # published (the cursor passed it)
        await backend.age("c", HOUR)  # the oldest row still to publish
        await backend.age("d", HOUR / 2)
        stats = await backend.store.stats()
        assert (stats.backlog, stats.parked) == (2, 1)
        assert HOUR <= stats.oldest_age_s < HOUR + 60

    async def test_shards_waiting_are_those_whose_first_row_to_publish_is_older_than_asked(self, backend):
        """A shard with a row waiting counts once that row is older than asked; a settled shard does not."""
        await backend.write([msg("a", 2), msg("b", 0)])
        row = await ids(backend)
        async with backend.store.lock_round(1000, [0], BIG) as batch:
            await batch.settle({0: row["b"]}, [], [])
        assert await backend.store.shards_waiting(3600) == []
        assert await backend.store.shards_waiting(0) == [2]
