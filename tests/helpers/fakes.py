"""Fakes of the ports, so the worker's service layer runs without Postgres or a broker (cosmicpython style).

* `FakeDatabase` holds what the Postgres tables would hold, committed; `FakeUnitOfWork` is the
  in-memory `service.worker.ports.UnitOfWork` over it, transaction semantics included: nothing is
  visible until `commit`, and leaving the `async with` without one (or with an exception) drops it
  all. `tests/helpers/unit_of_work_contract.py` runs one suite against this fake and against
  `PostgresUnitOfWork`, so the fake cannot drift from the real thing unnoticed.
* `FakeConsumer` is the in-memory `service.runtime.consumer.Consumer` the consume loop and the commit policy
  run over in `tests/unit/test_consume_loop.py`.
* `FakeProducer` stands in for the `AIOKafkaProducer` that `service.adapters.kafka.publishing.publish_all`
  (the outbox relay's sender) uses: it records what was acknowledged and can be told to fail.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from aiokafka.structs import RecordMetadata, TopicPartition

from service.adapters.errors import CommitRefused, PositionGap, RulesNotLoaded
from service.contract.events import WireMessage
from service.contract.orders_file import parse_orders
from service.contract.rules_file import load_rules_file
from service.domain.commands import SourceMessage
from service.domain.events import StatusChanged
from service.domain.model import OrderFacts, RuleSet
from service.runtime.consumer import Partition
from tests.helpers.database import SAMPLE_RULES, order_lines


class Refused(Exception):
    """What the fake database raises for data it was told to refuse (a stand-in for a constraint or a
    value Postgres cannot store): the message's fault, not an outage."""


@dataclass
class ProcessedRecord:
    """A row of `processed_commands`."""

    command_type: str
    source: str
    outcome: str = "pending"
    # when it was claimed, as the column's default is
    processed_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


@dataclass
class FakeDatabase:
    """The committed state: the rule set, the orders' facts, processed records, outbox rows, history notes."""

    rules: RuleSet | None = None
    orders: dict[int, OrderFacts] = field(default_factory=dict)
    processed: dict[str, ProcessedRecord] = field(default_factory=dict)
    outbox: list[WireMessage] = field(default_factory=list)
    history: list[StatusChanged] = field(default_factory=list)
    refusals: dict[int, BaseException] = field(default_factory=dict)
    positions: dict[tuple[str, int], int] = field(default_factory=dict)  # consumer_positions of the worker's group
    # the consumer group whose positions units of work keep, None: none kept (PostgresUnitOfWork without a group)
    group: str | None = None
    commits: int = 0

    @classmethod
    def seeded(cls, orders: list[dict] | None = None) -> "FakeDatabase":
        """The sample rules and the sample orders (or the given ones, in the orders-file format)."""
        db = cls()
        db.seed(orders)
        return db

    def seed(self, orders: list[dict] | None = None) -> None:
        """Load the sample rules and import orders like `orderstatus orders import` (DESIGN §5.2)."""
        self.rules = load_rules_file(SAMPLE_RULES)
        for record, status_id in parse_orders(order_lines(orders), self.rules):
            current = self.orders.get(record.order_id)
            if status_id is None:
                status_id = current.status_id if current else self.rules.initial_status(record.order_type).id
            self.orders[record.order_id] = OrderFacts(
                order_id=record.order_id, order_type=record.order_type, status_id=status_id,
                version=current.version if current else 0, client_id=record.client_id,
                payments_total=record.payments_total, goods_out_notes=tuple(sorted(set(record.goods_out_notes))),
                reservations=tuple(sorted(set(record.reservations))), coupons=tuple(sorted(set(record.coupons))),
            )

    def refuse_changes_to(self, order_id: int, error: BaseException | None = None) -> None:
        """From now on a commit that changes this order raises `error` (Refused by default) and commits nothing."""
        self.refusals[order_id] = error if error is not None else Refused(f"simulated refusal of order {order_id}")


class FakeUnitOfWork:
    """`service.worker.ports.UnitOfWork` in memory: claim, lock and read, add, commit all or nothing."""

    def __init__(self, db: FakeDatabase) -> None:
        self.db = db
        self._claimed: dict[str, ProcessedRecord] = {}
        self._outcomes: list[tuple[str, str]] = []
        self._changes: list[StatusChanged] = []
        self._messages: list[WireMessage] = []
        self._positions: dict[tuple[str, int], int] = {}
        self._firsts: dict[tuple[str, int], int] = {}
        self._open = False

    async def __aenter__(self) -> "FakeUnitOfWork":
        self._open = True
        return self

    async def __aexit__(self, *exc) -> None:
        self._open = False  # whatever was not committed is dropped, as a rollback would

    def _check_open(self) -> None:
        assert self._open, "the unit of work is used outside its `async with`"

    async def rules(self) -> RuleSet:
        self._check_open()
        if self.db.rules is None:
            raise RulesNotLoaded("no rules loaded; run `orderstatus rules load FILE`")
        return self.db.rules

    async def claim(self, keys: Iterable[tuple[str, str, str]]) -> set[str]:
        """Claim (command_id, command_type, source) records; returns the ids that are new."""
        self._check_open()
        new: set[str] = set()
        for command_id, command_type, source in keys:
            if command_id in self.db.processed or command_id in self._claimed:
                continue
            self._claimed[command_id] = ProcessedRecord(command_type, source)
            new.add(command_id)
        return new

    async def take_over_invalid(self, keys: Iterable[tuple[str, str, str]]) -> set[str]:
        """Reclaim records whose outcome is `invalid:*` as pending (a redrive's second chance); returns their ids.
        Like every claim, visible only on commit."""
        self._check_open()
        taken: set[str] = set()
        for command_id, command_type, source in keys:
            record = self.db.processed.get(command_id)
            if record is None or not record.outcome.startswith("invalid:") or command_id in self._claimed:
                continue
            self._claimed[command_id] = ProcessedRecord(command_type, source)
            taken.add(command_id)
        return taken

    async def lock_orders(self, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
        self._check_open()
        return {oid: self.db.orders[oid] for oid in sorted(set(order_ids)) if oid in self.db.orders}

    def add(self, command_id: str, outcome: str, changes: Sequence[StatusChanged],
            messages: Sequence[WireMessage]) -> None:
        self._check_open()
        self._outcomes.append((command_id, outcome))
        self._changes.extend(changes)
        self._messages.extend(messages)

    def advance(self, next_offsets, first_offsets=None) -> None:
        self._check_open()
        for where, offset in next_offsets.items():
            self._positions[where] = max(offset, self._positions.get(where, offset))
        for where, offset in (first_offsets or {}).items():
            self._firsts[where] = min(offset, self._firsts.get(where, offset))

    async def commit(self) -> None:
        """All or nothing: refused orders and changes that do not follow an order's version raise first."""
        self._check_open()
        if self.db.group is None:
            self._positions, self._firsts = {}, {}
        gaps = {where: self.db.positions[where] for where, first in self._firsts.items()
                if where in self.db.positions and self.db.positions[where] < first}
        if gaps:
            raise PositionGap(gaps)
        orders = dict(self.db.orders)
        for change in self._changes:
            if change.order_id in self.db.refusals:
                raise self.db.refusals[change.order_id]
            current = orders.get(change.order_id)
            if current is None or change.version != current.version + 1:
                # what PostgresUnitOfWork raises when the update finds another version: a logic error
                raise RuntimeError(f"order {change.order_id} changed under its lock")
            orders[change.order_id] = dataclasses.replace(
                current, status_id=change.to_status.id, version=change.version,
                reservations=tuple(r for r in current.reservations if r not in change.removed_reservations),
                coupons=tuple(c for c in current.coupons if c not in change.removed_coupons),
            )
        self.db.orders = orders
        self.db.history.extend(self._changes)
        self.db.outbox.extend(self._messages)
        self.db.processed.update(self._claimed)
        for command_id, outcome in self._outcomes:
            if command_id in self.db.processed:
                self.db.processed[command_id].outcome = outcome
        for where, offset in self._positions.items():  # forward only, as the Postgres adapter
            self.db.positions[where] = max(offset, self.db.positions.get(where, offset))
        self.db.commits += 1
        self._claimed, self._outcomes, self._changes, self._messages, self._positions, self._firsts = (
            {}, [], [], [], {}, {})
        self._open = False  # one commit per unit of work, like the Postgres transaction


@dataclass(frozen=True)
class Sent:
    """One message the fake broker acknowledged."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


class FakeProducer:
    """The slice of `AIOKafkaProducer` the publishing code uses: `send` returns a future that resolves
    once the "broker" acknowledged the message. `fail` makes acknowledgements fail; what was
    acknowledged is in `sent`, in order (one partition per topic, offsets counting from 0)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._error: BaseException | None = None
        self._ok_before_failing = 0
        self.started = False

    def fail(self, error: BaseException, *, after: int = 0) -> None:
        """Acknowledge `after` more messages, then fail every later one with `error` until `recover`."""
        self._error, self._ok_before_failing = error, after

    def recover(self) -> None:
        self._error = None

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.started = False

    async def flush(self) -> None:
        return None

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: Sequence[tuple[str, bytes]] | None = None, **_) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self._error is not None and self._ok_before_failing <= 0:
            future.set_exception(self._error)
            return future
        self._ok_before_failing -= 1
        offset = sum(1 for s in self.sent if s.topic == topic)
        self.sent.append(Sent(topic, key, value, tuple(headers or ())))
        future.set_result(RecordMetadata(topic, 0, TopicPartition(topic, 0), offset, -1, -1, None))
        return future

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                            headers: Sequence[tuple[str, bytes]] | None = None, **options):
        return await (await self.send(topic, value=value, key=key, headers=headers, **options))


class FakeConsumer:
    """`service.runtime.consumer.Consumer` in memory, one member of its group: each partition a log of
    `SourceMessage`s, a position and a committed offset per partition. `start()` assigns every partition of the
    subscribed topics (awaiting `on_assigned`); `rebalance_at_poll[n] = (revoked, assigned)` makes the n-th poll
    rebalance first, awaiting the callbacks inside the poll as aiokafka does; `drained` is set by a poll that
    finds nothing new; `refuse_commits` makes a commit raise `CommitRefused`. What was committed, in order, is in
    `commits` (offsets, and whether a rebalance callback sent it)."""

    def __init__(self) -> None:
        self.logs: dict[Partition, list[SourceMessage]] = {}
        self.positions: dict[Partition, int] = {}
        self.committed: dict[Partition, int] = {}
        self.commits: list[tuple[dict[Partition, int], bool]] = []
        self.rebalance_at_poll: dict[int, tuple[set, set]] = {}
        self.refuse_commits = False
        self.polls = 0
        self.drained = asyncio.Event()
        self.stopped = False
        self._assigned: set[Partition] = set()
        self._paused: set[Partition] = set()
        self._topics: list[str] = []
        self._callbacks = None
        self._in_rebalance = False

    def append(self, topic: str, partition: int, value: bytes, key: bytes | None = None) -> SourceMessage:
        log = self.logs.setdefault(Partition(topic, partition), [])
        message = SourceMessage(topic, partition, len(log), key, value, ())
        log.append(message)
        return message

    def subscribe(self, topics, on_assigned, on_revoked) -> None:
        self._topics = list(topics)
        self._callbacks = (on_assigned, on_revoked)

    async def start(self) -> None:
        await self._rebalance(set(), {tp for tp in self.logs if tp[0] in self._topics})

    async def stop(self) -> None:
        self.stopped = True

    async def _rebalance(self, revoked: set, assigned: set) -> None:
        on_assigned, on_revoked = self._callbacks
        revoked, assigned = {Partition(*p) for p in revoked}, {Partition(*p) for p in assigned}
        self._in_rebalance = True
        try:
            if revoked:
                await on_revoked(set(revoked))
                self._assigned -= revoked
                self._paused -= revoked
            if assigned:
                self._assigned |= assigned
                for tp in assigned:
                    self.positions[tp] = self.committed.get(tp, 0)
                await on_assigned(set(assigned))
        finally:
            self._in_rebalance = False

    async def poll(self, timeout_s: float, max_records: int) -> list[SourceMessage]:
        self.polls += 1
        if self.polls in self.rebalance_at_poll:
            await self._rebalance(*self.rebalance_at_poll[self.polls])
        batch: list[SourceMessage] = []
        for tp in sorted(self._assigned - self._paused):
            log, start = self.logs.get(tp, []), self.positions[tp]
            taken = log[start:start + max_records - len(batch)]
            batch.extend(taken)
            self.positions[tp] = start + len(taken)
        if not batch:
            self.drained.set()
            await asyncio.sleep(0)  # a real poll waits up to timeout_s; here it only lets others run
        return batch

    def assignment(self) -> set:
        return set(self._assigned)

    def partitions_for(self, topic: str) -> set[int] | None:
        return {p for t, p in self.logs if t == topic} or None

    def highwater(self, partition) -> int | None:
        assert Partition(*partition) in self._assigned, "Partition is not assigned"
        return len(self.logs.get(Partition(*partition), []))

    async def position(self, partition) -> int:
        assert Partition(*partition) in self._assigned, "Partition is not assigned"
        return self.positions[Partition(*partition)]

    async def committed_offset(self, partition) -> int | None:
        return self.committed.get(Partition(*partition))

    def seek(self, offsets) -> None:
        for tp, offset in offsets.items():
            assert Partition(*tp) in self._assigned, "Partition is not assigned"
            self.positions[Partition(*tp)] = offset

    async def commit(self, offsets) -> None:
        if self.refuse_commits:
            raise CommitRefused("the group rebalanced")
        given = {Partition(*tp): offset for tp, offset in offsets.items()}
        self.committed.update(given)
        self.commits.append((given, self._in_rebalance))

    def pause(self, partitions) -> None:
        self._paused |= {Partition(*p) for p in partitions}

    def resume(self, partitions) -> None:
        self._paused -= {Partition(*p) for p in partitions}

    def paused(self) -> set:
        return set(self._paused)
