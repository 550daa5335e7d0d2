"""The unit-of-work contract against the in-memory fake the service-layer tests use (no services)."""

from __future__ import annotations

import uuid

import pytest

from service.contract.events import WireMessage
from tests.helpers.fakes import FakeDatabase, FakeUnitOfWork
from tests.helpers.unit_of_work_contract import UnitOfWorkContract


class FakeBackend:
    """The fake database seen through the contract's reader."""

    def __init__(self) -> None:
        self.db = FakeDatabase(group="contract-group")

    def unit_of_work(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db)

    async def seed(self, orders: list[dict]) -> None:
        self.db.seed(orders)

    async def processed_outcomes(self) -> dict[str, str]:
        return {command_id: record.outcome for command_id, record in self.db.processed.items()}

    async def outbox_messages(self) -> list[WireMessage]:
        return list(self.db.outbox)

    async def order_versions(self) -> dict[int, tuple[int, int]]:
        return {oid: (facts.status_id, facts.version) for oid, facts in self.db.orders.items()}

    async def history(self) -> list[tuple[int, int, str, uuid.UUID]]:
        return sorted((c.order_id, c.version, c.command_id, c.event_id) for c in self.db.history)

    async def positions(self) -> dict[tuple[str, int], int]:
        return dict(self.db.positions)


class TestFakeUnitOfWork(UnitOfWorkContract):
    """FakeUnitOfWork keeps the unit-of-work contract."""

    @pytest.fixture
    def backend(self) -> FakeBackend:
        return FakeBackend()
