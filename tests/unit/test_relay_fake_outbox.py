"""The relay's outbox contract against the in-memory fake the relay's unit tests use (no services)."""

from __future__ import annotations

import itertools

import pytest

from service.contract.events import WireMessage
from tests.helpers.fake_outbox import FakeOutbox
from tests.helpers.outbox_contract import OutboxStoreContract, Row


class FakeBackend:
    """The fake outbox, its clock a tick further on every reading, seen through its own rows."""

    def __init__(self) -> None:
        ticks = itertools.count()
        self.store = FakeOutbox(clock=lambda: float(next(ticks)))

    async def write(self, messages: list[WireMessage]) -> None:
        self.store.insert(messages)

    async def rows(self) -> list[Row]:
        return [Row(i, r.message.shard, r.message.topic, r.message.key, r.message.value, self.store.state_of(i),
                    r.held_behind) for i, r in sorted(self.store.rows.items())]

    async def age(self, value: str, seconds: float) -> None:
        [row] = [r for r in self.store.rows.values() if r.message.value == value.encode()]
        row.created_at = self.store.clock() - seconds


class TestFakeOutbox(OutboxStoreContract):
    """FakeOutbox keeps the relay's outbox contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
