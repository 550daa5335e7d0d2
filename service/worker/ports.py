"""The worker's ports, each with a fake in the tests and one contract suite the fake and the real adapter both
pass (eventsourcing's per-backend test case):

* `UnitOfWork`, what the batch writes through: Postgres in production (`adapters/postgres/unit_of_work.py`),
  `tests/helpers/fakes.FakeUnitOfWork` in the tests; contract `tests/helpers/unit_of_work_contract.py`.
* `Producer`, what the relay publishes the outbox through (and the dead-letter redrive resends through):
  aiokafka in production (`adapters/kafka/clients.make_producer`), `tests/helpers/fakes.FakeProducer` in the
  tests; contract `tests/helpers/producer_contract.py`."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, Sequence
from typing import Protocol

from service.contract.events import WireMessage
from service.domain.events import StatusChanged
from service.domain.model import OrderFacts, RuleSet

# what a claim records: (the dedupe key — a command id, `@topic:partition:offset` or a redrive key —, the kind
# of record — the command type, `invalid`, `redrive`, `poison`, … —, the message's position)
ClaimKey = tuple[str, str, str]


class UnitOfWork(Protocol):
    """One transaction: nothing is visible before `commit`, and leaving the `async with` without it keeps nothing."""

    async def __aenter__(self) -> "UnitOfWork": ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def rules(self) -> RuleSet:
        """The rule set in force; `RulesNotLoaded` when there is none yet."""

    async def claim(self, keys: Iterable[ClaimKey]) -> set[str]:
        """Claim the keys; returns those recorded by nobody before (the rest are duplicates). The records are
        written at commit with the outcome `add` gives them; a key a concurrent unit of work recorded first
        makes `commit` raise `ClaimLost`."""

    async def take_over_invalid(self, keys: Iterable[ClaimKey]) -> set[str]:
        """Reclaim the keys recorded as invalid (a redrive's second chance); returns those taken over."""

    async def lock_orders(self, order_ids: Iterable[int]) -> dict[int, OrderFacts]:
        """The facts of the orders that exist, locked until the end of the unit of work."""

    def add(self, command_id: str, outcome: str, changes: Sequence[StatusChanged],
            messages: Sequence[WireMessage]) -> None:
        """The outcome of a claimed key, the changes it makes and the outbox messages it sends."""

    def advance(self, next_offsets: Mapping[tuple[str, int], int],
                first_offsets: Mapping[tuple[str, int], int] | None = None) -> None:
        """Move the consumer's position in the database to these next offsets ((topic, partition) -> offset) with
        this commit, never back: the database's record of the messages its work covers (issue 24). With
        `first_offsets` (the unit's first message per partition), `commit` raises PositionGap and commits nothing
        when a stored position is behind one of them: the database lost commits the consumer had made."""

    async def commit(self) -> None:
        """Make all of it durable and visible at once."""


class Acknowledgement(Protocol):
    """Where the broker put an acknowledged message (aiokafka's `RecordMetadata` has these)."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


class Producer(Protocol):
    """The slice of a Kafka producer the relay and the redrive use: `send` hands the message over and returns an
    awaitable that resolves with the broker's acknowledgement (or raises its refusal); messages sent to one
    partition are acknowledged in the order they were sent."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: Sequence[tuple[str, bytes]] | None = None) -> Awaitable[Acknowledgement]:
        """Queue the message; await the result for the acknowledgement."""

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                            headers: Sequence[tuple[str, bytes]] | None = None) -> Acknowledgement:
        """Send and wait for the acknowledgement."""
